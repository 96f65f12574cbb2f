public import Foundation
public import TrellisProto

/// The events an agent owes the control plane, in the order they happened,
/// kept until a `ReportEvents` call carrying them succeeds, so nothing is
/// lost across a disconnect (fencing tokens make a repeat harmless).
///
/// It is also where log backpressure lives: the bytes of log chunks an
/// attempt has queued and not yet seen acknowledged are capped
/// (`logBytesPerAttempt`). A task's output reader reserves room before it
/// reads its pipe and waits while there is none, so a task printing
/// gigabytes blocks in `write` instead of growing the agent's memory.
/// Started and finished events are never refused or dropped.
///
/// Output readers block on threads of their own; the link's sender waits
/// asynchronously (`waitForEvents`) and is woken the moment anything is
/// queued, with no polling in the send path.
public final class Outbox: @unchecked Sendable {  // every field is guarded by `condition`
    /// The cap on one attempt's unacknowledged log bytes.
    public let logBytesPerAttempt: Int
    /// Consecutive output of one stream is merged into chunks of up to this
    /// many bytes while it waits.
    public static let maximumChunkBytes = 64 * 1024

    private struct Entry {
        var sequence: UInt64
        var event: Trellis_V1_AgentEvent
        var logBytes: Int
    }

    private let condition = NSCondition()
    private var entries: [Entry] = []
    private var nextSequence: UInt64 = 1
    /// Entries up to here are in a call in flight: never merged into.
    private var inFlightThrough: UInt64 = 0
    /// Per attempt: log bytes queued or reserved and not yet acknowledged.
    private var logBytes: [String: Int] = [:]
    private var sender: CheckedContinuation<Void, Never>?
    private var emptyWaiters: [CheckedContinuation<Void, Never>] = []

    public init(logBytesPerAttempt: Int = 1 << 20) {
        self.logBytesPerAttempt = max(logBytesPerAttempt, 1)
    }

    // MARK: Producing

    /// Queues a started or finished event.
    public func append(_ event: Trellis_V1_AgentEvent) {
        condition.lock()
        entries.append(Entry(sequence: nextSequence, event: event, logBytes: 0))
        nextSequence += 1
        let waiter = takeSender()
        condition.unlock()
        waiter?.resume()
    }

    /// Reserves room for up to `wanted` bytes of `attemptID`'s output,
    /// waiting up to `timeout` for acknowledgements to make some. Returns
    /// the bytes granted (0 when none came free in time); give back what a
    /// read did not use with `appendLog` or `release`.
    public func reserveLogBytes(for attemptID: String, upTo wanted: Int, timeout: Duration) -> Int {
        let deadline = Date().addingTimeInterval(Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18)
        condition.lock()
        defer { condition.unlock() }
        while true {
            let used = logBytes[attemptID, default: 0]
            if used < logBytesPerAttempt {
                let granted = min(wanted, logBytesPerAttempt - used)
                logBytes[attemptID] = used + granted
                return granted
            }
            if !condition.wait(until: deadline) { return 0 }
        }
    }

    /// Gives back reserved room that no output filled.
    public func release(_ bytes: Int, for attemptID: String) {
        guard bytes > 0 else { return }
        condition.lock()
        subtractLogBytes(bytes, for: attemptID)
        condition.unlock()
    }

    /// Queues output read with `reserved` bytes of room (0 when read past
    /// the cap, as a process's last output after it exited is). Merged into
    /// the previous chunk when that is the same attempt and stream and not
    /// yet being sent.
    public func appendLog(_ data: Data, stream: Trellis_V1_LogStream, attempt: Trellis_V1_AttemptRef, executor: String, reserved: Int) {
        condition.lock()
        let id = attempt.attemptID
        // The chunk now counts for its size; what the read left unused is free.
        logBytes[id, default: 0] += data.count - reserved
        if logBytes[id, default: 0] <= 0 { logBytes[id] = nil }
        if data.count < reserved { condition.broadcast() }
        if var last = entries.last, last.sequence > inFlightThrough, last.logBytes > 0,
           last.event.executor == executor, last.event.event.attempt == attempt,
           case .log(var chunk)? = last.event.event.event, chunk.stream == stream,
           chunk.data.count + data.count <= Self.maximumChunkBytes
        {
            chunk.data.append(data)
            last.event.event.log = chunk
            last.logBytes += data.count
            entries[entries.count - 1] = last
        } else {
            var event = Trellis_V1_AgentEvent()
            event.executor = executor
            event.event.attempt = attempt
            event.event.at = .now
            event.event.log.stream = stream
            event.event.log.data = data
            entries.append(Entry(sequence: nextSequence, event: event, logBytes: data.count))
            nextSequence += 1
        }
        let waiter = takeSender()
        condition.unlock()
        waiter?.resume()
    }

    // MARK: Sending

