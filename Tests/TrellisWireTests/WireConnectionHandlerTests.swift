import Foundation
import NIOCore
import NIOEmbedded
import Testing
import TrellisProto

@testable import TrellisWire

/// The connection handler on an EmbeddedChannel: frames in, frames out, no
/// sockets.
@Suite struct WireConnectionHandlerTests {
    func makeAcceptor(maximumFrameLength: Int = 1024) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        var services = WireServices()
        services.register("/test.Echo/Echo", .unary { payload, _ in payload })
        let handler = WireConnectionHandler(
            side: .acceptor,
            configuration: .init(),
            services: services,
            hello: nil,
            acceptor: .init(authenticator: StaticTokenAuthenticator(agentToken: "join", clientTokens: [("secret", "admin")]), heartbeatTTL: .seconds(30), serverVersion: "test"),
            tickInterval: .seconds(1),
            eventLoop: channel.eventLoop
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
