import Foundation
import NIOCore
import NIOPosix
import Synchronization
import TrellisProto
import TrellisWire

/// `wire`: unary RPC calls per second over loopback, against a bare SwiftNIO
/// length-prefixed echo of the same frames measured in the same run. The
/// difference is what the RPC layer (handshake state, call table, a task per
/// handler and per caller, protobuf decoding) costs over raw framing.
enum WireBenchmark {
    struct Shape {
        var connections: Int
        /// Calls in flight per connection.
        var inFlight: Int
        var name: String { "c\(connections)_f\(inFlight)" }
    }

    static let shapes = [
        Shape(connections: 1, inFlight: 64),
        Shape(connections: 1, inFlight: 256),
        Shape(connections: 4, inFlight: 64),
    ]
    static let seconds = 2.0
    static let warmup = 0.5
    static let rounds = 3

    static func median(_ values: [Double]) -> Double {
        values.sorted()[values.count / 2]
    }
    static let method = "/trellis.v1.TrellisAPI/Ping"

    /// The request every configuration sends: a Ping with 32 bytes.
    static func pingPayload() throws -> Data {
        var ping = Trellis_V1_PingRequest()
        ping.payload = Data(repeating: 0x2A, count: 32)
        return try ping.serializedData()
    }

    static func run() async throws -> [Measurement] {
        let payload = try pingPayload()

        // RPC (sync handler), bare echo and RPC (async handler) alternate,
        // three rounds per shape, and each
        // figure is the median of its rounds: both see the same machine load
        // (another build on a shared machine moves absolute figures a lot).
        var rpc: [Double] = []
        var rpcAsync: [Double] = []
        var bare: [Double] = []
        var raw: [Double] = []
        for shape in shapes {
            var rpcRounds: [Double] = []
            var asyncRounds: [Double] = []
            var bareRounds: [Double] = []
            for _ in 0..<rounds {
                rpcRounds.append(try await rpcCallsPerSecond(shape, payload: payload, asyncHandler: false))
                bareRounds.append(try await bareEchoesPerSecond(shape, payload: payload, decodeFrames: true))
                asyncRounds.append(try await rpcCallsPerSecond(shape, payload: payload, asyncHandler: true))
            }
            rpc.append(median(rpcRounds))
            rpcAsync.append(median(asyncRounds))
            bare.append(median(bareRounds))
            raw.append(try await bareEchoesPerSecond(shape, payload: payload, decodeFrames: false))
        }
        let best = rpc.indices.max { rpc[$0] < rpc[$1] }!
        var lines = [
            Measurement(name: "wire.unary_calls_per_s", value: rpc[best], unit: "calls/s (\(shapes[best].name); unarySync handler)"),
            Measurement(name: "wire.bare_echo_per_s", value: bare[best], unit: "echoes/s (\(shapes[best].name); Frame codec, no RPC layer)"),
            Measurement(name: "wire.ratio", value: rpc[best] / bare[best], unit: "rpc/bare (\(shapes[best].name); unarySync handler)"),
            Measurement(name: "wire.ratio_async_handler", value: rpcAsync[best] / bare[best], unit: "rpc/bare (\(shapes[best].name); async .unary handler)"),
            Measurement(name: "wire.raw_bytes_echo_per_s", value: raw[best], unit: "echoes/s (\(shapes[best].name); length prefix only, protobuf not decoded)"),
        ]
        for index in shapes.indices {
            let name = shapes[index].name
            lines.append(Measurement(name: "wire.unary_calls_per_s.\(name)", value: rpc[index], unit: "calls/s"))
            lines.append(Measurement(name: "wire.unary_calls_per_s_async_handler.\(name)", value: rpcAsync[index], unit: "calls/s"))
            lines.append(Measurement(name: "wire.bare_echo_per_s.\(name)", value: bare[index], unit: "echoes/s"))
            lines.append(Measurement(name: "wire.ratio.\(name)", value: rpc[index] / bare[index], unit: "rpc/bare"))
            lines.append(Measurement(name: "wire.ratio_async_handler.\(name)", value: rpcAsync[index] / bare[index], unit: "rpc/bare"))
            lines.append(Measurement(name: "wire.raw_bytes_echo_per_s.\(name)", value: raw[index], unit: "echoes/s"))
        }
        return lines
    }