    /// Events queued and not yet acknowledged, oldest first, up to about
    /// `maximumBytes` (at least one); nil when there are none. They count
    /// as in flight until `acknowledge(through:)` or `sendFailed()`.
    public func nextBatch(maximumBytes: Int = 2 << 20) -> (events: [Trellis_V1_AgentEvent], through: UInt64)? {
        condition.lock()
        defer { condition.unlock() }
        guard !entries.isEmpty else { return nil }
        var events: [Trellis_V1_AgentEvent] = []
        var bytes = 0
        var through: UInt64 = 0
        for entry in entries {
            let size = entry.logBytes + 128
            if !events.isEmpty && bytes + size > maximumBytes { break }
            events.append(entry.event)
            bytes += size
            through = entry.sequence
        }
        inFlightThrough = through
        return (events, through)
    }

    /// The control plane has the events up to `through`: forget them and
    /// free their log room.
    public func acknowledge(through: UInt64) {
        condition.lock()
        var removed = 0
        for entry in entries {
            guard entry.sequence <= through else { break }
            if entry.logBytes > 0 { subtractLogBytes(entry.logBytes, for: entry.event.event.attempt.attemptID) }
            removed += 1
        }
        entries.removeFirst(removed)
        inFlightThrough = 0
        let waiters = entries.isEmpty ? emptyWaiters : []
        if entries.isEmpty { emptyWaiters = [] }
        condition.broadcast()
        condition.unlock()
        for waiter in waiters { waiter.resume() }
    }

    /// The call carrying the last batch failed: its events will go again.
    public func sendFailed() {
        condition.lock()
        inFlightThrough = 0
        condition.unlock()
    }

    /// Returns when something is queued (at once if something is). One
    /// sender at a time; cancellation returns early.
    public func waitForEvents() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                condition.lock()
                if !entries.isEmpty || Task.isCancelled {
                    condition.unlock()
                    continuation.resume()
                    return
                }
                let previous = sender
                sender = continuation
                condition.unlock()
                previous?.resume()
            }
        } onCancel: {
            condition.lock()
            let waiter = takeSender()
            condition.unlock()
            waiter?.resume()
        }
    }

    /// Waits until every event has been acknowledged, up to `timeout`;
    /// whether it got there.
    public func waitUntilEmpty(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    self.condition.lock()
                    if self.entries.isEmpty {
                        self.condition.unlock()
                        continuation.resume()
                    } else {
                        self.emptyWaiters.append(continuation)
                        self.condition.unlock()
                    }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            if !first {
                // Let the waiting child finish: release every empty-waiter
                // (each caller re-checks `isEmpty` before answering).
                let waiters = condition.withLock {
                    defer { emptyWaiters = [] }
                    return emptyWaiters
                }
                for waiter in waiters { waiter.resume() }
            }
            group.cancelAll()
            return first && isEmpty
        }
    }

    // MARK: Reading

    /// Whether every event has been acknowledged.
    public var isEmpty: Bool {
        condition.lock()
        defer { condition.unlock() }
        return entries.isEmpty
    }

    /// Events queued and not yet acknowledged.
    public var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return entries.count
    }

    /// Log bytes `attemptID` has queued or reserved and not yet seen
    /// acknowledged (what backpressure bounds).
    public func bufferedLogBytes(for attemptID: String) -> Int {
        condition.lock()
        defer { condition.unlock() }
        return logBytes[attemptID, default: 0]
    }

    /// Attempts whose finished event is queued: ended, not yet reported.
    public func endedUnreported() -> [Trellis_V1_AgentAttempt] {
        condition.lock()
        defer { condition.unlock() }
        return entries.compactMap { entry in
            guard case .finished? = entry.event.event.event else { return nil }
            var attempt = Trellis_V1_AgentAttempt()
            attempt.attempt = entry.event.event.attempt
            attempt.executor = entry.event.executor
            return attempt
        }
    }

    /// Whether `attemptID`'s finished event is still queued.
    public func hasUnreportedEnd(of attemptID: String) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return entries.contains { entry in
            if case .finished? = entry.event.event.event { return entry.event.event.attempt.attemptID == attemptID }
            return false
        }
    }

    // MARK: Private (condition held)

    private func takeSender() -> CheckedContinuation<Void, Never>? {
        defer { sender = nil }
        return sender
    }

    private func subtractLogBytes(_ bytes: Int, for attemptID: String) {
        let left = logBytes[attemptID, default: 0] - bytes
        logBytes[attemptID] = left > 0 ? left : nil
        condition.broadcast()
    }
}

extension Trellis_V1_Timestamp {
    /// The current time.
    static var now: Trellis_V1_Timestamp {
        var timestamp = Trellis_V1_Timestamp()
        timestamp.unixMicros = Int64((Date().timeIntervalSince1970 * 1_000_000).rounded())
        return timestamp
    }
}
