/// The scaled-pool's sizing decisions, as a pure state machine: fed a poll
/// (the time, the executor's queued and running task counts, the worker
/// Deployment's replicas and the pool's agents), it answers what to do.
/// No clock of its own and no I/O: tests drive it with made-up times.
///
/// - desired = clamp(ceil((queued + running) / tasks_per_worker), min, max);
/// - scale out at once, to desired, whenever desired > replicas;
/// - scale in only to the highest desired of the last `cooldown` seconds
///   (so only after the load has stayed low that long, as KEDA's
///   cooldownPeriod and the HPA's stabilization window do), and only by
///   workers that are idle: each is named (a victim), the executor stops
///   dispatching to it and marks its pod cheapest to delete, then lowers
///   the replicas by that many — a busy worker is never the one removed
///   (what KEDA cannot do: kedacore/keda#3680);
/// - a victim whose agent is still there, not draining, well after the
///   replicas went down (the ReplicaSet removed another pod, e.g. one still
///   Pending) is released: it takes work again and its mark is removed.
public struct Autoscaler: Sendable {
    public struct Configuration: Sendable, Equatable {
        public var minReplicas: Int
        public var maxReplicas: Int
        public var tasksPerWorker: Int
        /// µs between polls.
        public var pollingInterval: Int64
        /// µs the load must stay low before a scale-in.
        public var cooldown: Int64
        /// µs after which a victim still serving is released.
        public var releaseAfter: Int64

        public init(minReplicas: Int, maxReplicas: Int, tasksPerWorker: Int, pollingIntervalSeconds: Int, cooldownSeconds: Int) {
            self.minReplicas = minReplicas
            self.maxReplicas = maxReplicas
            self.tasksPerWorker = tasksPerWorker
            pollingInterval = Int64(pollingIntervalSeconds) * 1_000_000
            cooldown = Int64(cooldownSeconds) * 1_000_000
            releaseAfter = max(3 * pollingInterval, 30_000_000)
        }
    }

    /// An agent of the pool as the poll sees it.
    public struct Worker: Sendable, Equatable {
        public var name: String
        /// Running or starting a task of this executor.
        public var busy: Bool
        public var draining: Bool

        public init(name: String, busy: Bool, draining: Bool = false) {
            self.name = name
            self.busy = busy
            self.draining = draining
        }
    }

    public enum Action: Sendable, Equatable {
        /// Set the Deployment's replicas (up).
        case scaleOut(to: Int)
        /// Stop dispatching to `victims`, mark their pods cheapest to
        /// delete, then set the replicas to `to`.
        case scaleIn(to: Int, victims: [String])
        /// Dispatch to these again and remove their mark.
        case release([String])
    }

    public let configuration: Configuration
    /// desired of every poll of the last `cooldown`, oldest first.
    private(set) var history: [(at: Int64, desired: Int)] = []
    private(set) var lastPoll: Int64?
    /// The first poll: scale-ins wait until a whole cooldown has been seen.
    private(set) var firstPoll: Int64?
    /// Victims not yet gone, with when they were chosen.
    public private(set) var victims: [String: Int64] = [:]

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    public func desired(queued: Int, running: Int) -> Int {
        let load = max(0, queued) + max(0, running)
        let workers = (load + configuration.tasksPerWorker - 1) / configuration.tasksPerWorker
        return min(max(workers, configuration.minReplicas), configuration.maxReplicas)
    }

    /// Whether a poll is due at `now`.
    public func isDue(_ now: Int64) -> Bool {
        guard let lastPoll else { return true }
        return now - lastPoll >= configuration.pollingInterval
    }

    /// One poll: what to do, in order.
    public mutating func poll(now: Int64, queued: Int, running: Int, replicas: Int, workers: [Worker]) -> [Action] {
        lastPoll = now
        if firstPoll == nil { firstPoll = now }
        let desired = desired(queued: queued, running: running)
        history.append((now, desired))
        history.removeAll { now - $0.at > configuration.cooldown }
        var actions: [Action] = []

        // Victims: gone (or going) ones are forgotten; one still serving long
        // after is released.
        let present = Dictionary(workers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var released: [String] = []
        for (name, chosen) in victims.sorted(by: { $0.key < $1.key }) {
            guard let worker = present[name] else { victims[name] = nil; continue }
            if worker.draining { continue }
            if desired > replicas || now - chosen > configuration.releaseAfter {
                victims[name] = nil
                released.append(name)
            }
        }
        if !released.isEmpty { actions.append(.release(released)) }

        if desired > replicas {
            actions.append(.scaleOut(to: desired))
            return actions
        }
        // Scale in only once a whole cooldown has been watched, to the
        // highest desired of its polls.
        guard let firstPoll, now - firstPoll >= configuration.cooldown else { return actions }
        let target = history.map(\.desired).max() ?? desired
        guard target < replicas else { return actions }
        let idle = workers
            .filter { !$0.busy && !$0.draining && victims[$0.name] == nil }
            .map(\.name)
            .sorted()
        // As many as there are idle workers, each named: the ReplicaSet
        // removes that many pods, ranking unscheduled, pending and unready
        // pods first and then the lowest deletion cost — our victims — so
        // a busy worker (cost 0) is never among them.
        let named = Array(idle.prefix(replicas - target))
        guard !named.isEmpty else { return actions }
        for name in named { victims[name] = now }
        let removable = named.count
        actions.append(.scaleIn(to: replicas - removable, victims: named))
        return actions
    }

    /// A victim the executor could not mark (it became busy, or its pod
    /// could not be annotated): it is not a victim any more.
    public mutating func forget(_ name: String) {
        victims[name] = nil
    }
}
