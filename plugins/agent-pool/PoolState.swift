import TrellisPluginKit

/// What the executor knows, and every decision it makes, without I/O:
/// PoolExecutor calls these under its mutex and carries out what they
/// return (agent calls, events, log lines) after releasing it.

/// An agent as the last AgentsUpdate showed it.
struct AgentSnapshot: Sendable {
    var name: String
    var pool: String
    var labels: [String: String]
    var slots: Int
    var freeSlots: Int
    var draining: Bool
    var running: Set<String>
    /// It refused a start since its last snapshot (full, draining, gone):
    /// no more starts until the next snapshot or tick.
    var refused = false
}

/// A task waiting for an agent, with its StartTask request ready.
struct PendingTask: Sendable {
    var attemptID: String
    var fencingToken: Int64
    /// `dag.task`, for log lines.
    var name: String
    var selector: QueueSelector
    var startRequest: [UInt8]
    /// Submission order; requeued tasks keep theirs.
    var sequence: UInt64 = 0
    /// When it was queued (wall clock, µs).
    var queuedAt: Int64 = 0
}

/// An attempt this executor started on an agent (or adopted there).
struct Placement: Sendable {
    enum Phase: Sendable {
        /// StartTask sent, no answer yet.
        case starting
        /// The agent accepted it (or it was adopted there).
        case placed
    }

    var agent: String
    var fencingToken: Int64
    var phase: Phase
    /// A snapshot listed it among the agent's running attempts.
    var seen = false
    /// Snapshots of the agent since the StartTask that did not list it.
    var missed = 0
    /// Adopted after a restart: kept while its agent has not come back, until then (µs).
    var adoptedUntil: Int64?
    /// The task while starting, to requeue it if the agent refuses.
    var task: PendingTask?
    /// Cancel arrived while starting; carried out when the agent answers.
    var cancelReason: String?

    /// Whether it holds a slot the agent's snapshot does not count yet:
    /// from the StartTask until the agent's next snapshot, which lists it
    /// (counted in free_slots) or does not (not started yet, or already
    /// ended). Either way the reservation ends there, so a task that ends
    /// before any snapshot shows it cannot leak a slot; at worst one start
    /// too many is sent, and the agent refuses it (RESOURCE_EXHAUSTED).
    var reservesSlot: Bool {
        !seen && adoptedUntil == nil && missed == 0
    }
}

/// One StartTask to send.
struct Dispatch: Sendable {
    var attemptID: String
    var agent: String
    var request: [UInt8]
}

/// What to do about a cancel request.
enum CancelAction: Sendable {
    case emit(FinishedEvent)
    case cancelOnAgent(agent: String, attemptID: String, fencingToken: Int64, reason: String)
    /// Its StartTask is in flight; the answer decides.
    case deferred
}

/// What to do when a StartTask call ends.
enum StartOutcomeAction: Sendable {
    case nothing
    case emit(FinishedEvent)
    case cancelOnAgent(agent: String, attemptID: String, fencingToken: Int64, reason: String)
}

/// Tasks waiting for agents that match one selector, in submission order.
/// Cancelled tasks leave stale entries, skipped when they reach the head.
struct SelectorQueue: Sendable {
    let selector: QueueSelector
    private var entries: [(sequence: UInt64, attemptID: String)] = []
    private var head = 0

    init(selector: QueueSelector) { self.selector = selector }

    var isEmpty: Bool { head == entries.count }

    var first: (sequence: UInt64, attemptID: String)? { isEmpty ? nil : entries[head] }

    mutating func removeFirst() {
        head += 1
        if head == entries.count {
            entries.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64, head * 2 >= entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }

    /// Inserts in sequence order (appending for new tasks, near the front
    /// for requeued ones).
    mutating func insert(sequence: UInt64, attemptID: String) {
        if isEmpty || entries[entries.count - 1].sequence < sequence {
            entries.append((sequence, attemptID))
            return
        }
        var index = head
        while index < entries.count, entries[index].sequence < sequence { index += 1 }
        if index == head, head > 0 {
            head -= 1
            entries[head] = (sequence, attemptID)
        } else {
            entries.insert((sequence, attemptID), at: index)
        }
    }
}

struct PoolState: Sendable {
    let settings: PoolSettings
    let executor: String

