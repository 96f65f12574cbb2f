public import Foundation
public import NIOCore
import NIOConcurrencyHelpers
public import NIOPosix
public import TrellisProto

/// Where a `WireClient` connects and how it presents itself.
public struct WireClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var role: Trellis_V1_PeerRole
    /// The join token (agents) or API token (clients).
    public var credentials: String
    /// Node or client name, shown in the server's logs and listings.
    public var name: String
    public var version: String = "trellis"
    public var connectTimeout: TimeAmount = .seconds(5)
    public var handshakeTimeout: TimeAmount = .seconds(10)
    /// Delays between reconnection attempts.
    public var backoff = Backoff()
    public var maximumFrameLength: Int = FrameDecoder.defaultMaximumFrameLength
    /// Ping interval; nil: half the heartbeat TTL the server sends in Welcome.
    public var keepaliveInterval: TimeAmount?
    /// Declare the server dead after this much silence; nil: twice the TTL.
    public var idleTimeout: TimeAmount?
    /// Run the handlers of `services` on the connection's event loop (see
    /// `WireServerConfiguration.handlersOnEventLoop`).
    public var handlersOnEventLoop = true
    /// Calls the server may have open on this client at once.
    public var maximumConcurrentCalls: Int = 10_000

    public init(host: String, port: Int, role: Trellis_V1_PeerRole, credentials: String, name: String) {
        self.host = host
        self.port = port
        self.role = role
        self.credentials = credentials
        self.name = name
    }
}

/// The connecting side of the wire protocol: keeps one connection to the
/// server, reconnecting with backoff and jitter when it drops, and multiplexes
/// calls from many tasks over it. Serves `services` to the server, which may
/// call back over the same connection. Run it like a service: `run()` owns the
/// connection until its task is cancelled.
public final class WireClient: Sendable {
    public let configuration: WireClientConfiguration
    private let services: WireServices
    private let group: any EventLoopGroup
    private let state = NIOLockedValueBox(State())

    private struct State {
        var connection: WireConnection?
        var waiters: [UInt64: CheckedContinuation<WireConnection, any Error>] = [:]
        var nextWaiter: UInt64 = 0
        var stopped: WireError?
    }

    public init(configuration: WireClientConfiguration, services: WireServices = WireServices(), group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.services = services
        self.group = group
    }

    /// Connects, and reconnects whenever the connection is lost, until the
    /// calling task is cancelled. Throws if the server refuses the handshake
    /// (wrong credentials, version): retrying would not help.
    public func run() async throws {
        var attempt = 0
        defer { stop(WireError(.unavailable, "the client stopped")) }
        while !Task.isCancelled {
            do {
                let connection = try await Self.connect(configuration: configuration, services: services, group: group) { [self] in
                    drop(nil)
                }
                attempt = 0
                publish(connection)
                let channel = connection.channel
                try? await withTaskCancellationHandler {
                    try await channel.closeFuture.get()
                } onCancel: {
                    channel.close(promise: nil)
                }
                drop(connection)
            } catch let error as WireError where [.unauthenticated, .failedPrecondition, .invalidArgument, .permissionDenied].contains(error.code) {
                stop(error)
                throw error
            } catch {
                // Refused, timed out, reset: try again after a while.
            }
            if Task.isCancelled { break }
            do {
                try await Task.sleep(for: configuration.backoff.delay(attempt: attempt))
            } catch {
                break
            }
            attempt += 1
        }
    }

