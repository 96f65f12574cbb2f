public import NIOCore
import NIOConcurrencyHelpers
public import NIOPosix
import TrellisProto

/// How a `WireServer` listens and what it tells its peers.
public struct WireServerConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port (see `WireServer.port`).
    public var port: Int
    /// Frames longer than this are refused before they are read.
    public var maximumFrameLength: Int = FrameDecoder.defaultMaximumFrameLength
    /// Sent in Welcome: how often peers must show signs of life.
    public var heartbeatTTL: TimeAmount = .seconds(30)
    /// A peer silent for heartbeatTTL + heartbeatGrace is dead.
    public var heartbeatGrace: TimeAmount = .seconds(30)
    public var handshakeTimeout: TimeAmount = .seconds(10)
    /// Calls one connection may have open at once.
    public var maximumConcurrentCalls: Int = 10_000
    public var serverVersion: String = "trellis"
    /// Run method handlers on the connection's event loop (no thread hop per
    /// call). Turn off if handlers block or compute for long.
    public var handlersOnEventLoop = true

    public init(host: String = "127.0.0.1", port: Int = 0) {
        self.host = host
        self.port = port
    }
}

/// The accepting side of the wire protocol: listens, authenticates each
/// connection's Hello, serves the registered methods, and shuts down
/// gracefully. Each connection is independent: a peer that misbehaves loses
/// its own connection only.
public final class WireServer: Sendable {
    public let configuration: WireServerConfiguration
    private let services: WireServices
    private let authenticator: any WireAuthenticator
    private let group: any EventLoopGroup
    private let onConnection: (@Sendable (WireConnection) -> Void)?
    private let state = NIOLockedValueBox(State())

    private struct State {
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: (channel: any Channel, handler: NIOLoopBound<WireConnectionHandler>)] = [:]
    }

    /// `onConnection` receives every connection whose handshake succeeded:
    /// keep it to call the peer (the control plane calls agents this way).
    public init(
        configuration: WireServerConfiguration,
        services: WireServices,
        authenticator: any WireAuthenticator,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onConnection: (@Sendable (WireConnection) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.services = services
        self.authenticator = authenticator
        self.group = group
        self.onConnection = onConnection
    }

    /// Binds and starts accepting connections.
    public func start() async throws {
        let configuration = self.configuration
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.initialize(channel, configuration: configuration)
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        state.withLockedValue { $0.listener = listener }
    }

    /// The port the server listens on (useful with port 0).
    public var port: Int? {
        state.withLockedValue { $0.listener?.localAddress?.port }
    }

    /// Connections open now (handshake done or not).
    public var connectionCount: Int {
        state.withLockedValue { $0.connections.count }
    }

    private func initialize(_ channel: any Channel, configuration: WireServerConfiguration) throws {
        var connection = ConnectionStateMachine.Configuration()
        connection.handshakeTimeout = configuration.handshakeTimeout
        connection.idleTimeout = configuration.heartbeatTTL + configuration.heartbeatGrace
        connection.maximumConcurrentCalls = configuration.maximumConcurrentCalls
        let handler = WireConnectionHandler(
            side: .acceptor,
            configuration: connection,
            services: services,
            hello: nil,
            acceptor: .init(authenticator: authenticator, heartbeatTTL: configuration.heartbeatTTL, serverVersion: configuration.serverVersion),
            handlersOnEventLoop: configuration.handlersOnEventLoop,
            eventLoop: channel.eventLoop
        )
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameLength: configuration.maximumFrameLength)))
        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
        try channel.pipeline.syncOperations.addHandler(handler)

        let key = ObjectIdentifier(channel)
        let loopBound = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        state.withLockedValue { $0.connections[key] = (channel, loopBound) }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLockedValue { $0.connections.removeValue(forKey: key) }
        }
        if let onConnection {
            handler.handshake.futureResult.whenSuccess {
                onConnection(WireConnection(channel: channel, handler: loopBound, peer: loopBound.value.identity, welcome: nil))
            }
        }
    }

    /// Graceful shutdown: stop accepting, send GOAWAY on every connection,
    /// refuse new calls with UNAVAILABLE, let calls in flight finish for up to
    /// `grace`, then close whatever is left.
    public func shutdown(grace: Duration = .seconds(10)) async {
        let (listener, connections) = state.withLockedValue { ($0.listener, Array($0.connections.values)) }
        try? await listener?.close()
        for connection in connections {
            let handler = connection.handler
            connection.channel.eventLoop.execute { handler.value.goAway() }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for connection in connections { try? await connection.channel.closeFuture.get() }
            }
            group.addTask { try? await Task.sleep(for: grace) }
            await group.next()
            // Past the grace period (or all closed): close what is left; the
            // waiting child then finishes too.
            for connection in connections { connection.channel.close(promise: nil) }
            group.cancelAll()
        }
    }
}