    /// The last AgentsUpdate, every pool's agents, by name.
    private(set) var agents: [String: AgentSnapshot] = [:]
    /// Queued tasks by attempt id; `queues` orders them.
    private(set) var queued: [String: PendingTask] = [:]
    private var queues: [QueueSelector: SelectorQueue] = [:]
    /// Adopted attempts that may have reached an agent before the restart,
    /// with the time their grace ends (µs).
    private(set) var held: [String: (task: PendingTask, until: Int64)] = [:]
    private(set) var placements: [String: Placement] = [:]
    private var nextSequence: UInt64 = 1
    /// Selectors already warned about (no matching agent).
    private var warned: Set<QueueSelector> = []
    /// A dispatch loop runs (see PoolExecutor.pump).
    var pumping = false
    /// Agents given no new work (scaled-pool's scale-in victims).
    private(set) var cordoned: Set<String> = []

    init(settings: PoolSettings, executor: String) {
        self.settings = settings
        self.executor = executor
    }

    func knows(_ attemptID: String) -> Bool {
        queued[attemptID] != nil || held[attemptID] != nil || placements[attemptID] != nil
    }

    // MARK: Submit and dispatch

    /// Queues a new task at the back; false if the attempt is already known.
    mutating func submit(_ task: PendingTask, now: Int64) -> Bool {
        guard !knows(task.attemptID) else { return false }
        var task = task
        task.sequence = nextSequence
        nextSequence += 1
        task.queuedAt = now
        enqueue(task)
        return true
    }

    private mutating func enqueue(_ task: PendingTask) {
        queued[task.attemptID] = task
        queues[task.selector, default: SelectorQueue(selector: task.selector)].insert(sequence: task.sequence, attemptID: task.attemptID)
    }

    /// The oldest task some agent can take now, on the least-loaded such
    /// agent; it moves from the queue to the placements as starting.
    mutating func nextDispatch() -> Dispatch? {
        if queued.isEmpty { return nil }
        var reserved: [String: Int] = [:]
        for placement in placements.values where placement.reservesSlot { reserved[placement.agent, default: 0] += 1 }

        var best: (selector: QueueSelector, sequence: UInt64, agent: String)?
        for selector in Array(queues.keys) {
            guard let head = validHead(selector) else { continue }
            if let best, best.sequence < head.sequence { continue }
            if let agent = leastLoadedAgent(for: selector, reserved: reserved) {
                best = (selector, head.sequence, agent)
            }
        }
        guard let best, let head = queues[best.selector]?.first, let task = queued.removeValue(forKey: head.attemptID) else {
            return nil
        }
        queues[best.selector]!.removeFirst()
        if queues[best.selector]!.isEmpty { queues[best.selector] = nil }
        placements[task.attemptID] = Placement(agent: best.agent, fencingToken: task.fencingToken, phase: .starting, task: task)
        return Dispatch(attemptID: task.attemptID, agent: best.agent, request: task.startRequest)
    }

    /// The queue's first live entry, dropping cancelled ones; removes an
    /// emptied queue.
    private mutating func validHead(_ selector: QueueSelector) -> (sequence: UInt64, attemptID: String)? {
        while let first = queues[selector]?.first {
            if queued[first.attemptID]?.sequence == first.sequence { return first }
            queues[selector]!.removeFirst()
        }
        queues[selector] = nil
        return nil
    }

    /// Agents of the pool, not draining, whose labels match, with a free
    /// slot after this executor's unaccounted starts; the one with most
    /// free slots relative to its slots, ties by name.
    private func leastLoadedAgent(for selector: QueueSelector, reserved: [String: Int]) -> String? {
        var best: (name: String, free: Int, slots: Int)?
        for agent in agents.values
        where agent.pool == settings.agentPool && !agent.draining && !agent.refused && agent.slots > 0 && !cordoned.contains(agent.name)
            && selector.matches(agent.labels) {
            let free = min(agent.freeSlots, agent.slots) - reserved[agent.name, default: 0]
            guard free > 0 else { continue }
            if let current = best {
                let mine = Int64(free) * Int64(current.slots)
                let theirs = Int64(current.free) * Int64(agent.slots)
                guard mine > theirs || (mine == theirs && agent.name < current.name) else { continue }
            }
            best = (agent.name, free, agent.slots)
        }
        return best?.name
    }

    // MARK: Cordons (scaled-pool)

    /// Running, starting or holding a task: reported running attempts, a
    /// slot in use, or a start this executor sent that it does not report yet.
    func isBusy(_ name: String) -> Bool {
        guard let agent = agents[name] else { return false }
        return !agent.running.isEmpty || agent.freeSlots < agent.slots || placements.values.contains { $0.agent == name }
    }

