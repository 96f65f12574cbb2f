import Dispatch
import Foundation

/// Turns SIGTERM and SIGINT into an awaitable event instead of death (as
/// trellisd's serve does); `fire` injects an event of the agent's own.
final class SignalWaiter: @unchecked Sendable {  // sources are only kept alive, never touched after init
    private let stream: AsyncStream<Int32>
    private let continuation: AsyncStream<Int32>.Continuation
    private let sources: [any DispatchSourceSignal]

    init(_ signals: [Int32]) {
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

    /// Wakes `next()` with `value` (0: not a signal).
    func fire(_ value: Int32) { continuation.yield(value) }

    /// The next signal received (or value fired).
    func next() async -> Int32 {
        var iterator = stream.makeAsyncIterator()
        return await iterator.next() ?? SIGTERM
    }
}
