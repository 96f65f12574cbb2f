import Foundation
import NIOCore
import NIOEmbedded
import Testing
import TrellisProto

@testable import TrellisWire

/// The connection handler on an EmbeddedChannel: frames in, frames out, no
/// sockets.
@Suite struct WireConnectionHandlerTests {
    func makeAcceptor(
        maximumFrameLength: Int = 1024, configuration: ConnectionStateMachine.Configuration = .init(), services extra: WireServices? = nil
    ) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        var services = extra ?? WireServices()
        services.register("/test.Echo/Echo", .unary { payload, _ in payload })
        // The handler's clock is the embedded loop's virtual one, so timers
        // fire when a test advances time, not when the wall clock says.
        let loop = channel.embeddedEventLoop
        let handler = WireConnectionHandler(
            side: .acceptor,
            configuration: configuration,
            services: services,
            hello: nil,
            acceptor: .init(authenticator: StaticTokenAuthenticator(agentToken: "join", clientTokens: [("secret", "admin")]), heartbeatTTL: .seconds(30), serverVersion: "test"),
            eventLoop: channel.eventLoop,
            now: { loop.now }
        )
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder(maximumFrameLength: maximumFrameLength)))
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func send(_ frame: Trellis_V1_Frame, to channel: EmbeddedChannel) throws {
        try channel.writeInbound(Frames.encoded(frame))
        channel.embeddedEventLoop.run()
    }

    func readFrame(_ channel: EmbeddedChannel) throws -> Trellis_V1_Frame? {
        channel.embeddedEventLoop.run()
        return try channel.readOutbound(as: Trellis_V1_Frame.self)
    }

    @Test func helloIsWelcomedWithTheHeartbeatTTL() throws {
        let channel = try makeAcceptor()
        try send(Frames.hello(), to: channel)
        let welcome = try #require(try readFrame(channel)).welcome
        #expect(welcome.heartbeatTtl.millis == 30_000)
        #expect(welcome.protocolVersion == WireProtocol.version)
        #expect(!welcome.sessionID.isEmpty)
        #expect(channel.isActive)
    }

    @Test func wrongCredentialsAreUnauthenticatedThenClosed() throws {
        let channel = try makeAcceptor()
        try send(Frames.hello(credentials: "guess"), to: channel)
        let goaway = try #require(try readFrame(channel)).goaway
        #expect(goaway.status.code == .unauthenticated)
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    @Test func agentTokenDoesNotOpenAClientSession() throws {
        let channel = try makeAcceptor()
        try send(Frames.hello(role: .client, credentials: "join"), to: channel)
        #expect(try readFrame(channel)?.goaway.status.code == .unauthenticated)
    }

    @Test func unknownMethodIsUnimplemented() throws {
        let channel = try makeAcceptor()
        try send(Frames.hello(), to: channel)
        _ = try readFrame(channel)
        try send(Frames.request(1, "/test.Nope/Nope"), to: channel)
        let response = try #require(try readFrame(channel))
        #expect(response.callID == 1)
        #expect(response.response.status.code == .unimplemented)
        #expect(channel.isActive)
    }

    @Test func oversizeFrameIsResourceExhaustedThenClosed() throws {
        let channel = try makeAcceptor(maximumFrameLength: 1024)
        try send(Frames.hello(), to: channel)
        _ = try readFrame(channel)
        var header = ByteBuffer()
        header.writeInteger(UInt32(64 * 1024 * 1024))
        try channel.writeInbound(header)
        let goaway = try #require(try readFrame(channel)).goaway
        #expect(goaway.status.code == .resourceExhausted)
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    @Test func callBeforeHandshakeIsRefused() throws {
        let channel = try makeAcceptor()
        try send(Frames.request(1), to: channel)
        #expect(try readFrame(channel)?.goaway.status.code == .failedPrecondition)
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    // MARK: The timer (virtual time: the embedded loop's clock)

    /// An acceptor past its handshake whose `/test.Slow/Wait` never answers.
    func makeSessionWithASlowMethod() throws -> EmbeddedChannel {
        var services = WireServices()
        services.register("/test.Slow/Wait", .unary { payload, _ in
            try await Task.sleep(for: .seconds(3600))
            return payload
        })
        let channel = try makeAcceptor(services: services)
        try send(Frames.hello(), to: channel)
        _ = try readFrame(channel)
        return channel
    }

    @Test func aHandlerStillRunningAtItsDeadlineIsAnsweredDeadlineExceededOnTime() throws {
        let channel = try makeSessionWithASlowMethod()
        try send(Frames.request(1, "/test.Slow/Wait", timeoutMillis: 100), to: channel)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(99))
        #expect(try readFrame(channel) == nil)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try readFrame(channel)?.response.status.code == .deadlineExceeded)
    }

    @Test func aSilentPeerIsClosedAtTheIdleTimeout() throws {
        var configuration = ConnectionStateMachine.Configuration()
        configuration.idleTimeout = .seconds(60)
        let channel = try makeAcceptor(configuration: configuration)
        try send(Frames.hello(), to: channel)
        _ = try readFrame(channel)
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        var ping = Trellis_V1_Frame()
        ping.ping.opaque = 1
        try send(ping, to: channel)  // a sign of life: the timeout counts from here
        _ = try readFrame(channel)
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
    }

    @Test func aPeerThatNeverSaysHelloIsDroppedAtTheHandshakeTimeout() throws {
        var configuration = ConnectionStateMachine.Configuration()
        configuration.handshakeTimeout = .seconds(10)
        let channel = try makeAcceptor(configuration: configuration)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(9_999))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(try readFrame(channel)?.goaway.status.code == .deadlineExceeded)
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    @Test func aDrainingConnectionClosesWhenItsLastCallIsCancelled() throws {
        let channel = try makeSessionWithASlowMethod()
        try send(Frames.request(1, "/test.Slow/Wait"), to: channel)
        let handler = try channel.pipeline.syncOperations.handler(type: WireConnectionHandler.self)
        handler.goAway()
        #expect(try readFrame(channel)?.goaway.lastCallID == 1)
        #expect(channel.isActive)  // the call in flight may finish
        try send(Frames.cancel(1), to: channel)
        // No timer needed: the last call is gone, so the connection closes.
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
    }

    @Test func pingIsAnswered() throws {
        let channel = try makeAcceptor()
        try send(Frames.hello(), to: channel)
        _ = try readFrame(channel)
        var ping = Trellis_V1_Frame()
        ping.ping.opaque = 9
        try send(ping, to: channel)
        #expect(try readFrame(channel)?.pong.opaque == 9)
    }
}
