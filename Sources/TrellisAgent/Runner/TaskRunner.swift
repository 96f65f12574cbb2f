public import Foundation
public import TrellisProto

/// Runs the attempts the control plane starts on this agent, each as a child
/// process (`TaskProcess`), within a fixed number of slots, and queues their
/// events (started, log chunks, finished, in that order per attempt) in the
/// `Outbox`. It answers what the agent is doing (`load`, `registration`) and
/// drains: once draining it refuses new work, and it can stop everything.
///
/// A slot is taken from `start` until the attempt's finished event is
/// queued; the attempt leaves `running` and its finished event enters the
/// outbox in one step, so a registration never misses an attempt between
/// the two.
public final class TaskRunner: @unchecked Sendable {  // mutable state is guarded by `lock`
    /// What the runner needs to know about the agent.
    public struct Settings: Sendable {
        /// The agent's name: `AttemptStarted.external_id`.
        public var agentName: String
        /// The node it runs on: `AttemptStarted.node`.
        public var node: String
        /// Attempts run at once.
        public var slots: Int
        /// Between SIGTERM and SIGKILL when an attempt is stopped.
        public var killGrace: Duration
        /// Holds each attempt's scratch directory (`attempts/…`).
        public var workDirectory: String
        /// The agent's own environment; tasks inherit its PATH when they
        /// set none.
        public var environment: [String: String]

        public init(
            agentName: String, node: String, slots: Int, killGrace: Duration = .seconds(10), workDirectory: String,
            environment: [String: String] = ProcessInfo.processInfo.environment
        ) {
            self.agentName = agentName
            self.node = node
            self.slots = slots
            self.killGrace = killGrace
            self.workDirectory = workDirectory
            self.environment = environment
        }
    }

    public let settings: Settings
    public let outbox: Outbox

    private let lock = NSLock()
    private var running: [String: TaskProcess] = [:]
    private var draining = false
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    public init(settings: Settings, outbox: Outbox) {
        self.settings = settings
        self.outbox = outbox
    }

    /// Starts the attempt `request` assigns. Returns false when the attempt
    /// is already running or its end is still to be reported (nothing
    /// started). A command that cannot run (no such file, no working
    /// directory) is not a refusal: the attempt ends FAILED with the reason.
    /// Throws `draining`, `slotsExhausted` or `invalidTask`.
    @discardableResult
    public func start(_ request: Trellis_V1_StartTaskRequest) throws(AgentError) -> Bool {
        let assignment = request.assignment
        let id = assignment.attempt.attemptID
        guard !id.isEmpty else { throw AgentError(.invalidTask, "the assignment has no attempt id") }
        guard case .process(let spec)? = assignment.task.spec else {
            throw AgentError(.invalidTask, "task \(assignment.taskID) is not a process task; trellis-agent runs only process tasks")
        }
        guard let program = spec.command.first, !program.isEmpty else {
            throw AgentError(.invalidTask, "task \(assignment.taskID) has an empty command")
        }
        lock.lock()
        defer { lock.unlock() }
        guard !draining else {
            throw AgentError(.draining, "agent \(settings.agentName) is draining and takes no new tasks")
        }
        if running[id] != nil || outbox.hasUnreportedEnd(of: id) { return false }
        guard running.count < settings.slots else {
            throw AgentError(.slotsExhausted, "all \(settings.slots) slots of agent \(settings.agentName) are busy")
        }
        let process: TaskProcess
        do {
            process = try TaskProcess.spawn(assignment, executor: request.executor, settings: settings, outbox: outbox) { [weak self] process, finished in
                self?.ended(process, finished)
            }
        } catch {
            outbox.append(Self.event(assignment.attempt, executor: request.executor, .finished(AttemptEnding.cannotRun(error.message))))
            return true
        }
        running[id] = process
        var started = Trellis_V1_AttemptStarted()
        started.externalID = settings.agentName
        started.externalKind = .agent
        started.node = settings.node
        outbox.append(Self.event(assignment.attempt, executor: request.executor, .started(started)))
        process.begin()
        return true
    }

    /// Stops a running attempt (SIGTERM, SIGKILL after the kill grace); its
    /// finished event says CANCELLED with `reason`. False when the agent
    /// does not run it.
    public func cancel(_ attempt: Trellis_V1_AttemptRef, reason: String) -> Bool {
        guard let process = lock.withLock({ running[attempt.attemptID] }) else { return false }
        process.stop(.cancelled(reason: reason))
        return true
    }

    /// Refuses new attempts from now on.
    public func beginDraining() {
        lock.withLock { draining = true }
    }

    /// Stops every running attempt for `cause`.
    public func stopAll(_ cause: StopCause) {
        for process in lock.withLock({ Array(running.values) }) { process.stop(cause) }
    }

    /// Waits until no attempt runs, up to `timeout`; whether none does.
    public func waitUntilIdle(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let idle = self.lock.withLock {
                        if !self.running.isEmpty { self.idleWaiters.append(continuation) }
                        return self.running.isEmpty
                    }
                    if idle { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            if !first { resumeIdleWaiters() }
            group.cancelAll()
            return lock.withLock { running.isEmpty }
        }
    }

    /// What the agent is doing now.
    public func load() -> Trellis_V1_AgentLoad {
        lock.withLock { currentLoad() }
    }

    /// The load and the attempts whose end is still to be reported, taken
    /// together (for Register).
    public func registration() -> (load: Trellis_V1_AgentLoad, endedUnreported: [Trellis_V1_AgentAttempt]) {
        lock.withLock { (currentLoad(), outbox.endedUnreported()) }
    }

    /// Attempts running now.
    public var runningCount: Int { lock.withLock { running.count } }

    // MARK: Private

    private func ended(_ process: TaskProcess, _ finished: Trellis_V1_AttemptFinished) {
        let waiters: [CheckedContinuation<Void, Never>] = lock.withLock {
            running[process.attemptID] = nil
            outbox.append(Self.event(process.assignment.attempt, executor: process.executor, .finished(finished)))
            guard running.isEmpty else { return [] }
            defer { idleWaiters = [] }
            return idleWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    private func resumeIdleWaiters() {
        let waiters = lock.withLock {
            defer { idleWaiters = [] }
            return idleWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Lock held.
    private func currentLoad() -> Trellis_V1_AgentLoad {
        var load = Trellis_V1_AgentLoad()
        load.running = running.values.sorted { $0.attemptID < $1.attemptID }.map { process in
            var attempt = Trellis_V1_AgentAttempt()
            attempt.attempt = process.assignment.attempt
            attempt.executor = process.executor
            return attempt
        }
        load.freeSlots = Int32(max(settings.slots - running.count, 0))
        load.draining = draining
        return load
    }

    static func event(_ attempt: Trellis_V1_AttemptRef, executor: String, _ kind: Trellis_V1_ExecutorEvent.OneOf_Event) -> Trellis_V1_AgentEvent {
        var event = Trellis_V1_AgentEvent()
        event.executor = executor
        event.event.attempt = attempt
        event.event.at = .now
        event.event.event = kind
        return event
    }
}
