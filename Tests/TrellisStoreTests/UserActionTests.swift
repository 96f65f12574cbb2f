import Foundation
import Testing
import TrellisCore
import TrellisStore

/// The store operations behind the client API: queries of DAGs, runs and
/// grids, and the user's actions (clear, mark, cancel, delete), each one
/// transaction through the state machine.
@Suite struct UserActionTests {
    /// a >> b >> c, and d on its own.
    static func chain() throws -> DagDefinition {
        try DagFile.parse("""
            dag_id: chain
            default_args: {executor: persistent-pool, command: [echo, hi]}
            tasks:
              - {task_id: a}
              - {task_id: b, upstream: [a]}
              - {task_id: c, upstream: [b]}
              - {task_id: d}
            """, file: "chain.yaml")
    }

    /// A started run of `chain` with its instances by task id.
    static func startedRun(_ store: StateStore, day: Int = 0) async throws -> (DagRunRecord, [String: TaskInstanceRecord]) {
        try await store.submitDag(try chain())
        let (run, _) = try await store.createRun(dagID: "chain", logicalDate: Date(timeIntervalSince1970: Double(day) * 86_400), runType: .manual)
        try await store.startQueuedRuns()
        return (try await store.run(run.id), try await grid(store, run.id))
    }

    static func grid(_ store: StateStore, _ runID: Int64) async throws -> [String: TaskInstanceRecord] {
        Dictionary(uniqueKeysWithValues: try await store.taskInstances(runID: runID).map { ($0.taskID, $0) })
    }

    /// Takes an instance from none to running; returns its claim.
    static func makeRunning(_ store: StateStore, _ instance: TaskInstanceRecord, agent: String = "node-1") async throws -> ClaimedTask {
        _ = try await store.transition(TransitionRequest(taskInstanceID: instance.id, event: .schedule, expected: .none))
        let claim = try #require(try await store.claimReady(limit: 10).first { $0.taskInstanceID == instance.id })
        _ = try #require(try await store.startAttempt(taskInstanceID: instance.id, fencingToken: claim.fencingToken, agentName: agent))
        return claim
    }

    @Test func clearWithDownstreamReopensAFinishedRunAndReturnsAttemptsInFlight() async throws {
        try await StoreFixture.with { store in
            let (run, instances) = try await Self.startedRun(store)
            for id in ["a", "b", "c"] {
                _ = try await store.transition(TransitionRequest(taskInstanceID: instances[id]!.id, event: .markSuccess, expected: .none))
            }
            let claim = try await Self.makeRunning(store, instances["d"]!)
            // b and d, and c below b; a stays.
            let result = try await store.clearTasks(runID: run.id, taskIDs: ["b", "d"], downstream: true)
            #expect(Set(result.changedTaskIDs) == ["b", "c", "d"])
            #expect(result.inFlight.map(\.fencingToken) == [claim.fencingToken])
            #expect(result.inFlight.first?.attemptID == claim.attemptID)
            #expect(!result.runReopened)  // the run was still running
            let after = try await Self.grid(store, run.id)
            #expect(after.mapValues(\.state) == ["a": .success, "b": .none, "c": .none, "d": .none])
            // The attempt's report is stale now.
            #expect(try await store.endAttempt(taskInstanceID: instances["d"]!.id, fencingToken: claim.fencingToken, outcome: .success) == nil)

            // A finished run goes back to running when something is cleared.
            for id in ["b", "c", "d"] {
                _ = try await store.transition(TransitionRequest(taskInstanceID: instances[id]!.id, event: .markFailed, expected: .none))
            }
            #expect(try await store.finishRun(run.id, state: .failed))
            let onlyFailed = try await store.clearTasks(runID: run.id, taskIDs: ["a", "b"], downstream: true, onlyFailed: true)
            #expect(Set(onlyFailed.changedTaskIDs) == ["b", "c"])
            #expect(onlyFailed.runReopened)
            let reopened = try await store.run(run.id)
            #expect(reopened.state == .running)
            #expect(reopened.endDate == nil)
            #expect(try await Self.grid(store, run.id).mapValues(\.state) == ["a": .success, "b": .none, "c": .none, "d": .failed])
        }
    }

