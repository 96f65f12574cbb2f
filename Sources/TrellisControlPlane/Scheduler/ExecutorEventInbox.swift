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
    /// Events taken together, and which acknowledged posts they carry.
    public struct Batch: Sendable {
        public var records: [ExecutorEventRecord]
        /// Post id → how many of its events are in this batch.
        fileprivate var acknowledging: [UInt64: Int] = [:]
        /// Indices of the records whose sender waits for nothing (`post`).
        fileprivate var unacknowledged: [Int] = []
        public var count: Int { records.count }
    }

    /// A post whose sender waits until its events are recorded.
    private struct Acknowledgement {
        var remaining: Int
        var failed = false
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var events: [(record: ExecutorEventRecord, post: UInt64?)] = []
        var waiter: CheckedContinuation<Void, Never>?
        var finished = false
        var nextPost: UInt64 = 1
        var acknowledgements: [UInt64: Acknowledgement] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Adds one event; wakes the waiting taker.
    public func post(_ event: ExecutorEventRecord) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.finished else { return nil }
            state.events.append((event, nil))
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Adds events and waits until the batches carrying them were recorded
    /// (`settle`): true when all were, false when recording failed or the
    /// inbox finished first. Agents are told their events arrived only
    /// then, so a crash between arrival and recording loses nothing (the
    /// agent reports them again).
    public func postAndWait(_ events: [ExecutorEventRecord]) async -> Bool {
        guard !events.isEmpty else { return true }
        return await withCheckedContinuation { continuation in
            let waiter = state.withLock { state -> (CheckedContinuation<Void, Never>?, refused: Bool) in
                guard !state.finished else { return (nil, true) }
                let post = state.nextPost
                state.nextPost += 1
                state.acknowledgements[post] = Acknowledgement(remaining: events.count, continuation: continuation)
                state.events += events.map { ($0, post) }
                defer { state.waiter = nil }
                return (state.waiter, false)
            }
            if waiter.refused { continuation.resume(returning: false) }
            waiter.0?.resume()
        }
    }

    /// The taker says how recording `batch` went; waiting posters whose
    /// events are all settled resume.
    public func settle(_ batch: Batch, recorded: Bool) {
        let done = state.withLock { state -> [(CheckedContinuation<Bool, Never>, Bool)] in
            var done: [(CheckedContinuation<Bool, Never>, Bool)] = []
            for (post, count) in batch.acknowledging {
                guard var acknowledgement = state.acknowledgements[post] else { continue }
                acknowledgement.remaining -= count
                acknowledgement.failed = acknowledgement.failed || !recorded
                if acknowledgement.remaining <= 0 {
                    state.acknowledgements[post] = nil
                    done.append((acknowledgement.continuation, !acknowledgement.failed))
                } else {
                    state.acknowledgements[post] = acknowledgement
                }
            }
            return done
        }
        for (continuation, recorded) in done { continuation.resume(returning: recorded) }
    }

    /// After recording `batch` failed (the database down): puts back, ahead
    /// of everything queued since, the starts and ends nobody would report
    /// again — those of plain `post`s (plugins); an agent's `postAndWait`
    /// learns of the failure and reports its events again. Recording a start
    /// or an end twice is harmless (fencing tokens and expected states make
    /// the second a no-op). Log chunks are not put back: the failed batch may
    /// have stored some of them, and repeating those would duplicate lines.
    /// Returns how many events were put back.
    @discardableResult
    public func requeueAfterFailure(_ batch: Batch) -> Int {
        let again = batch.unacknowledged.map { batch.records[$0] }.filter { record in
            switch record.event.event {
            case .started?, .finished?: true
            default: false
            }
        }
        guard !again.isEmpty else { return 0 }
        let (requeued, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Void, Never>?) in
            guard !state.finished else { return (false, nil) }
            state.events.insert(contentsOf: again.map { ($0, nil) }, at: 0)
            defer { state.waiter = nil }
            return (true, state.waiter)
        }
        waiter?.resume()
        return requeued ? again.count : 0
    }

    /// No more events will come; a waiting taker gets what is left, then nil.
    public func finish() {
        let (waiter, abandoned) = state.withLock { state -> (CheckedContinuation<Void, Never>?, [CheckedContinuation<Bool, Never>]) in
            state.finished = true
            let abandoned = state.acknowledgements.values.map(\.continuation)
            state.acknowledgements.removeAll()
            defer { state.waiter = nil }
            return (state.waiter, abandoned)
        }
        waiter?.resume()
        // Nobody will record them now: their senders report them again.
        for continuation in abandoned { continuation.resume(returning: false) }
    }

    /// Events queued now, without waiting.
    public var count: Int { state.withLock { $0.events.count } }

    /// Waits until at least one event is there, then takes up to `maximum`
    /// of them, oldest first. Nil once finished and empty, or when the
    /// calling task is cancelled. One taker at a time.
    public func take(maximum: Int = 1_024) async -> Batch? {
        while true {
            if Task.isCancelled { return nil }
            enum Step { case taken(Batch), ended, wait }
            let step = state.withLock { state -> Step in
                if !state.events.isEmpty {
                    let count = min(maximum, state.events.count)
                    var batch = Batch(records: [])
                    batch.records.reserveCapacity(count)
                    for (record, post) in state.events.prefix(count) {
                        if let post {
                            batch.acknowledging[post, default: 0] += 1
                        } else {
                            batch.unacknowledged.append(batch.records.count)
                        }
                        batch.records.append(record)
                    }
                    state.events.removeFirst(count)
                    return .taken(batch)
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
