import Foundation
import Testing

@testable import TrellisCore

/// The seed DAG, parsed from examples/, driven through the pure scheduling
/// decisions and the task-instance state machine with scripted attempt
/// outcomes: what the control plane will do, without any I/O.
@Suite struct SeedDagRunTests {
    @Test func everyAttemptSucceeding() throws {
        let run = try SimulatedRun(file: "examples/seed_k8s_pod_operator.yaml", failures: [:])
        #expect(run.outcome == .success)
        #expect(run.attempts == ["task-1-echo#1", "task-2-sleep#1"])
        #expect(run.finalStates == ["task-1-echo": .success, "task-2-sleep": .success])
    }

    @Test func taskOneFailingThreeTimes() throws {
        // retries: 2 means three tries; all fail, so task-2-sleep never runs.
        let run = try SimulatedRun(file: "examples/seed_k8s_pod_operator.yaml", failures: ["task-1-echo": 3])
        #expect(run.outcome == .failed)
        #expect(run.attempts == ["task-1-echo#1", "task-1-echo#2", "task-1-echo#3"])
        #expect(run.finalStates == ["task-1-echo": .failed, "task-2-sleep": .upstreamFailed])
        // Each retry waited retry_delay (30 s) after the failed try ended.
        #expect(run.retryWaits == [30, 30])
    }

    @Test func taskOneRecoveringOnItsLastTry() throws {
        let run = try SimulatedRun(file: "examples/seed_k8s_pod_operator.yaml", failures: ["task-1-echo": 2])
        #expect(run.outcome == .success)
        #expect(run.attempts == ["task-1-echo#1", "task-1-echo#2", "task-1-echo#3", "task-2-sleep#1"])
    }
}

/// Runs one DAG run to its end: evaluates, queues and starts what is
/// scheduled, ends each attempt as scripted (the first `failures[task]`
/// tries of a task fail, later ones succeed) and jumps the clock to the next
/// retry when nothing else can happen.
private struct SimulatedRun {
    var attempts: [String] = []
    var retryWaits: [Double] = []
    var outcome: RunOutcome = .running
    var finalStates: [String: TaskState] = [:]

    init(file: String, failures: [String: Int]) throws {
        let dag = try DagFile.parse(try RepositoryFiles.read(file), file: file)
        let evaluator = try RunEvaluator(spec: dag.spec)
        var machines = dag.spec.tasks.map { TaskInstanceMachine(taskID: $0.taskID, retries: Int($0.retries)) }
        var retryAt = [Date?](repeating: nil, count: machines.count)
        var now = Date(timeIntervalSince1970: 1_596_762_000)  // 2020-08-07T01:00:00Z, the first fire time

        for _ in 0..<100 {
            let snapshots = machines.indices.map { TaskInstanceSnapshot(machines[$0].state, retryAt: retryAt[$0]) }
            let decision = evaluator.evaluate(snapshots, previousRun: nil, now: now)
            for change in decision.changes { try machines[change.position].apply(change.event) }
            outcome = decision.outcome
            if outcome != .running { break }

            let scheduled = decision.scheduled + decision.retried
            if scheduled.isEmpty {
                let next = try #require(decision.nextRetryAt, "the run is stuck: \(machines.map(\.state))")
                now = next
                continue
            }
            for position in scheduled {
                try machines[position].apply(.enqueue)
                try machines[position].apply(.start)
                let task = machines[position]
                attempts.append("\(task.taskID)#\(task.tryNumber)")
                now += 1
                if task.tryNumber <= failures[task.taskID, default: 0] {
                    try machines[position].apply(.fail)
                    if machines[position].state == .upForRetry {
                        let policy = RetryPolicy(spec: dag.spec.tasks[position])
                        let key = RetryJitterKey(dagID: dag.spec.dagID, taskID: task.taskID, runKey: "2020-08-07T01:00:00+00:00")
                        retryAt[position] = policy.nextRetry(afterTry: task.tryNumber, endedAt: now, of: key)
                        retryWaits.append(retryAt[position]!.timeIntervalSince(now))
                    }
                } else {
                    try machines[position].apply(.succeed)
                }
            }
        }
        finalStates = Dictionary(uniqueKeysWithValues: machines.map { ($0.taskID, $0.state) })
    }
}
