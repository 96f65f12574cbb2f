import Synchronization

/// Where executor events wait for the scheduler: plugins post from any
/// thread, the scheduling loop takes everything that has arrived in one go,
/// so a burst of events (a wide fan-out finishing) costs one database batch
/// and one evaluation of each affected run instead of one per event.
///
/// Nothing is dropped: the inbox holds every event until it is taken. Its
/// size is bounded by the attempts in flight (a handful of events each) and
/// their log chunks.
public final class ExecutorEventInbox: Sendable {
    private struct State {
        var events: [ExecutorEventRecord] = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
    }

    private let state = Mutex(State())

    public init() {}

    /// Adds one event; wakes the waiting taker.
    public func post(_ event: ExecutorEventRecord) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.finished else { return nil }
            state.events.append(event)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// No more events will come; a waiting taker gets what is left, then nil.
    public func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.finished = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Events queued now, without waiting.
    public var count: Int { state.withLock { $0.events.count } }

    /// Waits until at least one event is there, then takes up to `maximum`
    /// of them, oldest first. Nil once finished and empty, or when the
    /// calling task is cancelled. One taker at a time.
    public func take(maximum: Int = 1_024) async -> [ExecutorEventRecord]? {
        while true {
            if Task.isCancelled { return nil }
            enum Step { case taken([ExecutorEventRecord]), ended, wait }
            let step = state.withLock { state -> Step in
                if !state.events.isEmpty {
                    let count = min(maximum, state.events.count)
                    let taken = Array(state.events.prefix(count))
                    state.events.removeFirst(count)
                    return .taken(taken)
                }
                return state.finished ? .ended : .wait
            }
            switch step {
            case .taken(let events): return events
            case .ended: return nil
            case .wait:
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in
                        let resumeNow = state.withLock { state -> Bool in
                            precondition(state.waiter == nil, "ExecutorEventInbox has one taker at a time")
                            if !state.events.isEmpty || state.finished || Task.isCancelled { return true }
                            state.waiter = continuation
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                        defer { state.waiter = nil }
                        return state.waiter
                    }
                    waiter?.resume()
                }
            }
        }
    }
}
