public import Foundation
public import NIOCore
import NIOConcurrencyHelpers
public import SwiftProtobuf
public import TrellisProto

/// One open, authenticated connection, on either side: what you make calls
/// over. Many tasks may call at once; calls are multiplexed by call id. The
/// server hands one to `onConnection` for each peer, so the control plane can
/// call the agent that connected to it.
public final class WireConnection: Sendable {
    /// The channel underneath; closing it ends every call.
    public let channel: any Channel
    let handler: NIOLoopBound<WireConnectionHandler>
    /// The authenticated peer (server side); nil on the side that connected.
    public let peer: WireIdentity?
    /// What the server said in its Welcome (client side); nil on the server.
    public let welcome: Trellis_V1_Welcome?
    /// Runs tasks on this connection's event loop: callers making many small
    /// calls can use it as their executor preference to save a thread hop
    /// per call (see `EventLoopTaskExecutor`).
    public let taskExecutor: EventLoopTaskExecutor

    init(channel: any Channel, handler: NIOLoopBound<WireConnectionHandler>, peer: WireIdentity?, welcome: Trellis_V1_Welcome?) {
        self.channel = channel
        self.handler = handler
        self.taskExecutor = EventLoopTaskExecutor(eventLoop: channel.eventLoop)
        self.peer = peer
        self.welcome = welcome
    }

    var eventLoop: any EventLoop { channel.eventLoop }

    /// A unary call: sends `payload` to `method`, returns the response payload
    /// or throws a `WireError` with the call's status. `timeout` is the
    /// deadline relative to now; cancelling the task cancels the call.
    /// Runs on the caller's executor (`nonisolated(nonsending)`): an actor
    /// making a call does not hop to the global executor and back, it only
    /// waits for the answer.
    nonisolated(nonsending) public func unary(_ method: String, _ payload: Data, timeout: Duration? = nil) async throws -> Data {
        let handle = CallHandle()
        let handler = self.handler
        let eventLoop = self.eventLoop
        let amount = timeout.map(TimeAmount.init)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                // Callers on the connection's own event loop (see
                // `taskExecutor`) start the call without a hop.
                if eventLoop.inEventLoop {
                    handler.value.startUnary(method, payload, timeout: amount, handle: handle, continuation: continuation)
                } else {
                    eventLoop.execute {
                        handler.value.startUnary(method, payload, timeout: amount, handle: handle, continuation: continuation)
                    }
                }
            }
        } onCancel: {
            eventLoop.execute { handler.value.cancel(handle) }
        }
    }

    /// A typed unary call, on the caller's executor like the untyped one.
    nonisolated(nonsending) public func unary<Response: SwiftProtobuf.Message>(
        _ method: String, _ request: some SwiftProtobuf.Message, as response: Response.Type = Response.self, timeout: Duration? = nil
    ) async throws -> Response {
        let bytes = try await unary(method, try request.serializedData(), timeout: timeout)
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            throw WireError(.internal, "the response of \(method) is not a valid \(Response.protoMessageName)")
        }
    }

    /// A server-streaming call. The items arrive in order; the stream ends
    /// with the call's status (throws unless OK). `window` bounds how many items
    /// the peer sends ahead of what this side has consumed.
    public func serverStream(_ method: String, _ payload: Data, timeout: Duration? = nil, window: UInt32 = 16) -> WireResponseStream {
        let handle = CallHandle()
        let handler = self.handler
        let eventLoop = self.eventLoop
        let amount = timeout.map(TimeAmount.init)
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: Data.self, throwing: (any Error).self)
        continuation.onTermination = { termination in
            if case .cancelled = termination { eventLoop.execute { handler.value.cancel(handle) } }
        }
        eventLoop.execute {
            handler.value.startStream(method, payload, timeout: amount, window: window, handle: handle, continuation: continuation)
        }
        return WireResponseStream(
            base: stream,
            window: Swift.max(window, 1),
            grant: { items in eventLoop.execute { handler.value.grantCredit(handle, items: items) } }
        )
    }

    /// Starts a graceful shutdown of this connection: GOAWAY, no new calls,
    /// close when the calls in flight are done.
    public func goAway() {
        let handler = self.handler
        eventLoop.execute { handler.value.goAway() }
    }

    /// Closes the connection now.
    public func close() async {
        try? await channel.close()
    }

    /// Calls open on this connection, in either direction.
    public func openCalls() async -> Int {
        let handler = self.handler
        return (try? await eventLoop.submit { handler.value.openCalls }.get()) ?? 0
    }
}


/// The items of a server-streaming call. Consuming items grants the peer
/// credit to send more; dropping the iteration early cancels the call.
public struct WireResponseStream: AsyncSequence, Sendable {
    public typealias Element = Data
    let base: AsyncThrowingStream<Data, any Error>
    let window: UInt32
    let grant: @Sendable (UInt32) -> Void

    /// Reads items and grants credit as they are consumed.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncThrowingStream<Data, any Error>.AsyncIterator
        let window: UInt32
        let grant: @Sendable (UInt32) -> Void
        var consumed: UInt32 = 0

        public mutating func next() async throws -> Data? {
            guard let item = try await base.next() else { return nil }
            consumed += 1
            // Grant credit in batches of half the window: fewer frames, and
            // the peer never stalls while we still have items to read.
            if consumed >= Swift.max(window / 2, 1) {
                grant(consumed)
                consumed = 0
            }
            return item
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), window: window, grant: grant)
    }
}