    /// The agents of the pool, busy or not.
    var poolAgents: [AgentSnapshot] { agents.values.filter { $0.pool == settings.agentPool }.sorted { $0.name < $1.name } }

    /// Gives the named agents no new work, those still idle; returns them.
    mutating func cordon(_ names: [String]) -> [String] {
        let idle = names.filter { agents[$0] != nil && !isBusy($0) }
        cordoned.formUnion(idle)
        return idle
    }

    mutating func uncordon(_ names: [String]) {
        cordoned.subtract(names)
    }

    // MARK: Answers to StartTask

    /// The agent accepted: it owns the attempt now.
    mutating func startAccepted(_ attemptID: String, agent: String) -> StartOutcomeAction {
        guard var placement = placements[attemptID], placement.agent == agent, placement.phase == .starting else { return .nothing }
        placement.phase = .placed
        placement.task = nil
        let cancel = placement.cancelReason
        placement.cancelReason = nil
        placements[attemptID] = placement
        if let cancel {
            return .cancelOnAgent(agent: agent, attemptID: attemptID, fencingToken: placement.fencingToken, reason: cancel)
        }
        return .nothing
    }

    /// The agent could not take it now (full, draining, gone): back to the
    /// front of the queue, and no more starts on that agent until its next
    /// snapshot or the next tick.
    mutating func startRefusedForNow(_ attemptID: String, agent: String) -> StartOutcomeAction {
        agents[agent]?.refused = true
        guard var placement = placements[attemptID], placement.agent == agent, placement.phase == .starting,
              let task = placement.task else { return .nothing }
        if placement.seen || agentRunning(attemptID) != nil {
            // A snapshot shows it running there (the call failed after the
            // agent started it): it stays placed, never starts twice.
            placement.agent = agentRunning(attemptID) ?? agent
            placement.phase = .placed
            placement.task = nil
            placement.seen = true
            placements[attemptID] = placement
            if let reason = placement.cancelReason {
                placements[attemptID]!.cancelReason = nil
                return .cancelOnAgent(agent: placement.agent, attemptID: attemptID, fencingToken: placement.fencingToken, reason: reason)
            }
            return .nothing
        }
        placements[attemptID] = nil
        if let reason = placement.cancelReason {
            return .emit(.cancelled(attemptID, task.fencingToken, reason: reason))
        }
        enqueue(task)
        return .nothing
    }

    /// The agent refused the task itself (INVALID_ARGUMENT or another error):
    /// the attempt fails.
    mutating func startFailed(_ attemptID: String, agent: String, status: Int32, message: String) -> StartOutcomeAction {
        guard let placement = placements[attemptID], placement.agent == agent, placement.phase == .starting else { return .nothing }
        placements[attemptID] = nil
        if let reason = placement.cancelReason {
            return .emit(.cancelled(attemptID, placement.fencingToken, reason: reason))
        }
        let detail = message.isEmpty ? "status \(status)" : "\(message) (status \(status))"
        return .emit(.failed(
            attemptID, placement.fencingToken, reason: "AgentRefused",
            message: "agent '\(agent)' refused to start \(placement.task?.name ?? "the task"): \(detail)"
        ))
    }

    // MARK: Agents

    /// Replaces the snapshot (the whole list) and reconciles placements
    /// and held attempts with what agents say they run.
    mutating func replaceAgents(_ list: [AgentSnapshot], now: Int64) {
        var byName: [String: AgentSnapshot] = [:]
        for agent in list { byName[agent.name] = agent }
        agents = byName

        for (attemptID, var placement) in placements {
            guard let agent = agents[placement.agent] else {
                // Gone: the control plane reports its attempts lost. Starts
                // in flight wait for their answer; adopted attempts wait
                // for the agent to come back, within the grace.
                if placement.phase == .placed, (placement.adoptedUntil ?? Int64.min) <= now {
                    placements[attemptID] = nil
                }
                continue
            }
            if agent.running.contains(attemptID) {
                placement.seen = true
                placement.missed = 0
            } else {
                placement.missed += 1
                // Placed and not running: it ended (it was listed before,
                // or three snapshots never listed it). Kept until then so
                // cancel knows its agent.
                if placement.phase == .placed, placement.seen || placement.missed >= 3 {
                    placements[attemptID] = nil
                    continue
                }
            }
            placements[attemptID] = placement
        }

        // An attempt an agent runs is not started again: adopted ones held
        // for their grace, and queued ones whose StartTask reached the
        // agent though the call failed (UNAVAILABLE as a connection broke).
        if queued.isEmpty && held.isEmpty { return }
        for agent in agents.values {
            for attemptID in agent.running {
                let fencingToken: Int64
                if let task = queued.removeValue(forKey: attemptID) {
                    fencingToken = task.fencingToken
                } else if let entry = held.removeValue(forKey: attemptID) {
                    fencingToken = entry.task.fencingToken
                } else {
                    continue
                }
                placements[attemptID] = Placement(agent: agent.name, fencingToken: fencingToken, phase: .placed, seen: true)
            }
        }
    }

