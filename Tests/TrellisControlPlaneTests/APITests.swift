import Foundation
import Testing
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisTestSupport
import TrellisWire

@testable import TrellisControlPlane

/// The client API over real TCP against a real PostgreSQL.
@Suite struct APITests {
    static let chain = """
        dag_id: chain
        tags: [etl, nightly]
        default_args: {executor: c-instant}
        tasks:
          - {task_id: a, executor_config: {}}
          - {task_id: b, upstream: [a], executor_config: {}}
          - {task_id: c, upstream: [b], executor_config: {}}
          - {task_id: d, executor_config: {}}
        """

    // MARK: Roles

    @Test func everyMethodOfTheProtoHasARoleAndAHandler() throws {
        let proto = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../proto/trellis/v1/api.proto")
        let text = try String(contentsOf: proto, encoding: .utf8)
        let declared = text.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("rpc ") else { return nil }
            return String(trimmed.dropFirst(4).prefix { $0 != "(" })
        }
        #expect(declared.count == 24)
        #expect(Set(declared) == Set(APIAuthorization.requiredRole.keys))
        #expect(Set(declared) == Set(TrellisAPIService.methods))
        var services = WireServices()
        // A service over an unreachable store: registration touches nothing.
        let service = TrellisAPIService(
            store: StateStore(pool: PostgresPool("postgresql://127.0.0.1:1/none")),
            executors: ExecutorHost(hostID: "t", log: { _, _, _ in }, events: { _ in }),
            statusProvider: { ServerStatusInfo(serverVersion: "", startedAt: Date()) })
        service.register(into: &services)
        for method in declared { #expect(services.method(named: APIAuthorization.path(method)) != nil, "\(method) is not registered") }
    }