    /// `trellis-bench wire-one MODE SHAPE`: one configuration, measured once,
    /// to run under a profiler (`perf record`). MODE is rpc, rpc-async, bare
    /// or raw; SHAPE is one of `shapes` by name (c4_f64).
    static func runOne(_ arguments: [String]) async throws -> [Measurement] {
        guard arguments.count == 2, let shape = shapes.first(where: { $0.name == arguments[1] }) else {
            throw BenchError(description: "usage: trellis-bench wire-one rpc|rpc-async|bare|raw \(shapes.map(\.name).joined(separator: "|"))")
        }
        let payload = try pingPayload()
        let rate: Double
        switch arguments[0] {
        case "rpc": rate = try await rpcCallsPerSecond(shape, payload: payload, asyncHandler: false)
        case "rpc-async": rate = try await rpcCallsPerSecond(shape, payload: payload, asyncHandler: true)
        case "bare": rate = try await bareEchoesPerSecond(shape, payload: payload, decodeFrames: true)
        case "raw": rate = try await bareEchoesPerSecond(shape, payload: payload, decodeFrames: false)
        default: throw BenchError(description: "unknown mode \(arguments[0]): rpc, rpc-async, bare or raw")
        }
        return [Measurement(name: "wire.\(arguments[0]).\(shape.name)", value: rate, unit: "per s")]
    }

    // MARK: Where the two ends of each connection run

    /// The loops of a fresh group, one per core, for one measurement. The
    /// server binds first and so takes `loops[0]`; after that only its
    /// accepts draw from the group, so the accepted end of connection `i`
    /// lands on `loops[(i + 1) % count]` while its client end is put on
    /// `loops[i % count]`: each connection's ends run on different loops and
    /// with as many connections as loops (or a multiple), every loop
    /// carries as many client ends as server ends (c4 on 2 cores: two of
    /// each per loop; c1: the client end on one loop, the server end on the
    /// other). (Sharing the
    /// singleton group, the accepts and the connects took turns in its round
    /// robin and put every client end on one loop and every server end on the
    /// other: the figure then measured whichever side was heavier.)
    struct Loops {
        let group: MultiThreadedEventLoopGroup
        let loops: [any EventLoop]

        init() {
            group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
            loops = Array(group.makeIterator())
        }

        func clientLoop(_ index: Int) -> any EventLoop {
            loops[index % loops.count]
        }

        func shutdown() async {
            try? await group.shutdownGracefully()
        }
    }

    /// The accepted ends of a benchmark's connections, to check where they run.
    final class AcceptedChannels: Sendable {
        let channels = Mutex<[any Channel]>([])

        func add(_ channel: any Channel) {
            channels.withLock { $0.append(channel) }
        }

        /// Waits until every client end's peer is accepted, then throws unless
        /// each connection's two ends run on different loops (when there are
        /// several loops).
        func checkPlacement(of clients: [any Channel], loops: Int) async throws {
            let deadline = ContinuousClock.now + .seconds(10)
            while channels.withLock({ $0.count }) < clients.count {
                guard ContinuousClock.now < deadline else { throw BenchError(description: "the server accepted \(channels.withLock { $0.count }) of \(clients.count) connections") }
                try await Task.sleep(for: .milliseconds(5))
            }
            guard loops > 1 else { return }
            let accepted = channels.withLock { $0 }
            for client in clients {
                guard let port = client.localAddress?.port,
                      let server = accepted.first(where: { $0.remoteAddress?.port == port }) else {
                    throw BenchError(description: "no accepted end for the client on port \(client.localAddress?.port ?? 0)")
                }
                guard server.eventLoop !== client.eventLoop else {
                    throw BenchError(description: "a connection has both ends on one event loop; the benchmark wants them apart")
                }
            }
        }
    }