    /// The agent whose snapshot lists the attempt as running.
    func agentRunning(_ attemptID: String) -> String? {
        agents.values.first { $0.running.contains(attemptID) }?.name
    }

    // MARK: Cancel

    mutating func cancel(_ attemptID: String, fencingToken: Int64, reason: String) -> CancelAction {
        if let task = queued.removeValue(forKey: attemptID) {
            return .emit(.cancelled(attemptID, task.fencingToken, reason: reason))
        }
        if let entry = held.removeValue(forKey: attemptID) {
            return .emit(.cancelled(attemptID, entry.task.fencingToken, reason: reason))
        }
        if var placement = placements[attemptID] {
            if placement.phase == .starting {
                placement.cancelReason = reason
                placements[attemptID] = placement
                return .deferred
            }
            return .cancelOnAgent(agent: placement.agent, attemptID: attemptID, fencingToken: placement.fencingToken, reason: reason)
        }
        if let agent = agentRunning(attemptID) {
            return .cancelOnAgent(agent: agent, attemptID: attemptID, fencingToken: fencingToken, reason: reason)
        }
        return .emit(.cancelled(attemptID, fencingToken, reason: reason))
    }

    // MARK: Adopt

    /// An attempt the database has on `agent`: remembered there.
    mutating func adoptPlaced(_ attemptID: String, fencingToken: Int64, agent: String, now: Int64) {
        guard !knows(attemptID) else { return }
        let seen = agents[agent]?.running.contains(attemptID) ?? false
        placements[attemptID] = Placement(
            agent: agent, fencingToken: fencingToken, phase: .placed, seen: seen,
            adoptedUntil: now + settings.adoptGraceSeconds * 1_000_000
        )
    }

    /// An attempt that was queued here before the restart: running if an
    /// agent says so, otherwise held for the grace, then queued.
    mutating func adoptUnplaced(_ task: PendingTask, now: Int64) {
        guard !knows(task.attemptID) else { return }
        var task = task
        task.sequence = nextSequence
        nextSequence += 1
        task.queuedAt = now
        if let agent = agentRunning(task.attemptID) {
            placements[task.attemptID] = Placement(agent: agent, fencingToken: task.fencingToken, phase: .placed, seen: true)
        } else if settings.adoptGraceSeconds <= 0 {
            enqueue(task)
        } else {
            held[task.attemptID] = (task, now + settings.adoptGraceSeconds * 1_000_000)
        }
    }

    // MARK: Tick

    /// Lets refused agents be tried again, queues held attempts whose grace
    /// ended, and returns warnings about selectors no agent can serve.
    mutating func tick(now: Int64) -> [String] {
        for name in Array(agents.keys) where agents[name]!.refused { agents[name]!.refused = false }
        for (attemptID, entry) in held where entry.until <= now {
            held[attemptID] = nil
            enqueue(entry.task)
        }

        var warnings: [String] = []
        var waiting: Set<QueueSelector> = []
        for selector in Array(queues.keys) {
            guard let head = validHead(selector), let task = queued[head.attemptID] else { continue }
            waiting.insert(selector)
            let served = agents.values.contains { $0.pool == settings.agentPool && !$0.draining && selector.matches($0.labels) }
            if served {
                warned.remove(selector)
            } else if now - task.queuedAt >= settings.noAgentWarningSeconds * 1_000_000, !warned.contains(selector) {
                warned.insert(selector)
                let count = queued.values.count { $0.selector == selector }
                let waited = (now - task.queuedAt) / 1_000_000
                warnings.append(
                    "\(count) task(s) with queue selector '\(selector)' have waited \(waited) s and no agent of pool '\(settings.agentPool)' matches it (none connected with those labels, or all draining); they stay queued until one joins"
                )
            }
        }
        warned.formIntersection(waiting)
        return warnings
    }
}
