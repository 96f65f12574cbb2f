import Foundation
import Testing
import TrellisCore
import TrellisStore
import TrellisTestSupport

/// The real `trellisd serve` binary with the C test executor, against the
/// test PostgreSQL: runs finish, survive kill -9, and two replicas never
/// schedule at once.
@Suite struct ServeCommandTests {
    /// `fan` tasks after a `start` task, in `chains` chains of `depth` after them.
    static func dag(_ id: String, fan: Int = 0, delayMillis: Int = 0, maxActiveTasks: Int = 16) throws -> DagDefinition {
        var yaml = """
            dag_id: \(id)
            max_active_tasks: \(maxActiveTasks)
            default_args: {executor: c-instant, executor_config: {delay_ms: \(delayMillis)}}
            tasks:
              - {task_id: start}

            """
        for index in 0..<fan { yaml += "  - {task_id: t\(index), upstream: [start]}\n" }
        return try DagFile.parse(yaml, file: "\(id).yaml")
    }

    private func trigger(_ store: StateStore, _ dagID: String) async throws -> Int64 {
        let run = try await store.createRun(dagID: dagID, logicalDate: Date(timeIntervalSince1970: 1_700_000_000), runType: .manual).run
        try await store.notifyRunChanged(run.id)
        return run.id
    }

    private func waitForEnd(_ store: StateStore, _ runID: Int64, within timeout: Duration = .seconds(120)) async throws -> DagRunState {
        try await eventually("run \(runID) finishes", timeout: timeout) {
            let state = try await store.run(runID).state
            return state == .success || state == .failed
        }
        return try await store.run(runID).state
    }

    @Test func aRunGoesToItsEndOnTheServedControlPlane() async throws {
        try await ServedControlPlane.with { served, store in
            let trellisd = try await served.start(name: "solo")
            try await store.submitDag(try Self.dag("served", fan: 20))
            let runID = try await trigger(store, "served")
            #expect(try await waitForEnd(store, runID) == .success, "\(trellisd.stderr)")
            #expect(served.executions().sorted() == (["start"] + (0..<20).map { "t\($0)" }).sorted())

            trellisd.signal(SIGTERM)
            #expect(await trellisd.wait() == 0, "\(trellisd.stderr)")
            #expect(trellisd.stderr.contains("shutting down"))
        }
    }

    @Test func killMinusNineMidRunThenRestartRunsEveryTaskExactlyOnce() async throws {
        try await ServedControlPlane.with { served, store in
            try await store.submitDag(try Self.dag("big", fan: 499, delayMillis: 30))
            let first = try await served.start(name: "first")
            let runID = try await trigger(store, "big")
            try await eventually("a fifth of the run executed", timeout: .seconds(120)) { served.executions().count >= 100 }
            first.signal(SIGKILL)
            #expect(await first.wait() == 128 + SIGKILL)
            let before = served.executions().count
            #expect(before < 500, "the run ended before the kill; nothing was tested")

            let second = try await served.start(name: "second")
            #expect(try await waitForEnd(store, runID, within: .seconds(300)) == .success, "\(second.stderr)")
            let executions = served.executions()
            #expect(executions.count == 500, "executions: \(executions.count), \(before) before the kill")
            #expect(Set(executions).count == 500, "a task ran twice")
            let grid = try await store.taskInstances(runID: runID)
            #expect(grid.allSatisfy { $0.state == .success && $0.tryNumber == 1 })
            await second.stop()
        }
    }

    @Test func twoReplicasOnlyOneSchedulesAndTheOtherTakesOverAfterKillMinusNine() async throws {
        try await ServedControlPlane.with { served, store in
            try await store.submitDag(try Self.dag("shared", fan: 199, delayMillis: 30))
            let a = try await served.start(name: "replica-a")
            let b = try await served.start(name: "replica-b")
            let runID = try await trigger(store, "shared")
            try await eventually("one replica leads", timeout: .seconds(30)) {
                (a.stderr + b.stderr).contains("leading: this replica schedules")
            }
            try await eventually("part of the run executed", timeout: .seconds(120)) { served.executions().count >= 40 }
            let aLeads = a.stderr.contains("leading: this replica schedules")
            let bLeads = b.stderr.contains("leading: this replica schedules")
            #expect(aLeads != bLeads, "exactly one replica leads")
            let (leader, standby) = aLeads ? (a, b) : (b, a)

            leader.signal(SIGKILL)
            await leader.wait()
            #expect(try await waitForEnd(store, runID, within: .seconds(300)) == .success, "\(standby.stderr)")
            #expect(standby.stderr.contains("leading: this replica schedules"))
            let executions = served.executions()
            #expect(executions.count == 200)
            #expect(Set(executions).count == 200, "a task ran twice")
            await standby.stop()
        }
    }
}
