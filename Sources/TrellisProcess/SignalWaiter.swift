import Dispatch
#if canImport(Glibc)
public import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif

/// Turns signals (SIGTERM, SIGINT) into an awaitable event instead of the
/// default action, so a server can shut down gracefully: `trellisd serve`
/// and `trellis-agent` wait on one. `fire` injects an event of the
/// program's own (0: not a signal).
public final class SignalWaiter: @unchecked Sendable {  // sources are only kept alive, never touched after init
    private let stream: AsyncStream<Int32>
    private let continuation: AsyncStream<Int32>.Continuation
    private let sources: [any DispatchSourceSignal]

    /// Starts catching `signals`; their default action no longer applies.
    public init(_ signals: [Int32]) {
        let (stream, continuation) = AsyncStream<Int32>.makeStream()
        self.stream = stream
        self.continuation = continuation
        sources = signals.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    /// Wakes `next()` with `value`.
    public func fire(_ value: Int32) { continuation.yield(value) }

    /// The next signal received (or value fired).
    public func next() async -> Int32 {
        var iterator = stream.makeAsyncIterator()
        return await iterator.next() ?? SIGTERM
    }
}