    @Test func theRoleTableIsAirflowsViewerOperatorAdmin() throws {
        let byRole = Dictionary(grouping: APIAuthorization.requiredRole.keys, by: { APIAuthorization.requiredRole[$0]! }).mapValues { Set($0) }
        #expect(byRole[.operator] == ["SetDagPaused", "TriggerRun", "CancelRun", "ClearTasks", "MarkTask"])
        #expect(byRole[.admin] == ["SubmitDag", "DeleteDag", "CreateToken", "ListTokens", "RevokeToken", "SetPool", "DeletePool"])
        #expect(byRole[.viewer]?.count == 12)
        let viewer = WireIdentity(role: .client, name: "x", subject: "viewer")
        #expect(throws: WireError(.permissionDenied, "TriggerRun requires the operator role; this token is viewer")) {
            _ = try APIAuthorization.authorize(viewer, method: "TriggerRun")
        }
        #expect(try APIAuthorization.authorize(WireIdentity(role: .client, name: "x", subject: "admin"), method: "TriggerRun") == .admin)
        #expect(throws: WireError.self) { _ = try APIAuthorization.authorize(WireIdentity(role: .agent, name: "n"), method: "Ping") }
    }

    /// Every method with every role, over the wire: a role below the
    /// method's is PERMISSION_DENIED naming both; a sufficient role gets
    /// past the check (empty requests then fail validation, changing nothing).
    @Test func eachRoleIsAllowedOrDeniedAsTheTableSays() async throws {
        try await APIFixture.with { fixture in
            for role in APIRole.allCases {
                let connection = try await fixture.connect(role)
                for (method, needed) in APIAuthorization.requiredRole.sorted(by: { $0.key < $1.key }) {
                    let status: WireError?
                    if method == "WatchRun" || method == "GetTaskLog" {
                        do {
                            for try await _ in try connection.stream(method, Trellis_V1_WatchRunRequest()) {}
                            status = nil
                        } catch let error as WireError {
                            status = error
                        }
                    } else {
                        do {
                            _ = try await connection.unary(APIAuthorization.path(method), Data(), timeout: .seconds(30))
                            status = nil
                        } catch let error as WireError {
                            status = error
                        }
                    }
                    if role < needed {
                        #expect(status?.code == .permissionDenied, "\(method) as \(role)")
                        #expect(status?.message == "\(method) requires the \(needed.rawValue) role; this token is \(role.rawValue)")
                    } else {
                        #expect(status?.code != .permissionDenied, "\(method) as \(role): \(String(describing: status))")
                    }
                }
                await connection.close()
            }
            // Nothing was created by the empty requests.
            #expect(try await fixture.store.dags().isEmpty)
            #expect(try await fixture.store.tokens().count == 3)
        }
    }

    // MARK: DAGs

    @Test func submitGoodAndBadDags() async throws {
        try await APIFixture.with { fixture in
            let admin = try await fixture.connect(.admin)
            var request = Trellis_V1_SubmitDagRequest()
            request.yaml = Self.chain
            request.fileName = "chain.yaml"
            request.paused = true
            let first: Trellis_V1_SubmitDagResponse = try await admin.call("SubmitDag", request)
            #expect(first.dagID == "chain")
            #expect(first.version == 1)
            #expect(first.changed)
            #expect(first.taskCount == 4)
            let again: Trellis_V1_SubmitDagResponse = try await admin.call("SubmitDag", request)
            #expect(!again.changed)
            #expect(again.version == 1)
            #expect(try await fixture.store.dag("chain")?.isPaused == true)

            var bad = Trellis_V1_SubmitDagRequest()
            bad.fileName = "bad.yaml"
            bad.yaml = """
                dag_id: bad
                schedule: "61 * * * *"
                tasks:
                  - {task_id: a, executor: c-instant, executor_config: {}, retires: 2}
                  - {task_id: b, executor: c-instant, executor_config: {}, upstream: [zz]}
                """
            let error = try #require(await admin.failure("SubmitDag", bad))
            #expect(error.code == .invalidArgument)
            let lines = error.message.split(separator: "\n")
            // start_date missing for a schedule, the cron minute, the typo, the unknown upstream.
            #expect(lines.count == 4, "\(error.message)")
            #expect(error.message.contains("minute 61 is out of range"))
            #expect(lines.allSatisfy { $0.hasPrefix("bad.yaml:") })
            #expect(error.message.contains("did you mean 'retries'"))
            #expect(error.message.contains("zz"))
            let details = try Trellis_V1_ValidationProblems(serializedBytes: error.details)
            #expect(details.problems.map(\.text) == lines.map(String.init))
            #expect(details.problems.allSatisfy { $0.line > 0 && $0.column > 0 })
            #expect(try await fixture.store.dag("bad") == nil)
            await admin.close()
        }
    }

    @Test func listGetPauseAndDelete() async throws {
        try await APIFixture.with { fixture in
            _ = try await fixture.submit(Self.chain)
            _ = try await fixture.submit("dag_id: other\ntags: [etl]\ntasks:\n  - {task_id: x, executor: c-instant, executor_config: {}}\n")
            let viewer = try await fixture.connect(.viewer)
            let all: Trellis_V1_ListDagsResponse = try await viewer.call("ListDags", Trellis_V1_ListDagsRequest())
            #expect(all.dags.map(\.dagID) == ["chain", "other"])
            var tagged = Trellis_V1_ListDagsRequest()
            tagged.tags = ["etl", "nightly"]
            let nightly: Trellis_V1_ListDagsResponse = try await viewer.call("ListDags", tagged)
            #expect(nightly.dags.map(\.dagID) == ["chain"])
            #expect(nightly.dags.first?.taskCount == 4)
            #expect(nightly.dags.first?.hasLastRunLogicalDate == false)

            var get = Trellis_V1_GetDagRequest()
            get.dagID = "chain"
            let dag: Trellis_V1_GetDagResponse = try await viewer.call("GetDag", get)
            #expect(dag.spec.tasks.map(\.taskID) == ["a", "b", "c", "d"])
            #expect(dag.version == 1)
            get.dagID = "chian"
            let missing = try #require(await viewer.failure("GetDag", get))
            #expect(missing.code == .notFound)
            #expect(missing.message == "DAG 'chian' does not exist; did you mean 'chain'? (known: chain, other)")
            get.dagID = "chain"
            get.version = 2
            #expect(await viewer.failure("GetDag", get)?.code == .notFound)

            let operatorConnection = try await fixture.connect(.operator)
            var pause = Trellis_V1_SetDagPausedRequest()
            pause.dagID = "chain"
            pause.paused = true
            let paused: Trellis_V1_SetDagPausedResponse = try await operatorConnection.call("SetDagPaused", pause)
            #expect(paused.changed)
            let pausedAgain: Trellis_V1_SetDagPausedResponse = try await operatorConnection.call("SetDagPaused", pause)
            #expect(!pausedAgain.changed)
            #expect(try await fixture.store.dag("chain")?.isPaused == true)

            let admin = try await fixture.connect(.admin)
            var trigger = Trellis_V1_TriggerRunRequest()
            trigger.dagID = "chain"
            let _: Trellis_V1_TriggerRunResponse = try await operatorConnection.call("TriggerRun", trigger)
            var delete = Trellis_V1_DeleteDagRequest()
            delete.dagID = "chain"
            let deleted: Trellis_V1_DeleteDagResponse = try await admin.call("DeleteDag", delete)
            #expect(deleted.deletedRuns == 1)
            #expect(try await fixture.store.dags().map(\.dagID) == ["other"])
            #expect(await admin.failure("DeleteDag", delete)?.code == .notFound)
            for connection in [viewer, operatorConnection, admin] { await connection.close() }
        }
    }

    // MARK: Runs

    @Test func triggerIsIdempotentPerLogicalDateAndChecksConf() async throws {
        try await APIFixture.with { fixture in
            _ = try await fixture.submit(Self.chain)
            let operatorConnection = try await fixture.connect(.operator)
            var trigger = Trellis_V1_TriggerRunRequest()
            trigger.dagID = "chain"
            trigger.confJson = #"{"region": "eu"}"#
            trigger.logicalDate.unixMicros = 1_700_000_000_000_000
            let first: Trellis_V1_TriggerRunResponse = try await operatorConnection.call("TriggerRun", trigger)
            #expect(first.created)
            #expect(first.run.runID == "manual__2023-11-14T22:13:20+00:00")
            #expect(first.run.runType == "manual")
            #expect(first.run.state == .queued)
            #expect(first.run.taskCounts == ["none": 4])
            let second: Trellis_V1_TriggerRunResponse = try await operatorConnection.call("TriggerRun", trigger)
            #expect(!second.created)
            #expect(second.run.runID == first.run.runID)
            let stored = try #require(try await fixture.store.run(dagID: "chain", runID: first.run.runID))
            #expect(fixture.changedRuns.withLock { $0 } == [stored.id])
            #expect(stored.conf.contains("eu"))

            // A named run is idempotent by its run id too.
            var named = Trellis_V1_TriggerRunRequest()
            named.dagID = "chain"
            named.runID = "by-hand"
            let byHand: Trellis_V1_TriggerRunResponse = try await operatorConnection.call("TriggerRun", named)
            #expect(byHand.created)
            let byHandAgain: Trellis_V1_TriggerRunResponse = try await operatorConnection.call("TriggerRun", named)
            #expect(!byHandAgain.created)

            trigger.confJson = #"{"region": eu}"#
            trigger.logicalDate.unixMicros += 1
            let badJSON = try #require(await operatorConnection.failure("TriggerRun", trigger))
            #expect(badJSON.code == .invalidArgument)
            #expect(badJSON.message.hasPrefix("conf_json is not valid JSON: "))
            #expect(badJSON.message.contains("character 11"), "\(badJSON.message)")
            // Foundation's parser takes a trailing comma; PostgreSQL's does not.
            trigger.confJson = #"{"region": "eu",}"#
            let trailingComma = try #require(await operatorConnection.failure("TriggerRun", trigger))
            #expect(trailingComma.code == .invalidArgument)
            #expect(trailingComma.message.hasPrefix("conf_json is not valid JSON: "), "\(trailingComma.message)")
            trigger.confJson = "[1, 2]"
            #expect(await operatorConnection.failure("TriggerRun", trigger)?.message.contains("must be a JSON object") == true)
            trigger.dagID = "nope"
            #expect(await operatorConnection.failure("TriggerRun", trigger)?.code == .notFound)
            #expect(try await fixture.store.listRuns(dagID: "chain").count == 2)
            await operatorConnection.close()
        }
    }

    @Test func listRunsFiltersAndGetRunShowsTheGrid() async throws {
        try await APIFixture.with { fixture in
            _ = try await fixture.submit(Self.chain)
            let store = fixture.store
            var runs: [DagRunRecord] = []
            for day in 0..<3 {
                runs.append(try await store.createRun(dagID: "chain", logicalDate: Date(timeIntervalSince1970: Double(day) * 86_400), runType: .manual).run)
            }
            try await store.startQueuedRuns()
            #expect(try await store.finishRun(runs[0].id, state: .failed))
            let viewer = try await fixture.connect(.viewer)
            var list = Trellis_V1_ListRunsRequest()
            list.dagID = "chain"
            let all: Trellis_V1_ListRunsResponse = try await viewer.call("ListRuns", list)
            #expect(all.runs.map(\.runID) == runs.reversed().map(\.runID))
            list.state = .failed
            let failed: Trellis_V1_ListRunsResponse = try await viewer.call("ListRuns", list)
            #expect(failed.runs.map(\.runID) == [runs[0].runID])
            list.state = .unspecified
            list.limit = 1
            let one: Trellis_V1_ListRunsResponse = try await viewer.call("ListRuns", list)
            #expect(one.runs.map(\.runID) == [runs[2].runID])
            list.limit = -1
            #expect(await viewer.failure("ListRuns", list)?.code == .invalidArgument)

            let instances = try await store.taskInstances(runID: runs[1].id)
            let b = try #require(instances.first { $0.taskID == "b" })
            _ = try await store.transition(TransitionRequest(taskInstanceID: b.id, event: .markFailed, expected: .none))
            var get = Trellis_V1_GetRunRequest()
            get.dagID = "chain"
            get.runID = runs[1].runID
            let run: Trellis_V1_GetRunResponse = try await viewer.call("GetRun", get)
            #expect(run.tasks.map(\.taskID) == ["a", "b", "c", "d"])
            #expect(run.tasks.map(\.state) == [.none, .failed, .none, .none])
            #expect(run.tasks[2].upstream == ["b"])
            #expect(run.tasks[0].executor == "c-instant")
            #expect(run.run.taskCounts == ["none": 3, "failed": 1])
            get.runID = "manual__nope"
            let missing = try #require(await viewer.failure("GetRun", get))
            #expect(missing.code == .notFound)
            #expect(missing.message.hasPrefix("run 'manual__nope' does not exist in DAG 'chain'"))
            await viewer.close()
        }
    }

    // MARK: Actions

    @Test func clearWithDownstreamMarkAndCancelWakeTheSchedulerAndStopAttempts() async throws {
        try await APIFixture.with { fixture in
            _ = try await fixture.submit(Self.chain)
            let store = fixture.store
            let (run, _) = try await store.createRun(dagID: "chain", logicalDate: Date(timeIntervalSince1970: 0), runType: .manual)
            try await store.startQueuedRuns()
            let grid = Dictionary(uniqueKeysWithValues: try await store.taskInstances(runID: run.id).map { ($0.taskID, $0) })
            for id in ["a", "b", "c"] {
                _ = try await store.transition(TransitionRequest(taskInstanceID: grid[id]!.id, event: .markSuccess, expected: .none))
            }
            // d runs on an agent.
            _ = try await store.transition(TransitionRequest(taskInstanceID: grid["d"]!.id, event: .schedule, expected: .none))
            let claim = try #require(try await store.claimReady(limit: 1).first)
            _ = try await store.startAttempt(taskInstanceID: claim.taskInstanceID, fencingToken: claim.fencingToken, agentName: "node-1")

            let operatorConnection = try await fixture.connect(.operator)
            var clear = Trellis_V1_ClearTasksRequest()
            clear.dagID = "chain"
            clear.runID = run.runID
            clear.taskIds = ["b"]
            clear.downstream = true
            let cleared: Trellis_V1_ClearTasksResponse = try await operatorConnection.call("ClearTasks", clear)
            #expect(Set(cleared.cleared) == ["b", "c"])
            #expect(fixture.changedRuns.withLock { $0 } == [run.id])
            clear.taskIds = ["bb"]
            let unknown = try #require(await operatorConnection.failure("ClearTasks", clear))
            #expect(unknown.code == .notFound)
            #expect(unknown.message.contains("did you mean 'b'"))

            var mark = Trellis_V1_MarkTaskRequest()
            mark.dagID = "chain"
            mark.runID = run.runID
            mark.taskID = "d"
            mark.state = .skipped
            let wrongState = try #require(await operatorConnection.failure("MarkTask", mark))
            #expect(wrongState.code == .invalidArgument)
            mark.state = .failed
            let marked: Trellis_V1_MarkTaskResponse = try await operatorConnection.call("MarkTask", mark)
            #expect(marked.task.state == .failed)
            #expect(marked.task.agentName == "node-1")
            let identity = AttemptIdentity(taskInstanceID: claim.taskInstanceID, attemptID: claim.attemptID).text
            #expect(fixture.cancelled.withLock { $0.map(\.attemptID) } == [identity])
            #expect(fixture.cancelled.withLock { $0.map(\.executor) } == ["c-instant"])

            var cancel = Trellis_V1_CancelRunRequest()
            cancel.dagID = "chain"
            cancel.runID = run.runID
            let cancelled: Trellis_V1_CancelRunResponse = try await operatorConnection.call("CancelRun", cancel)
            #expect(cancelled.run.state == .failed)
            #expect(cancelled.run.taskCounts == ["success": 1, "skipped": 2, "failed": 1])
            let again = try #require(await operatorConnection.failure("CancelRun", cancel))
            #expect(again.code == .failedPrecondition)
            #expect(fixture.changedRuns.withLock { $0 }.allSatisfy { $0 == run.id })
            await operatorConnection.close()
        }
    }

    @Test func cancelRunStopsAttemptsInFlight() async throws {
        try await APIFixture.with { fixture in
            let store = fixture.store
            let (run, a, claim) = try await fixture.chainWithFirstTaskClaimed(Self.chain)
            let operatorConnection = try await fixture.connect(.operator)
            var cancel = Trellis_V1_CancelRunRequest()
            cancel.dagID = "chain"
            cancel.runID = run.runID
            let response: Trellis_V1_CancelRunResponse = try await operatorConnection.call("CancelRun", cancel)
            #expect(response.cancelledAttempts == 1)
            #expect(fixture.cancelled.withLock { $0.map(\.attemptID) } == [AttemptIdentity(taskInstanceID: a.id, attemptID: claim.attemptID).text])
            #expect(try await store.taskInstance(a.id).state == .failed)
            await operatorConnection.close()
        }
    }

    // MARK: Streams

    /// A scheduler with c-instant runs the triggered run to its end while
    /// the watcher sees the snapshot, each task change, and the run's end.
    @Test func watchRunStreamsUntilTheRunEnds() async throws {
        try await APIFixture.with(scheduling: true) { fixture in
            _ = try await fixture.submit(Self.chain)
            let operatorConnection = try await fixture.connect(.operator)
            var trigger = Trellis_V1_TriggerRunRequest()
            trigger.dagID = "chain"
            trigger.runID = "watched"
            // Paused: the run waits queued until the watcher is in place.
            var pause = Trellis_V1_SetDagPausedRequest()
            pause.dagID = "chain"
            pause.paused = true
            let _: Trellis_V1_SetDagPausedResponse = try await operatorConnection.call("SetDagPaused", pause)
            let _: Trellis_V1_TriggerRunResponse = try await operatorConnection.call("TriggerRun", trigger)

            let viewer = try await fixture.connect(.viewer)
            var watch = Trellis_V1_WatchRunRequest()
            watch.dagID = "chain"
            watch.runID = "watched"
            let updates = Collector<Trellis_V1_RunUpdate>()
            updates.start(try viewer.stream("WatchRun", watch, window: 2))
            try await eventually("the snapshot arrives") { !updates.all.isEmpty }
            #expect(updates.all.first?.snapshot.run.state == .queued)
            #expect(updates.all.first?.snapshot.tasks.count == 4)

            pause.paused = false
            let _: Trellis_V1_SetDagPausedResponse = try await operatorConnection.call("SetDagPaused", pause)
            try await fixture.scheduler.pass()
            try await eventually("the stream ends") { updates.ended != nil }
            #expect(updates.endedOK, "\(String(describing: updates.ended))")
            let items = updates.all
            #expect(items.last?.run.state == .success)
            let finalStates = items.reduce(into: [String: Trellis_V1_TaskState]()) { states, item in
                if case .task(let task) = item.kind { states[task.taskID] = task.state }
            }
            #expect(finalStates == ["a": .success, "b": .success, "c": .success, "d": .success])
            await viewer.close()
            await operatorConnection.close()
        }
    }

    @Test func watchStopsWhenTheCallerCancels() async throws {
        try await APIFixture.with { fixture in
            _ = try await fixture.submit(Self.chain)
            let (run, _) = try await fixture.store.createRun(dagID: "chain", logicalDate: Date(timeIntervalSince1970: 0), runType: .manual)
            let viewer = try await fixture.connect(.viewer)
            var watch = Trellis_V1_WatchRunRequest()
            watch.dagID = "chain"
            watch.runID = run.runID
            let updates = Collector<Trellis_V1_RunUpdate>()
            let task = updates.start(try viewer.stream("WatchRun", watch))
            try await eventually("the snapshot arrives") { !updates.all.isEmpty }
            try await eventually("the server runs the watch") { await viewer.openCalls() == 1 }
            task.cancel()
            try await eventually("the watch call ends on both sides") { await viewer.openCalls() == 0 }
            await viewer.close()
        }
    }

    @Test func taskLogsWithFollowAndResume() async throws {
        try await APIFixture.with { fixture in
            let store = fixture.store
            let (run, a, claim) = try await fixture.chainWithFirstTaskClaimed(Self.chain)
            _ = try await store.startAttempt(taskInstanceID: a.id, fencingToken: claim.fencingToken)
            try await store.appendLog(attemptID: claim.attemptID, Array("one\n".utf8))

            let viewer = try await fixture.connect(.viewer)
            var request = Trellis_V1_GetTaskLogRequest()
            request.dagID = "chain"
            request.runID = run.runID
            request.taskID = "a"
            request.follow = true
            let chunks = Collector<Trellis_V1_TaskLogChunk>()
            chunks.start(try viewer.stream("GetTaskLog", request))
            try await eventually("the first chunk arrives") { chunks.all.count == 1 }
            try await store.appendLog(attemptID: claim.attemptID, Array("two\n".utf8))
            try await eventually("the second chunk arrives") { chunks.all.count == 2 }
            #expect(chunks.ended == nil)
            try await store.appendLog(attemptID: claim.attemptID, Array("three\n".utf8))
            _ = try await store.endAttempt(taskInstanceID: a.id, fencingToken: claim.fencingToken, outcome: .success)
            try await eventually("the followed log ends with the try") { chunks.ended != nil }
            #expect(chunks.endedOK)
            #expect(chunks.all.map(\.chunk) == [1, 2, 3])
            #expect(chunks.all.map { String(decoding: $0.data, as: UTF8.self) }.joined() == "one\ntwo\nthree\n")
            #expect(chunks.all.allSatisfy { $0.tryNumber == 1 })

            // Resume after chunk 2, without follow, by try number.
            request.follow = false
            request.afterChunk = 2
            request.tryNumber = 1
            var resumed: [Trellis_V1_TaskLogChunk] = []
            for try await bytes in try viewer.stream("GetTaskLog", request) { resumed.append(try Trellis_V1_TaskLogChunk(serializedBytes: bytes)) }
            #expect(resumed.map(\.chunk) == [3])

            request.tryNumber = 4
            var missing: WireError?
            do {
                for try await _ in try viewer.stream("GetTaskLog", request) {}
            } catch let error as WireError {
                missing = error
            }
            #expect(missing?.code == .notFound)
            #expect(missing?.message.contains("has no try 4 (tries: 1)") == true)
            await viewer.close()
        }
    }

    // MARK: Deployment views

    @Test func statusAgentsAndExecutors() async throws {
        try await APIFixture.with { fixture in
            try await fixture.store.agentHeartbeat(name: "node-1", labels: #"{"zone": "a", "gpu": 2}"#, slots: 8, now: Date())
            let viewer = try await fixture.connect(.viewer)
            let status: Trellis_V1_ServerStatusResponse = try await viewer.call("ServerStatus", Trellis_V1_ServerStatusRequest())
            #expect(status.callerRole == "viewer")
            #expect(status.leader)
            #expect(status.replica == "replica-a")
            #expect(status.connectedAgents == 2)
            let agents: Trellis_V1_ListAgentsResponse = try await viewer.call("ListAgents", Trellis_V1_ListAgentsRequest())
            #expect(agents.agents.map(\.name) == ["node-1"])
            #expect(agents.agents.first?.labels == ["zone": "a", "gpu": "2"])
            #expect(agents.agents.first?.slots == 8)
            #expect(agents.agents.first?.connected == true)

            _ = try await fixture.submit(Self.chain)
            let (run, _) = try await fixture.store.createRun(dagID: "chain", logicalDate: Date(timeIntervalSince1970: 0), runType: .manual)
            try await fixture.store.startQueuedRuns()
            for instance in try await fixture.store.taskInstances(runID: run.id) {
                _ = try await fixture.store.transition(TransitionRequest(taskInstanceID: instance.id, event: .schedule, expected: .none))
            }
            let claims = try await fixture.store.claimReady(limit: 2)
            _ = try await fixture.store.startAttempt(taskInstanceID: claims[0].taskInstanceID, fencingToken: claims[0].fencingToken, agentName: "node-1")
            let executors: Trellis_V1_ListExecutorsResponse = try await viewer.call("ListExecutors", Trellis_V1_ListExecutorsRequest())
            #expect(executors.executors.map(\.name) == ["c-instant"])
            #expect(executors.executors.first?.queued == 1)
            #expect(executors.executors.first?.running == 1)
            #expect(executors.problems == ["/plugins/libbroken.so: not a plugin"])
            let busy: Trellis_V1_ListAgentsResponse = try await viewer.call("ListAgents", Trellis_V1_ListAgentsRequest())
            #expect(busy.agents.first?.running == 1)
            await viewer.close()
        }
    }

    // MARK: Tokens

    @Test func tokensCreateListRevokeAndAuthenticate() async throws {
        try await APIFixture.with { fixture in
            let admin = try await fixture.connect(.admin)
            var create = Trellis_V1_CreateTokenRequest()
            create.name = "ci"
            create.role = "operator"
            let created: Trellis_V1_CreateTokenResponse = try await admin.call("CreateToken", create)
            #expect(created.token.name == "ci")
            #expect(created.token.role == "operator")
            #expect(created.secret.hasPrefix("trellis_"))
            #expect(await admin.failure("CreateToken", create)?.code == .alreadyExists)
            create.name = "x"
            create.role = "root"
            let badRole = try #require(await admin.failure("CreateToken", create))
            #expect(badRole.message == "role 'root' is not one of admin, operator, viewer")

            // The new token works at once, with its role.
            let ci = try await fixture.connect(token: created.secret)
            let status: Trellis_V1_ServerStatusResponse = try await ci.call("ServerStatus", Trellis_V1_ServerStatusRequest())
            #expect(status.callerRole == "operator")
            await ci.close()

            let listed: Trellis_V1_ListTokensResponse = try await admin.call("ListTokens", Trellis_V1_ListTokensRequest())
            #expect(listed.tokens.map(\.name) == ["admin-token", "ci", "operator-token", "viewer-token"])
            #expect(listed.tokens.allSatisfy { !$0.hasRevokedAt })

            var revoke = Trellis_V1_RevokeTokenRequest()
            revoke.name = "ci"
            let _: Trellis_V1_RevokeTokenResponse = try await admin.call("RevokeToken", revoke)
            #expect(await admin.failure("RevokeToken", revoke)?.code == .notFound)
            do {
                _ = try await fixture.connect(token: created.secret)
                Issue.record("a revoked token opened a session")
            } catch let error as WireError {
                #expect(error.code == .unauthenticated)
            }
            await admin.close()
        }
    }
}
