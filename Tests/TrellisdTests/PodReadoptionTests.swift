import Foundation
import KubeSimulator
import Synchronization
import Testing
import TrellisControlPlane
import TrellisProto
import TrellisTestSupport

/// pod-per-task asked to adopt an attempt it already follows, as when the
/// same trellisd loses and regains leadership (a PostgreSQL restart): the
/// attempt is left as it is and its log is read once.
@Suite struct PodReadoptionTests {
    @Test func adoptingAnAttemptItAlreadyFollowsReadsItsLogOnce() async throws {
        try await KubeSimulator.with { simulator in
            let events = Mutex<[ExecutorEventRecord]>([])
            let lines = Mutex<[String]>([])
            let host = ExecutorHost(
                hostID: "readopt", log: { _, level, message in lines.withLock { $0.append("\(level) \(message)") } },
                events: { record in events.withLock { $0.append(record) } })
            defer { host.shutdown() }
            _ = try host.load(path: try ChildProcess.builtProduct("libtrellis-executor-pod-per-task.so")) { _ in
                #"{"api_server": "http://127.0.0.1:\#(simulator.port ?? 0)", "log_wait_seconds": 5}"#
            }
            let gate = FileManager.default.temporaryDirectory.appendingPathComponent("readopt-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: gate) }
            let assignment = Trellis_V1_TaskAssignment.with {
                $0.attempt = .with { $0.attemptID = "7.1"; $0.fencingToken = 3 }
                $0.dagID = "readopt"
                $0.runID = "manual__1"
                $0.taskID = "slow"
                $0.tryNumber = 1
                $0.task = .with {
                    $0.taskID = "slow"
                    $0.executor = "pod-per-task"
                    $0.pod = .with {
                        $0.image = "busybox:1.36"
                        $0.getLogs = true
                        $0.startupTimeoutSeconds = 120
                        $0.cmds = ["sh", "-c", "echo one; while [ ! -e \(gate) ]; do sleep 0.1; done; echo two"]
                    }
                }
            }
            func output() -> String {
                events.withLock { records in
                    records.compactMap { record -> String? in
                        guard case .log(let chunk)? = record.event.event, chunk.stream != .system else { return nil }
                        return String(decoding: chunk.data, as: UTF8.self)
                    }.joined()
                }
            }
            func podName() -> String? {
                events.withLock { records in
                    records.lazy.compactMap { record -> String? in
                        if case .started(let started)? = record.event.event { started.externalID } else { nil }
                    }.first
                }
            }
            try host.submit(assignment, to: "pod-per-task")
            do {
                try await eventually("the pod wrote its first line", timeout: .seconds(30)) { output() == "one\n" }
            } catch {
                Issue.record("\(error): events \(events.withLock { $0.map(\.event) }) log \(lines.withLock { $0 })")
                throw error
            }
            let pod = try #require(podName())

            // The same attempt again, as the scheduler hands over what the
            // database says is in flight.
            try host.adopt(.with {
                $0.attempts = [.with { $0.assignment = assignment; $0.externalID = pod; $0.outputBytes = Int64(output().utf8.count) }]
            }, on: "pod-per-task")
            // Give a second record, if adopt made one, time to relist the
            // namespace and follow the log too (nothing is asserted about
            // time: with the fix there is nothing to wait for).
            try await Task.sleep(for: .seconds(2))
            FileManager.default.createFile(atPath: gate, contents: nil)
            try await eventually("the attempt finished", timeout: .seconds(60)) {
                events.withLock { $0.contains { if case .finished? = $0.event.event { true } else { false } } }
            }
            #expect(output() == "one\ntwo\n")
            // One follow of the log, which ended with the pod: the adopted
            // record did not replace the one following it (which left that
            // stream unowned and made the end read the whole log again).
            #expect(simulator.requestCount(method: "GET", path: "/api/v1/namespaces/default/pods/\(pod)/log") == 1,
                    "\(simulator.requestCounts)")
            let finished = events.withLock { $0.compactMap { record -> Trellis_V1_AttemptFinished? in
                if case .finished(let finished)? = record.event.event { finished } else { nil }
            } }
            #expect(finished.count == 1)
            #expect(finished.first?.outcome == .succeeded)
        }
    }
}
