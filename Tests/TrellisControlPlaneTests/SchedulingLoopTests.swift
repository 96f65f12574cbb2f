import Foundation
import Synchronization
import Testing
import TrellisCore
import TrellisStore
import TrellisTestSupport

@testable import TrellisControlPlane

/// Two replicas of the scheduling loop on one database: only the leader
/// schedules, and when it goes away the other takes over.
@Suite struct SchedulingLoopTests {
    @Test func onlyTheLeaderSchedulesAndTheStandbyTakesOver() async throws {
        let dag = try DagFile.parse("""
            dag_id: chain
            default_args: {executor: c-instant, executor_config: {delay_ms: 20}}
            tasks: [{task_id: a}, {task_id: b}, {task_id: c}]
            dependencies: ["a >> b >> c"]
            """, file: "chain.yaml")
        try await FreshDatabase.with { url in
            let record = FileManager.default.temporaryDirectory.appendingPathComponent("loop-\(UUID().uuidString).tsv").path
            defer { try? FileManager.default.removeItem(atPath: record) }
            let pool = PostgresPool(url, maximumConnections: 4)
            let store = StateStore(pool: pool)
            try await store.submitDag(dag)

            let leadership = Leadership()
            let first = try Replica(name: "first", url: url, record: record, leadership: leadership)
            let second = try Replica(name: "second", url: url, record: record, leadership: leadership)

            let run1 = try await store.createRun(dagID: "chain", logicalDate: Date(timeIntervalSince1970: 1_700_000_000), runType: .manual).run
            try await waitForEnd(store, run1.id)
            let leaders = leadership.events
            #expect(leaders.count == 1, "exactly one replica leads: \(leaders)")

            // The leader goes away; the standby takes over and finishes a new run.
            let (leader, standby) = leaders.first == "first +" ? (first, second) : (second, first)
            await leader.stop()
            let run2 = try await store.createRun(dagID: "chain", logicalDate: Date(timeIntervalSince1970: 1_700_086_400), runType: .manual).run
            try await waitForEnd(store, run2.id)
            #expect(leadership.events.suffix(2) == ["\(leader.name) -", "\(standby.name) +"])

            // Every task of both runs ran exactly once.
            let executions = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n")
            #expect(executions.count == 6)
            #expect(Set(executions.map { $0.split(separator: "\t")[0] }).count == 6)
            await standby.stop()
            await pool.close()
        }
    }

    private func waitForEnd(_ store: StateStore, _ runID: Int64) async throws {
        try await eventually("run \(runID) succeeds") { try await store.run(runID).state == .success }
    }
}

/// One control-plane replica: its own executor host (c-instant), scheduler,
/// leader lock and loop.
private final class Replica: Sendable {
    let name: String
    let host: ExecutorHost
    let lock: LeaderLock
    let task: Task<Void, any Error>

    init(name: String, url: String, record: String, leadership: Leadership) throws {
        self.name = name
        let events = ExecutorEventInbox()
        host = ExecutorHost(hostID: name, log: { _, _, _ in }, events: { events.post($0) })
        _ = try host.load(path: try ChildProcess.builtProduct("libtrellis-executor-c-instant.so")) { _ in #"{"record_file": "\#(record)"}"# }
        let scheduler = Scheduler(store: StateStore(pool: PostgresPool(url, maximumConnections: 2)), executors: host,
                                  settings: .init(defaultExecutor: "c-instant"))
        lock = LeaderLock(url, checkInterval: .milliseconds(100))
        let loop = SchedulingLoop(scheduler: scheduler, leader: lock, events: events, sweepInterval: .milliseconds(50)) { leading in
            leadership.append("\(name) \(leading ? "+" : "-")")
        }
        task = Task { try await loop.run() }
    }

    /// Stops scheduling and gives up the lock, as a replica shutting down does.
    func stop() async {
        task.cancel()
        _ = try? await task.value
        await lock.release()
        host.shutdown()
    }
}

/// Leadership changes in order: "first +" when a replica starts leading.
private final class Leadership: Sendable {
    private let changes = Mutex<[String]>([])
    var events: [String] { changes.withLock { $0 } }
    func append(_ change: String) { changes.withLock { $0.append(change) } }
}