    @Test func clearingAnUnknownTaskChangesNothing() async throws {
        try await StoreFixture.with { store in
            let (run, instances) = try await Self.startedRun(store)
            _ = try await store.transition(TransitionRequest(taskInstanceID: instances["a"]!.id, event: .markSuccess, expected: .none))
            await #expect(throws: PostgresError.self) {
                _ = try await store.clearTasks(runID: run.id, taskIDs: ["a", "zz"])
            }
            #expect(try await Self.grid(store, run.id)["a"]?.state == .success)
        }
    }

    @Test func markTaskEndsTheAttemptInFlightAndRefusesOtherStates() async throws {
        try await StoreFixture.with { store in
            let (run, instances) = try await Self.startedRun(store)
            let claim = try await Self.makeRunning(store, instances["a"]!)
            let marked = try await store.markTask(runID: run.id, taskID: "a", state: .success)
            #expect(marked.changedTaskIDs == ["a"])
            #expect(marked.inFlight.map(\.attemptID) == [claim.attemptID])
            #expect(try await store.taskInstance(instances["a"]!.id).state == .success)
            // Marking again in the same state changes nothing.
            #expect(try await store.markTask(runID: run.id, taskID: "a", state: .success).applied.isEmpty)
            await #expect(throws: PostgresError.self) {
                _ = try await store.markTask(runID: run.id, taskID: "a", state: .skipped)
            }
            let events = try await store.events(taskInstanceID: instances["a"]!.id)
            #expect(events.last?.event == TaskInstanceEvent.markSuccess.rawValue)
        }
    }

    @Test func cancelRunFailsActiveInstancesAndSkipsTheRest() async throws {
        try await StoreFixture.with { store in
            let (run, instances) = try await Self.startedRun(store)
            let claim = try await Self.makeRunning(store, instances["a"]!)
            _ = try await store.transition(TransitionRequest(taskInstanceID: instances["d"]!.id, event: .schedule, expected: .none))
            _ = try await store.transition(TransitionRequest(taskInstanceID: instances["c"]!.id, event: .markSuccess, expected: .none))
            let (ended, result) = try await store.cancelRun(run.id)
            #expect(ended.state == .failed)
            #expect(ended.endDate != nil)
            #expect(result.inFlight.map(\.fencingToken) == [claim.fencingToken])
            #expect(try await Self.grid(store, run.id).mapValues(\.state) == ["a": .failed, "b": .skipped, "c": .success, "d": .skipped])
            // A finished run cannot be cancelled again.
            do {
                _ = try await store.cancelRun(run.id)
                Issue.record("an ended run was cancelled")
            } catch {
                #expect((error as? PostgresError)?.code == .failedPrecondition)
            }
        }
    }

    @Test func deleteDagRemovesEverythingAndCountsRuns() async throws {
        try await StoreFixture.with { store in
            let (run, instances) = try await Self.startedRun(store)
            _ = try await store.createRun(dagID: "chain", logicalDate: Date(timeIntervalSince1970: 86_400))
            let claim = try await Self.makeRunning(store, instances["a"]!)
            try await store.appendLog(attemptID: claim.attemptID, Array("hello".utf8))
            try await store.submitDag(try StoreFixture.simpleDag("other", taskCount: 1))
            let deleted = try await store.deleteDag("chain")
            #expect(deleted.deletedRuns == 2)
            #expect(deleted.inFlight.map(\.attemptID) == [claim.attemptID])
            #expect(try await store.dag("chain") == nil)
            #expect(try await store.dags().map(\.dagID) == ["other"])
            #expect(try await store.run(dagID: "chain", runID: run.runID) == nil)
            #expect(try await store.logChunks(attemptID: claim.attemptID).isEmpty)
            #expect(try await store.events(runID: run.id).isEmpty)
            do {
                _ = try await store.deleteDag("chain")
                Issue.record("a missing DAG was deleted")
            } catch {
                #expect((error as? PostgresError)?.code == .notFound)
            }
        }
    }

    @Test func runQueriesFilterAndCount() async throws {
        try await StoreFixture.with { store in
            let (first, instances) = try await Self.startedRun(store, day: 0)
            let (second, _) = try await store.createRun(dagID: "chain", logicalDate: Date(timeIntervalSince1970: 2 * 86_400), runType: .manual)
            try await store.submitDag(try StoreFixture.simpleDag("other", taskCount: 2))
            let (third, _) = try await store.createRun(dagID: "other", logicalDate: Date(timeIntervalSince1970: 86_400))
            _ = try await store.transition(TransitionRequest(taskInstanceID: instances["a"]!.id, event: .markSuccess, expected: .none))

            #expect(try await store.listRuns().map(\.id) == [second.id, third.id, first.id])
            #expect(try await store.listRuns(dagID: "chain").map(\.id) == [second.id, first.id])
            #expect(try await store.listRuns(state: .running).map(\.id) == [first.id])
            #expect(try await store.listRuns(limit: 1).map(\.id) == [second.id])
            #expect(try await store.run(dagID: "chain", runID: first.runID)?.id == first.id)
            #expect(try await store.run(dagID: "other", runID: first.runID) == nil)

            let counts = try await store.taskCounts(runIDs: [first.id, third.id])
            #expect(counts[first.id] == [.success: 1, .none: 3])
            #expect(counts[third.id] == [.none: 2])
            #expect(counts[second.id] == nil)

            let summaries = try await store.dagSummaries()
            #expect(summaries.map(\.dag.dagID) == ["chain", "other"])
            #expect(summaries[0].lastRunState == .queued)
            #expect(summaries[0].lastRunLogicalDate == second.logicalDate)
            #expect(summaries[0].spec.tasks.count == 4)
        }
    }

    @Test func taskGridShowsTheLatestAttempt() async throws {
        try await StoreFixture.with { store in
            let (run, instances) = try await Self.startedRun(store)
            let claim = try await Self.makeRunning(store, instances["a"]!, agent: "node-7")
            _ = try await store.endAttempt(taskInstanceID: instances["a"]!.id, fencingToken: claim.fencingToken, outcome: .failure,
                                           exitCode: 3, failureReason: "exit status 3")
            let grid = try await store.taskGrid(runID: run.id)
            #expect(grid.map(\.instance.taskID) == ["a", "b", "c", "d"])
            #expect(grid[0].agentName == "node-7")
            #expect(grid[0].exitCode == 3)
            #expect(grid[0].failureReason == "exit status 3")
            #expect(grid[1].agentName == nil)
            #expect(try await store.taskGrid(runID: run.id, taskInstanceIDs: [instances["c"]!.id]).map(\.instance.taskID) == ["c"])
            #expect(try await store.runningAttemptsByAgent().isEmpty)
        }
    }

    @Test func parallelismCapsQueuedAndRunningAcrossTheDeployment() async throws {
        try await StoreFixture.with { store in
            _ = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("wide", taskCount: 6))
            _ = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("wide2", taskCount: 6))
            #expect(try await store.claimReady(limit: 3, parallelism: 4).count == 3)
            #expect(try await store.claimReady(limit: 10, parallelism: 4).count == 1)
            #expect(try await store.claimReady(limit: 10, parallelism: 4).isEmpty)
            // Without a cap the rest is claimed.
            #expect(try await store.claimReady(limit: 100).count == 8)
            let counts = try await store.activeTaskCounts()
            #expect(counts["persistent-pool"]?.queued == 12)
        }
    }

    @Test func pausedIfNewAndSetPausedReportChanges() async throws {
        try await StoreFixture.with { store in
            try await store.submitDag(try StoreFixture.simpleDag("p", taskCount: 1), pausedIfNew: true)
            #expect(try await store.dag("p")?.isPaused == true)
            // Ignored for an existing DAG.
            try await store.submitDag(try StoreFixture.simpleDag("p", taskCount: 2), pausedIfNew: false)
            #expect(try await store.dag("p")?.isPaused == true)
            #expect(try await store.setPaused("p", false))
            #expect(try await !store.setPaused("p", false))
        }
    }

    @Test func liveTokenHashesLeaveOutRevokedTokens() async throws {
        try await StoreFixture.with { store in
            _ = try await store.createToken(name: "ci", role: .operator)
            _ = try await store.createToken(name: "old", role: .admin)
            try await store.revokeToken(name: "old")
            let live = try await store.liveTokenHashes()
            #expect(live.map(\.role) == [.operator])
            #expect(live.first?.hash.count == 32)
        }
    }
}
