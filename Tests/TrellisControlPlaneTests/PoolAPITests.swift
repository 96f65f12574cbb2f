import Foundation
import SwiftProtobuf
import Testing
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisTestSupport
import TrellisWire

@testable import TrellisControlPlane

/// ListPools, GetPool, SetPool and DeletePool over real TCP against a real
/// PostgreSQL, and how pools that keep tasks from running are made visible:
/// SubmitDag's warnings and a waiting task's `waiting_reason`.
@Suite struct PoolAPITests {
    /// `early` in default_pool; `late` in pool `etl`, which does not exist
    /// until a test creates it; `wide` needing 3 slots of `gpu`.
    static let pooled = """
        dag_id: pooled
        default_args: {executor: c-instant, executor_config: {}}
        tasks:
          - {task_id: early}
          - {task_id: late, pool: etl}
          - {task_id: later, pool: etl, upstream: [late]}
          - {task_id: wide, pool: gpu, pool_slots: 3}
        """

    static func set(_ name: String, _ slots: Int32, description: String? = nil) -> Trellis_V1_SetPoolRequest {
        var request = Trellis_V1_SetPoolRequest()
        request.name = name
        request.slots = slots
        if let description { request.description_p = description }
        return request
    }

    static func named<Request: NamedPoolRequest>(_ name: String, as type: Request.Type = Request.self) -> Request {
        var request = Request()
        request.name = name
        return request
    }

    @Test func setCreatesAndResizesListAndGetReadDeleteRemoves() async throws {
        try await APIFixture.with { fixture in
            let admin = try await fixture.connect(.admin)
            var set: Trellis_V1_SetPoolResponse = try await admin.call("SetPool", Self.set("etl", 4, description: "ETL jobs"))
            #expect(set.created)
            #expect(set.pool.name == "etl")
            #expect(set.pool.slots == 4)
            #expect(set.pool.openSlots == 4)
            #expect(set.pool.description_p == "ETL jobs")
            // Resizing without a description keeps it.
            set = try await admin.call("SetPool", Self.set("etl", 6))
            #expect(!set.created)
            #expect(set.pool.slots == 6)
            #expect(set.pool.description_p == "ETL jobs")
            set = try await admin.call("SetPool", Self.set("etl", 6, description: ""))
            #expect(set.pool.description_p == "")
            set = try await admin.call("SetPool", Self.set("paused", 0))
            #expect(set.created && set.pool.slots == 0)

            let viewer = try await fixture.connect(.viewer)
            let list: Trellis_V1_ListPoolsResponse = try await viewer.call("ListPools", Trellis_V1_ListPoolsRequest())
            #expect(list.pools.map(\.name) == ["default_pool", "etl", "paused"])
            #expect(list.pools.map(\.slots) == [128, 6, 0])
            #expect(list.pools[0].description_p == "Default pool")
            let get: Trellis_V1_GetPoolResponse = try await viewer.call("GetPool", Self.named("etl", as: Trellis_V1_GetPoolRequest.self))
            #expect(get.pool == list.pools[1])

            let _: Trellis_V1_DeletePoolResponse = try await admin.call("DeletePool", Self.named("paused", as: Trellis_V1_DeletePoolRequest.self))
            #expect(try await fixture.store.pools().map(\.name) == ["default_pool", "etl"])
            await admin.close()
            await viewer.close()
        }
    }

    @Test func viewersAndOperatorsReadPoolsButOnlyAdminsChangeThem() async throws {
        try await APIFixture.with { fixture in
            for role in [APIRole.viewer, .operator] {
                let connection = try await fixture.connect(role)
                let list: Trellis_V1_ListPoolsResponse = try await connection.call("ListPools", Trellis_V1_ListPoolsRequest())
                #expect(list.pools.map(\.name) == ["default_pool"])
                let _: Trellis_V1_GetPoolResponse = try await connection.call("GetPool", Self.named("default_pool", as: Trellis_V1_GetPoolRequest.self))
                let set = await connection.failure("SetPool", Self.set("etl", 4))
                #expect(set == WireError(.permissionDenied, "SetPool requires the admin role; this token is \(role.rawValue)"))
                let delete = await connection.failure("DeletePool", Self.named("default_pool", as: Trellis_V1_DeletePoolRequest.self))
                #expect(delete == WireError(.permissionDenied, "DeletePool requires the admin role; this token is \(role.rawValue)"))
                await connection.close()
            }
            #expect(try await fixture.store.pools().map(\.name) == ["default_pool"])
            #expect(try await fixture.store.pool(named: "default_pool")?.slots == 128)
        }
    }

