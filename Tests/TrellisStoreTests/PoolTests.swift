import Foundation
import Testing
import TrellisCore
import TrellisStore

/// Pools as the API manages them: set (create or resize), look up, delete
/// only when nothing unfinished needs them, and the pools ready tasks wait
/// for in vain.
@Suite struct PoolTests {
    /// `a` and `b` in pool `etl` (1 slot each), `big` needing 3 slots of
    /// `gpu`, `plain` in default_pool.
    static let dag = """
        dag_id: pooled
        tasks:
          - {task_id: a, executor: persistent-pool, command: [echo], pool: etl}
          - {task_id: b, executor: persistent-pool, command: [echo], pool: etl}
          - {task_id: big, executor: persistent-pool, command: [echo], pool: gpu, pool_slots: 3}
          - {task_id: plain, executor: persistent-pool, command: [echo]}
        """

    @Test func setCreatesOrResizesAndKeepsTheDescriptionUnlessGiven() async throws {
        try await StoreFixture.with { store in
            #expect(try await store.setPool("gpu", slots: 2, description: "GPUs"))
            #expect(try await store.setPool("gpu", slots: 3) == false)
            var gpu = try #require(try await store.pool(named: "gpu"))
            #expect(gpu.slots == 3)
            #expect(gpu.description == "GPUs")
            try await store.setPool("gpu", slots: 3, description: "")
            gpu = try #require(try await store.pool(named: "gpu"))
            #expect(gpu.description == "")
            #expect(try await store.setPool("new", slots: 0))
            #expect(try await store.pool(named: "new")?.description == "")
            // Resizing default_pool keeps its description.
            try await store.setPool("default_pool", slots: 7)
            #expect(try await store.pool(named: "default_pool")?.description == "Default pool")
            #expect(try await store.pool(named: "nope") == nil)
            await #expect(throws: PostgresError.self) { try await store.setPool("bad", slots: -2) }
        }
    }

    @Test func anUnlimitedPoolNeverHoldsATaskBack() async throws {
        try await StoreFixture.with { store in
            try await store.setPool("any", slots: PoolRecord.unlimited)
            let any = try #require(try await store.pool(named: "any"))
            #expect(any.isUnlimited && any.openSlots == -1)
            var yaml = "dag_id: unlimited\nmax_active_tasks: 1000\ndefault_args: {executor: persistent-pool, command: [\"true\"], pool: any}\ntasks:\n"
            for index in 0..<30 { yaml += "  - {task_id: t\(index), pool_slots: \(index % 2 == 0 ? 1 : 7)}\n" }
            _ = try await StoreFixture.scheduledRun(store, try DagFile.parse(yaml, file: "unlimited.yaml"))
            #expect(try await store.blockedPools().isEmpty)
            #expect(try await store.claimReady(limit: 100).count == 30)
            let busy = try #require(try await store.pool(named: "any"))
            #expect(busy.queuedSlots == 15 + 15 * 7)
            #expect(busy.openSlots == -1)
            // Limited again: what is queued stays, nothing new fits.
            try await store.setPool("any", slots: 4)
            #expect(try #require(try await store.pool(named: "any")).openSlots == 4 - 120)
        }
    }

    @Test func occupancyCountsScheduledQueuedAndRunningSlots() async throws {
        try await StoreFixture.with { store in
            try await store.setPool("etl", slots: 1)
            try await store.setPool("gpu", slots: 4)
            _ = try await StoreFixture.scheduledRun(store, try DagFile.parse(Self.dag, file: "pooled.yaml"))
            var etl = try #require(try await store.pool(named: "etl"))
            #expect(etl.scheduledSlots == 2)
            #expect(etl.queuedSlots == 0)
            #expect(etl.openSlots == 1)
            let claims = try await store.claimReady(limit: 10)
            #expect(Set(claims.map(\.taskID)) == ["a", "big", "plain"] || Set(claims.map(\.taskID)) == ["b", "big", "plain"])
            let big = try #require(claims.first { $0.taskID == "big" })
            _ = try await store.startAttempt(taskInstanceID: big.taskInstanceID, fencingToken: big.fencingToken)
            etl = try #require(try await store.pool(named: "etl"))
            #expect(etl.scheduledSlots == 1)
            #expect(etl.queuedSlots == 1)
            #expect(etl.openSlots == 0)
            let gpu = try #require(try await store.pools().first { $0.name == "gpu" })
            #expect(gpu.runningSlots == 3)
            #expect(gpu.openSlots == 1)
            // Shrinking below what is in use leaves open slots negative.
            try await store.setPool("gpu", slots: 1)
            #expect(try await store.pool(named: "gpu")?.openSlots == -2)
        }
    }

    @Test func aPoolUnfinishedTasksNeedCannotBeDeleted() async throws {
        try await StoreFixture.with { store in
            try await store.setPool("etl", slots: 1)
            try await store.setPool("idle", slots: 1)
            try await store.setPool("gpu", slots: 4)
            let (run, _) = try await StoreFixture.scheduledRun(store, try DagFile.parse(Self.dag, file: "pooled.yaml"))
            _ = try await store.claimReady(limit: 10)
            let inUse = await #expect(throws: PostgresError.self) { try await store.deletePool("etl") }
            #expect(inUse?.code == .failedPrecondition)
            #expect(inUse?.message.hasPrefix(
                "pool 'etl' is still needed by 2 unfinished task instances (1 queued, 1 scheduled) of DAG pooled; ") == true,
                "\(String(describing: inUse))")
            #expect(inUse?.message.contains("cancel them") == true)
            #expect(try await store.pool(named: "etl") != nil)
            try await store.deletePool("idle")
            #expect(try await store.pool(named: "idle") == nil)
            #expect(await #expect(throws: PostgresError.self) { try await store.deletePool("idle") }?.code == .notFound)
            #expect(await #expect(throws: PostgresError.self) { try await store.deletePool("default_pool") }?.code == .invalidArgument)
            // Once the run is over nothing needs the pool.
            _ = try await store.cancelRun(run.id)
            try await store.deletePool("etl")
            #expect(try await store.pool(named: "etl") == nil)
        }
    }

    @Test func blockedPoolsAreThoseMissingOrTooSmallForAReadyTask() async throws {
        try await StoreFixture.with { store in
            try await store.setPool("gpu", slots: 2)
            let (run, _) = try await StoreFixture.scheduledRun(store, try DagFile.parse(Self.dag, file: "pooled.yaml"))
            let blocked = try await store.blockedPools()
            #expect(blocked.map(\.name) == ["etl", "gpu"])
            #expect(blocked.map(\.slots) == [nil, 2])
            #expect(blocked.map(\.waiting) == [2, 1])
            #expect(blocked.map(\.largestNeed) == [1, 3])
            #expect(blocked.map(\.dagIDs) == [["pooled"], ["pooled"]])
            // The grid knows each instance's pool size (nil: no such pool).
            let grid = Dictionary(uniqueKeysWithValues: try await store.taskGrid(runID: run.id).map { ($0.instance.taskID, $0.poolSize) })
            #expect(grid == ["a": nil, "b": nil, "big": 2, "plain": 128])
            // The claim passes them over: only `plain` is taken.
            #expect(try await store.claimReady(limit: 10).map(\.taskID) == ["plain"])
            try await store.setPool("etl", slots: 5)
            try await store.setPool("gpu", slots: 3)
            #expect(try await store.blockedPools().isEmpty)
            #expect(Set(try await store.claimReady(limit: 10).map(\.taskID)) == ["a", "b", "big"])
        }
    }
}