    // MARK: RPC

    final class Counter: Sendable {
        let calls = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
    }

    /// `asyncHandler`: the echo handler is an async `.unary` closure (a task
    /// per call on the server); otherwise `.unarySync`, which answers inline
    /// like the bare echo handler does.
    static func rpcCallsPerSecond(_ shape: Shape, payload: Data, asyncHandler: Bool) async throws -> Double {
        var services = WireServices()
        if asyncHandler {
            services.register(method, .unary { payload, _ in payload })
        } else {
            services.register(method, .unarySync { payload, _ in payload })
        }
        let loops = Loops()
        let group = loops.group
        let accepted = AcceptedChannels()
        let server = WireServer(
            configuration: WireServerConfiguration(host: "127.0.0.1", port: 0),
            services: services,
            authenticator: StaticTokenAuthenticator(agentToken: nil, clientTokens: [("bench", "admin")]),
            group: group,
            onConnection: { accepted.add($0.channel) }
        )
        try await server.start()
        let configuration = WireClientConfiguration(host: "127.0.0.1", port: server.port!, role: .client, credentials: "bench", name: "bench")
        var connections: [WireConnection] = []
        for index in 0..<shape.connections {
            connections.append(try await WireClient.connect(configuration: configuration, group: loops.clientLoop(index)))
        }
        try await accepted.checkPlacement(of: connections.map(\.channel), loops: loops.loops.count)
        let counter = Counter()
        let rate = try await withThrowingTaskGroup(of: Void.self) { tasks -> Double in
            for connection in connections {
                for _ in 0..<shape.inFlight {
                    tasks.addTask(executorPreference: connection.taskExecutor) {
                        while !counter.stop.load(ordering: .relaxed) {
                            _ = try await connection.unary(method, payload)
                            counter.calls.add(1, ordering: .relaxed)
                        }
                    }
                }
            }
            let rate = try await measure { counter.calls.load(ordering: .relaxed) }
            counter.stop.store(true, ordering: .relaxed)
            try await tasks.waitForAll()
            return rate
        }
        for connection in connections { await connection.close() }
        await server.shutdown(grace: .seconds(1))
        await loops.shutdown()
        return rate
    }

    /// Warms up, then counts what `count` advances by in `seconds`.
    static func measure(_ count: () -> Int) async throws -> Double {
        try await Task.sleep(for: .seconds(warmup))
        let startCount = count()
        let start = ContinuousClock.now
        try await Task.sleep(for: .seconds(seconds))
        let calls = count() - startCount
        return Double(calls) / (ContinuousClock.now - start).seconds
    }

    // MARK: Bare echo

