import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TrellisProto

@testable import TrellisWire

/// Waits for `body`, failing after `seconds` (generous: this is a hang guard,
/// not a speed assertion).
func withTimeout<T: Sendable>(_ seconds: Double = 20, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw WireError(.deadlineExceeded, "test timed out after \(seconds) s")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// Events the test methods report, so tests can wait for "the handler
/// started" or "the handler saw cancellation".
final class Events: Sendable {
    let stream: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: String.self)
    }

    func record(_ event: String) { continuation.yield(event) }

    func next(_ expected: String) async throws {
        try await withTimeout {
            for await event in self.stream where event == expected { return }
            throw WireError(.unknown, "events ended before \(expected)")
        }
    }
}

/// A release signal a handler waits on.
final class Gate: Sendable {
    private let state = NIOLockedValueBox<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func open() {
        let waiters = state.withLockedValue { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let open = state.withLockedValue { state in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }
}

/// A server on 127.0.0.1 with the methods the loopback tests call.
struct TestServer {
    static let token = "secret"
    let server: WireServer
    let events: Events
    let gate: Gate
    let connections: NIOLockedValueBox<[WireConnection]>

    /// A server on a free port from 20000-32767, tried at random.
    static func startBelowEphemeralRange() async throws -> TestServer {
        var lastError: (any Error)?
        for _ in 0..<50 {
            do {
                return try await start(port: Int.random(in: 20_000..<32_768))
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }

    static func start(port: Int = 0, configure: (inout WireServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        let events = Events()
        let gate = Gate()
        var services = WireServices()
        services.register("/test.Echo/Echo", .unary { payload, _ in payload })
        services.register("/test.Echo/SyncEcho", .unarySync { payload, context in
            guard !payload.isEmpty else { throw WireError(.invalidArgument, "empty payload") }
            return payload + Data((context.peer?.subject ?? "?").utf8)
        })
        services.register("/test.Echo/Slow", .unary { payload, _ in
            events.record("slow started")
            do {
                try await Task.sleep(for: .seconds(600))
            } catch {
                events.record("slow cancelled")
                throw error
            }
            return payload
        })
        services.register("/test.Echo/Gated", .unary { payload, _ in
            events.record("gated started")
            await gate.wait()
            return payload
        })
        services.register("/test.Echo/Count", .serverStreaming { payload, _, writer in
            let count = Int(payload.first ?? 0)
            for index in 0..<count {
                try await writer.send(Data([UInt8(index)]))
                events.record("sent \(index)")
            }
        })
        services.unary("/trellis.v1.TrellisAPI/Ping", Trellis_V1_PingRequest.self) { request, context in
            var response = Trellis_V1_PingResponse()
            response.payload = request.payload + Data((context.peer?.subject ?? "?").utf8)
            return response
        }
        var configuration = WireServerConfiguration(host: "127.0.0.1", port: port)
        configure(&configuration)
        let connections = NIOLockedValueBox<[WireConnection]>([])
        let server = WireServer(
            configuration: configuration,
            services: services,
            authenticator: StaticTokenAuthenticator(agentToken: "join", clientTokens: [(token, "admin")]),
            onConnection: { connection in connections.withLockedValue { $0.append(connection) } }
        )
        try await server.start()
        return TestServer(server: server, events: events, gate: gate, connections: connections)
    }

    var port: Int { server.port! }

    func clientConfiguration(credentials: String = TestServer.token, role: Trellis_V1_PeerRole = .client) -> WireClientConfiguration {
        var configuration = WireClientConfiguration(host: "127.0.0.1", port: port, role: role, credentials: credentials, name: "test-client")
        configuration.backoff = Backoff(initial: .milliseconds(20), multiplier: 1.6, maximum: .milliseconds(200), jitter: 0.2)
        return configuration
    }

    func connect(credentials: String = TestServer.token, services: WireServices = WireServices()) async throws -> WireConnection {
        try await WireClient.connect(configuration: clientConfiguration(credentials: credentials), services: services)
    }
}

/// A peer that speaks raw bytes, for sending what a well-behaved client never
/// would. Collects the frames it gets back.
final class RawPeer: Sendable {
    let channel: any Channel
    let frames: AsyncStream<Trellis_V1_Frame>

    private final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = Trellis_V1_Frame
        let continuation: AsyncStream<Trellis_V1_Frame>.Continuation
        init(_ continuation: AsyncStream<Trellis_V1_Frame>.Continuation) { self.continuation = continuation }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { continuation.yield(unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) { continuation.finish() }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    init(port: Int) async throws {
        let (frames, continuation) = AsyncStream.makeStream(of: Trellis_V1_Frame.self)
        self.frames = frames
        channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(Collector(continuation))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    func send(_ frame: Trellis_V1_Frame) async throws {
        try await send(Frames.encodedBytes(frame))
    }

    /// The frames received until the server closes the connection.
    func framesUntilClosed() async throws -> [Trellis_V1_Frame] {
        try await withTimeout {
            var all: [Trellis_V1_Frame] = []
            for await frame in self.frames { all.append(frame) }
            return all
        }
    }

    func nextFrame() async throws -> Trellis_V1_Frame? {
        try await withTimeout {
            var iterator = self.frames.makeAsyncIterator()
            return await iterator.next()
        }
    }
}
