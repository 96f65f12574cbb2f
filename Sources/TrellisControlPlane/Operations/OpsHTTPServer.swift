public import NIOCore
import NIOConcurrencyHelpers
public import NIOHTTP1
public import NIOPosix

/// Where and how the ops HTTP server listens.
public struct OpsHTTPServerConfiguration: Sendable {
    /// The address to bind, e.g. `0.0.0.0` or `127.0.0.1`.
    public var host: String
    /// The port to bind; 0 picks a free one (read it back from `port`).
    public var port: Int
    /// A connection with no request for this long is closed.
    public var idleTimeout: TimeAmount = .seconds(60)
    /// Limits on request headers, enforced by NIO's decoder (a request over
    /// them gets 400 and the connection closes). Requests carry no body here:
    /// one that announces a body gets 413 and the connection closes.
    public var headerLimits: NIOHTTPDecoderLimitConfiguration = {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderFieldSize = 8 * 1024
        limits.maxHeaderListSize = 64 * 1024
        limits.maxHeaderFieldCount = 64
        return limits
    }()

    public init(host: String = "127.0.0.1", port: Int = 0) {
        self.host = host
        self.port = port
    }
}

/// trellisd's operations endpoint: plain HTTP/1.1 on a port of its own,
/// serving `GET`/`HEAD` of `/healthz` (200 while the process serves),
/// `/readyz` (200, or 503 with the reasons, one per line) and `/metrics`
/// (the registry in Prometheus's text format 0.0.4).
///
/// Start it with `start()`, stop it with `shutdown(grace:)`. Connections are
/// kept alive as HTTP/1.1 allows; pipelined requests are answered in order.
public final class OpsHTTPServer: Sendable {
    public let configuration: OpsHTTPServerConfiguration
    private let routes: OpsHTTPRoutes
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    /// The listener and the open connections, for `port` and `shutdown`.
    private struct State {
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var shutDown = false
    }

    /// - Parameters:
    ///   - registry: the metrics `/metrics` renders.
    ///   - readiness: asked on every `/readyz`; the composition root checks
    ///     the database, migrations and leadership in it.
    ///   - beforeMetrics: run before every `/metrics` render, to refresh
    ///     gauges that are measured rather than counted.
    public init(
        configuration: OpsHTTPServerConfiguration,
        registry: MetricsRegistry,
        readiness: @escaping @Sendable () async -> Readiness,
        beforeMetrics: (@Sendable () async -> Void)? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.routes = OpsHTTPRoutes(registry: registry, readiness: readiness, beforeMetrics: beforeMetrics)
        self.group = group
    }

    /// Binds and starts accepting connections; throws if the address cannot
    /// be bound.
    public func start() async throws {
        let configuration = self.configuration
        let routes = self.routes
        let listener = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.addHandler(IdleStateHandler(readTimeout: configuration.idleTimeout))
                    try operations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true,
                        withErrorHandling: true,
                        withOutboundHeaderValidation: true,
                        withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: configuration.headerLimits
                    )
                    try operations.addHandler(OpsHTTPHandler(routes: routes))
                    self.track(channel)
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        state.withLockedValue { $0.listener = listener }
    }

    /// The port the server listens on (the one picked, when configured
    /// with 0); nil before `start()`.
    public var port: Int? {
        state.withLockedValue { $0.listener?.localAddress?.port }
    }

    /// Graceful shutdown: stop accepting; idle connections close at once,
    /// a request in progress gets its answer (with `Connection: close`)
    /// and then its connection closes. After `grace`, whatever is left is
    /// closed. A second call does nothing.
    public func shutdown(grace: Duration = .seconds(10)) async {
        let taken = state.withLockedValue { state -> (listener: (any Channel)?, connections: [any Channel])? in
            guard !state.shutDown else { return nil }
            state.shutDown = true
            defer { state.listener = nil }
            return (state.listener, Array(state.connections.values))
        }
        guard let (listener, connections) = taken else { return }
        try? await listener?.close()
        for channel in connections {
            channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for channel in connections { try? await channel.closeFuture.get() }
            }
            group.addTask { try? await Task.sleep(for: grace) }
            await group.next()
            for channel in connections { channel.close(promise: nil) }
            group.cancelAll()
        }
    }

    private func track(_ channel: any Channel) {
        let key = ObjectIdentifier(channel)
        state.withLockedValue { $0.connections[key] = channel }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLockedValue { $0.connections.removeValue(forKey: key) }
        }
    }
}