    /// Splits length-prefixed frames without looking inside them.
    struct RawFrameDecoder: ByteToMessageDecoder {
        typealias InboundOut = ByteBuffer
        mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
            guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
                  buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
            context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: 4 + Int(length))!))
            return .continue
        }
    }

    /// Decodes each request Frame and answers with a Response frame carrying
    /// the same payload: the codec work of an RPC server, with no RPC layer.
    final class FrameEchoHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = Trellis_V1_Frame
        typealias OutboundOut = Trellis_V1_Frame
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let request = unwrapInboundIn(data)
            var response = Trellis_V1_Frame()
            response.callID = request.callID
            response.response.payload = request.request.payload
            context.write(wrapOutboundOut(response), promise: nil)
        }
        func channelReadComplete(context: ChannelHandlerContext) {
            context.flush()
        }
    }

    /// Keeps `inFlight` request Frames outstanding through the codec: each
    /// decoded response sends the next request.
    final class FramePumpHandler: ChannelInboundHandler {
        typealias InboundIn = Trellis_V1_Frame
        typealias OutboundOut = Trellis_V1_Frame
        let request: Trellis_V1_Frame
        let inFlight: Int
        let counter: Counter
        var nextID: UInt64 = 1
        init(request: Trellis_V1_Frame, inFlight: Int, counter: Counter) {
            self.request = request
            self.inFlight = inFlight
            self.counter = counter
        }
        func send(context: ChannelHandlerContext) {
            var frame = request
            frame.callID = nextID
            nextID += 2
            context.write(wrapOutboundOut(frame), promise: nil)
        }
        func channelActive(context: ChannelHandlerContext) {
            for _ in 0..<inFlight { send(context: context) }
            context.flush()
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            counter.calls.add(1, ordering: .relaxed)
            if !counter.stop.load(ordering: .relaxed) { send(context: context) }
        }
        func channelReadComplete(context: ChannelHandlerContext) {
            context.flush()
        }
    }

    /// Writes every frame back; flushes once per read burst.
    final class EchoHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.write(data, promise: nil)
        }
        func channelReadComplete(context: ChannelHandlerContext) {
            context.flush()
        }
    }

    /// Keeps `inFlight` frames outstanding: each echo that comes back sends
    /// the next.
    final class PumpHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let frame: ByteBuffer
        let inFlight: Int
        let counter: Counter
        init(frame: ByteBuffer, inFlight: Int, counter: Counter) {
            self.frame = frame
            self.inFlight = inFlight
            self.counter = counter
        }
        func channelActive(context: ChannelHandlerContext) {
            for _ in 0..<inFlight { context.write(wrapOutboundOut(frame), promise: nil) }
            context.flush()
        }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            counter.calls.add(1, ordering: .relaxed)
            if !counter.stop.load(ordering: .relaxed) {
                context.write(wrapOutboundOut(frame), promise: nil)
            }
        }
        func channelReadComplete(context: ChannelHandlerContext) {
            context.flush()
        }
    }

    static func bareEchoesPerSecond(_ shape: Shape, payload: Data, decodeFrames: Bool) async throws -> Double {
        // The same bytes the RPC client sends for one call.
        var requestFrame = Trellis_V1_Frame()
        requestFrame.callID = 1
        requestFrame.request.method = method
        requestFrame.request.payload = payload
        let request = requestFrame
        var frame = ByteBuffer()
        try FrameEncoder().encode(data: request, out: &frame)

        let loops = Loops()
        let accepted = AcceptedChannels()
        let server = try await ServerBootstrap(group: loops.group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                accepted.add(channel)
                return channel.eventLoop.makeCompletedFuture {
                    if decodeFrames {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                        try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                        try channel.pipeline.syncOperations.addHandler(FrameEchoHandler())
                    } else {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RawFrameDecoder()))
                        try channel.pipeline.syncOperations.addHandler(EchoHandler())
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let counter = Counter()
        var clients: [any Channel] = []
        for index in 0..<shape.connections {
            let frameCopy = frame
            let inFlight = shape.inFlight
            clients.append(try await ClientBootstrap(group: loops.clientLoop(index))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if decodeFrames {
                            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                            try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(FrameEncoder()))
                            try channel.pipeline.syncOperations.addHandler(FramePumpHandler(request: request, inFlight: inFlight, counter: counter))
                        } else {
                            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RawFrameDecoder()))
                            try channel.pipeline.syncOperations.addHandler(PumpHandler(frame: frameCopy, inFlight: inFlight, counter: counter))
                        }
                    }
                }
                .connect(host: "127.0.0.1", port: server.localAddress!.port!)
                .get())
        }
        try await accepted.checkPlacement(of: clients, loops: loops.loops.count)
        let rate = try await measure { counter.calls.load(ordering: .relaxed) }
        counter.stop.store(true, ordering: .relaxed)
        for client in clients { try? await client.close() }
        try? await server.close()
        await loops.shutdown()
        return rate
    }
}
