import Foundation
import Synchronization
import TrellisAgent
import TrellisProto
import TrellisTestSupport

/// A fresh runner with its own outbox and work directory.
struct RunnerFixture {
    let runner: TaskRunner
    let outbox: Outbox
    let workDirectory: URL

    init(slots: Int = 4, killGrace: Duration = .milliseconds(500), logBytesPerAttempt: Int = 1 << 20) throws {
        workDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("trellis-agent-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        outbox = Outbox(logBytesPerAttempt: logBytesPerAttempt)
        runner = TaskRunner(
            settings: .init(agentName: "agent-1", node: "node-1", slots: slots, killGrace: killGrace, workDirectory: workDirectory.path),
            outbox: outbox)
    }

    func remove() {
        try? FileManager.default.removeItem(at: workDirectory)
    }

    /// Scratch directories still present.
    var scratchDirectories: [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: workDirectory.appendingPathComponent("attempts").path)) ?? []
    }
}

/// A StartTask request for a process task.
func startRequest(
    _ attemptID: String, _ command: [String], env: [(String, String)] = [], workingDir: String = "", timeoutMillis: Int64? = nil,
    executor: String = "persistent-pool"
) -> Trellis_V1_StartTaskRequest {
    var request = Trellis_V1_StartTaskRequest()
    request.executor = executor
    request.assignment.attempt.attemptID = attemptID
    request.assignment.attempt.fencingToken = 7
    request.assignment.dagID = "etl"
    request.assignment.runID = "manual__1"
    request.assignment.taskID = "extract"
    request.assignment.tryNumber = 2
    request.assignment.logicalDate.unixMicros = 1_764_100_800_000_000  // 2025-11-25T20:00:00Z
    var process = Trellis_V1_ProcessTaskSpec()
    process.command = command
    process.env = env.map { name, value in
        var variable = Trellis_V1_EnvVar()
        variable.name = name
        variable.value = value
        return variable
    }
    process.workingDir = workingDir
    request.assignment.task.taskID = "extract"
    request.assignment.task.process = process
    if let timeoutMillis { request.assignment.task.executionTimeout.millis = timeoutMillis }
    return request
}

/// Plays the control plane's side of the outbox: takes every batch,
/// records it and acknowledges it (after `delay`, or not at all while
/// paused). Log data can be counted rather than kept.
final class EventConsumer: RecordsAgentEvents, Sendable {
    let outbox: Outbox
    private let state = Mutex(State())
    private let task = Mutex<Task<Void, Never>?>(nil)

    struct State {
        var events: [Trellis_V1_AgentEvent] = []
        var logBytes: [String: Int] = [:]
        var paused = false
        var delay: Duration = .zero
        var keepLogData = true
        /// The most log bytes one attempt had buffered when a batch was taken.
        var maximumBuffered: [String: Int] = [:]
    }

    init(_ outbox: Outbox, keepLogData: Bool = true, delay: Duration = .zero) {
        self.outbox = outbox
        state.withLock {
            $0.keepLogData = keepLogData
            $0.delay = delay
        }
        let consumer = Task { [self] in await self.consume() }
        task.withLock { $0 = consumer }
    }

    private func consume() async {
        while !Task.isCancelled {
            if state.withLock({ $0.paused }) {
                try? await Task.sleep(for: .milliseconds(10))
                continue
            }
            await outbox.waitForEvents()
            guard let batch = outbox.nextBatch() else { continue }
            let delay = state.withLock { state in
                for event in batch.events {
                    let id = event.event.attempt.attemptID
                    state.maximumBuffered[id] = max(state.maximumBuffered[id, default: 0], outbox.bufferedLogBytes(for: id))
                    var kept = event
                    if case .log(let chunk)? = event.event.event {
                        state.logBytes[id, default: 0] += chunk.data.count
                        if !state.keepLogData { kept.event.log.data = Data() }
                    }
                    state.events.append(kept)
                }
                return state.delay
            }
            if delay > .zero { try? await Task.sleep(for: delay) }
            outbox.acknowledge(through: batch.through)
        }
    }

    func stop() { task.withLock { $0?.cancel() } }
    func pause(_ paused: Bool) { state.withLock { $0.paused = paused } }

    var events: [Trellis_V1_AgentEvent] { state.withLock { $0.events } }
    func logBytes(of attemptID: String) -> Int { state.withLock { $0.logBytes[attemptID, default: 0] } }
    func maximumBuffered(of attemptID: String) -> Int { state.withLock { $0.maximumBuffered[attemptID, default: 0] } }
}

/// Something that collects the agent's events (the runner's consumer, the
/// test control plane): the questions tests ask of them.
protocol RecordsAgentEvents {
    var events: [Trellis_V1_AgentEvent] { get }
}

extension RecordsAgentEvents {
    func events(of attemptID: String) -> [Trellis_V1_ExecutorEvent] {
        events.filter { $0.event.attempt.attemptID == attemptID }.map(\.event)
    }

    /// The text of one stream of an attempt.
    func output(of attemptID: String, _ stream: Trellis_V1_LogStream = .stdout) -> String {
        let data = events(of: attemptID).reduce(into: Data()) { data, event in
            if case .log(let chunk)? = event.event, chunk.stream == stream { data.append(chunk.data) }
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Waits for the attempt's finished event.
    func finished(_ attemptID: String, timeout: Duration = .seconds(60)) async throws -> Trellis_V1_AttemptFinished {
        var found: Trellis_V1_AttemptFinished?
        try await eventually("attempt \(attemptID) finished", timeout: timeout) {
            found = events(of: attemptID).lazy.compactMap { event -> Trellis_V1_AttemptFinished? in
                if case .finished(let finished)? = event.event { return finished }
                return nil
            }.first
            return found != nil
        }
        return found!
    }
}