    /// The current connection; waits for one while (re)connecting, up to
    /// `timeout`.
    public func connection(timeout: Duration? = nil) async throws -> WireConnection {
        if let connection = state.withLockedValue({ $0.connection }) { return connection }
        guard let timeout else { return try await waitForConnection() }
        return try await withThrowingTaskGroup(of: WireConnection.self) { group in
            group.addTask { try await self.waitForConnection() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw WireError(.deadlineExceeded, "no connection to \(self.configuration.host):\(self.configuration.port) within \(timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// A unary call over the current connection (see `WireConnection.unary`).
    public func unary(_ method: String, _ payload: Data, timeout: Duration? = nil) async throws -> Data {
        let start = ContinuousClock.now
        let connection = try await connection(timeout: timeout)
        let remaining = timeout.map { $0 - (ContinuousClock.now - start) }
        if let remaining, remaining <= .zero { throw WireError(.deadlineExceeded, "no connection before the call's deadline") }
        return try await connection.unary(method, payload, timeout: remaining)
    }

    /// A server-streaming call over the current connection (see
    /// `WireConnection.serverStream`).
    public func serverStream(_ method: String, _ payload: Data, timeout: Duration? = nil, window: UInt32 = 16) async throws -> WireResponseStream {
        try await connection(timeout: timeout).serverStream(method, payload, timeout: timeout, window: window)
    }

    private func waitForConnection() async throws -> WireConnection {
        let id = state.withLockedValue { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let immediate: Result<WireConnection, WireError>? = state.withLockedValue { state in
                    if let connection = state.connection { return .success(connection) }
                    if let stopped = state.stopped { return .failure(stopped) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: WireError(.cancelled, "stopped waiting for a connection"))
        }
    }

    private func publish(_ connection: WireConnection) {
        let waiters = state.withLockedValue { state in
            state.connection = connection
            state.stopped = nil
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: connection) }
    }

    /// Forgets the connection (closed, or going away): new calls wait for the next.
    private func drop(_ connection: WireConnection?) {
        state.withLockedValue { state in
            if connection == nil || state.connection === connection { state.connection = nil }
        }
    }

    private func stop(_ error: WireError) {
        let waiters = state.withLockedValue { state in
            state.connection = nil
            state.stopped = error
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// Opens one connection and completes the handshake; no reconnection.
    /// Throws the server's refusal (UNAUTHENTICATED…) or UNAVAILABLE.
    public static func connect(
        configuration: WireClientConfiguration,
        services: WireServices = WireServices(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onGoAway: (@Sendable () -> Void)? = nil
    ) async throws -> WireConnection {
        var greeting = Trellis_V1_Hello()
        greeting.magic = WireProtocol.magic
        greeting.protocolVersion = WireProtocol.version
        greeting.role = configuration.role
        greeting.credentials = configuration.credentials
        greeting.name = configuration.name
        greeting.version = configuration.version
        let hello = greeting
        var settings = ConnectionStateMachine.Configuration()
        settings.handshakeTimeout = configuration.handshakeTimeout
        settings.keepaliveInterval = configuration.keepaliveInterval
        settings.idleTimeout = configuration.idleTimeout
        settings.maximumConcurrentCalls = configuration.maximumConcurrentCalls
        let machine = settings

        let handlerBox = NIOLockedValueBox<NIOLoopBound<WireConnectionHandler>?>(nil)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(configuration.connectTimeout)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = WireConnectionHandler(
                            side: .initiator,
                            configuration: machine,
                            services: services,
                            hello: hello,
                            acceptor: nil,
                            handlersOnEventLoop: configuration.handlersOnEventLoop,
                            eventLoop: channel.eventLoop,
                            onGoAway: onGoAway
                        )
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameLength: configuration.maximumFrameLength)))
                        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                        try channel.pipeline.syncOperations.addHandler(handler)
                        handlerBox.withLockedValue { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                    }
                }
                .connect(host: configuration.host, port: configuration.port)
                .get()
        } catch {
            throw WireError(.unavailable, "cannot connect to \(configuration.host):\(configuration.port): \(error)")
        }
        let handler = handlerBox.withLockedValue { $0 }!
        let welcome = try await channel.eventLoop.flatSubmit { () -> EventLoopFuture<Trellis_V1_Welcome?> in
            handler.value.handshake.futureResult.map { handler.value.welcome }
        }.get()
        return WireConnection(channel: channel, handler: handler, peer: nil, welcome: welcome)
    }
}