    @Test func badInputIsRefusedSayingWhatWasWrong() async throws {
        try await APIFixture.with { fixture in
            let admin = try await fixture.connect(.admin)
            var error = await admin.failure("SetPool", Self.set("gpu pool", 2))
            #expect(error == WireError(.invalidArgument, "pool name 'gpu pool' may only contain letters, digits, '_', '-' and '.'"))
            error = await admin.failure("SetPool", Self.set("", 2))
            #expect(error == WireError(.invalidArgument, "pool name must not be empty"))
            error = await admin.failure("SetPool", Self.set(String(repeating: "p", count: 251), 2))
            #expect(error == WireError(.invalidArgument, "pool name is longer than 250 characters"))
            error = await admin.failure("SetPool", Self.set("gpu", -2))
            #expect(error == WireError(.invalidArgument, "slots must be 0 or more, or -1 for an unlimited pool (as in Airflow), not -2"))

            error = await admin.failure("DeletePool", Self.named("default_pool", as: Trellis_V1_DeletePoolRequest.self))
            #expect(error?.code == .invalidArgument)
            #expect(error?.message == """
                default_pool cannot be deleted: tasks that name no pool use it; change its size instead with \
                `trellis pools set default_pool SLOTS`
                """)
            #expect(try await fixture.store.pool(named: "default_pool") != nil)

            let _: Trellis_V1_SetPoolResponse = try await admin.call("SetPool", Self.set("etl", 2))
            error = await admin.failure("GetPool", Self.named("elt", as: Trellis_V1_GetPoolRequest.self))
            #expect(error == WireError(.notFound, "pool 'elt' does not exist; did you mean 'etl'? (known: default_pool, etl)"))
            error = await admin.failure("DeletePool", Self.named("gpu", as: Trellis_V1_DeletePoolRequest.self))
            #expect(error == WireError(.notFound, "pool 'gpu' does not exist (known: default_pool, etl)"))
            error = await admin.failure("GetPool", Trellis_V1_GetPoolRequest())
            #expect(error == WireError(.invalidArgument, "pool name is empty"))
            #expect(try await fixture.store.pools().map(\.name) == ["default_pool", "etl"])
            await admin.close()
        }
    }

    @Test func aPoolThatUnfinishedTasksNeedIsNotDeleted() async throws {
        try await APIFixture.with { fixture in
            let admin = try await fixture.connect(.admin)
            let _: Trellis_V1_SetPoolResponse = try await admin.call("SetPool", Self.set("etl", 1))
            _ = try await fixture.submit(Self.pooled)
            let (run, _) = try await fixture.store.createRun(dagID: "pooled", logicalDate: Date(timeIntervalSince1970: 0), runType: .manual)
            try await fixture.store.startQueuedRuns()
            let error = await admin.failure("DeletePool", Self.named("etl", as: Trellis_V1_DeletePoolRequest.self))
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message.hasPrefix(
                "pool 'etl' is still needed by 2 unfinished task instances (2 not yet scheduled) of DAG pooled; deleting it would leave them waiting forever"
            ) == true, "\(String(describing: error))")
            #expect(try await fixture.store.pool(named: "etl") != nil)

            var cancel = Trellis_V1_CancelRunRequest()
            cancel.dagID = "pooled"
            cancel.runID = run.runID
            let _: Trellis_V1_CancelRunResponse = try await admin.call("CancelRun", cancel)
            let _: Trellis_V1_DeletePoolResponse = try await admin.call("DeletePool", Self.named("etl", as: Trellis_V1_DeletePoolRequest.self))
            #expect(try await fixture.store.pool(named: "etl") == nil)
            await admin.close()
        }
    }

    @Test func submitWarnsAboutPoolsThatAreMissingOrTooSmallButAcceptsTheDag() async throws {
        try await APIFixture.with { fixture in
            var response = try await fixture.submit(Self.pooled)
            #expect(response.changed)
            #expect(response.warnings == [
                "pool 'etl' does not exist, so tasks late, later will wait until it is created: `trellis pools set etl SLOTS`",
                "pool 'gpu' does not exist, so task wide will wait until it is created: `trellis pools set gpu SLOTS`",
            ])
            #expect(try await fixture.store.dag("pooled") != nil)

            let admin = try await fixture.connect(.admin)
            let _: Trellis_V1_SetPoolResponse = try await admin.call("SetPool", Self.set("etl", 1))
            let _: Trellis_V1_SetPoolResponse = try await admin.call("SetPool", Self.set("gpu", 2))
            // An unchanged file is checked again: the pools may have changed.
            response = try await fixture.submit(Self.pooled)
            #expect(!response.changed)
            #expect(response.warnings == [
                "pool 'gpu' has 2 slots, fewer than task wide (3) needs, so it will wait until it grows: `trellis pools set gpu 3`",
            ])
            let _: Trellis_V1_SetPoolResponse = try await admin.call("SetPool", Self.set("gpu", 3))
            #expect(try await fixture.submit(Self.pooled).warnings.isEmpty)

            // Many tasks are named up to five.
            let many = "dag_id: many\ndefault_args: {executor: c-instant, executor_config: {}, pool: shards}\ntasks:\n"
                + (1...8).map { "  - {task_id: s\($0)}\n" }.joined()
            #expect(try await fixture.submit(many).warnings == [
                "pool 'shards' does not exist, so tasks s1, s2, s3, s4, s5 and 3 more will wait until it is created: `trellis pools set shards SLOTS`",
            ])
            await admin.close()
        }
    }

    /// A task whose pool is missing waits and its grid row says why; once
    /// SetPool creates the pool it runs (SetPool wakes the scheduler).
    @Test func aTaskWaitingForAMissingPoolSaysSoAndRunsOnceItIsCreated() async throws {
        try await APIFixture.with(scheduling: true) { fixture in
            _ = try await fixture.submit(Self.pooled)
            let admin = try await fixture.connect(.admin)
            let _: Trellis_V1_SetPoolResponse = try await admin.call("SetPool", Self.set("gpu", 2))
            var trigger = Trellis_V1_TriggerRunRequest()
            trigger.dagID = "pooled"
            trigger.runID = "waiting"
            let _: Trellis_V1_TriggerRunResponse = try await admin.call("TriggerRun", trigger)
            var get = Trellis_V1_GetRunRequest()
            get.dagID = "pooled"
            get.runID = "waiting"
            var grid: [String: Trellis_V1_TaskInstance] = [:]
            try await eventually("early succeeds while late waits") {
                let run: Trellis_V1_GetRunResponse = try await admin.call("GetRun", get)
                grid = Dictionary(uniqueKeysWithValues: run.tasks.map { ($0.taskID, $0) })
                return grid["early"]?.state == .success && grid["late"]?.state == .scheduled && grid["wide"]?.state == .scheduled
            }
            #expect(grid["early"]?.waitingReason == "")
            #expect(grid["late"]?.waitingReason == "pool 'etl' does not exist: create it with `trellis pools set etl SLOTS`")
            // Not ready yet, but it will wait for the same pool.
            #expect(grid["later"]?.state == Trellis_V1_TaskState.none)
            #expect(grid["later"]?.waitingReason == grid["late"]?.waitingReason)
            #expect(grid["wide"]?.waitingReason == "needs 3 slots of pool 'gpu', which has 2: `trellis pools set gpu 3`")

            // WatchRun's snapshot carries the reason too.
            var watch = Trellis_V1_WatchRunRequest()
            watch.dagID = "pooled"
            watch.runID = "waiting"
            let updates = Collector<Trellis_V1_RunUpdate>()
            let watcher = updates.start(try admin.stream("WatchRun", watch))
            try await eventually("the snapshot arrives") { !updates.all.isEmpty }
            #expect(updates.all.first?.snapshot.tasks.first { $0.taskID == "late" }?.waitingReason.hasPrefix("pool 'etl' does not exist") == true)
            watcher.cancel()

            let _: Trellis_V1_SetPoolResponse = try await admin.call("SetPool", Self.set("etl", 1))
            let _: Trellis_V1_SetPoolResponse = try await admin.call("SetPool", Self.set("gpu", 3))
            try await eventually("the run succeeds once the pools exist and are large enough", timeout: .seconds(60)) {
                let run: Trellis_V1_GetRunResponse = try await admin.call("GetRun", get)
                grid = Dictionary(uniqueKeysWithValues: run.tasks.map { ($0.taskID, $0) })
                return run.run.state == .success
            }
            #expect(grid.values.allSatisfy { $0.waitingReason.isEmpty && $0.state == .success })
            await admin.close()
        }
    }
}

/// The pool requests that carry only a name.
protocol NamedPoolRequest: SwiftProtobuf.Message {
    var name: String { get set }
}

extension Trellis_V1_GetPoolRequest: NamedPoolRequest {}
extension Trellis_V1_DeletePoolRequest: NamedPoolRequest {}
