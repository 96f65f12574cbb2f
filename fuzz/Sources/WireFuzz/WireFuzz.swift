import NIOCore
import NIOEmbedded
import TrellisProto
import TrellisWire

/// One libFuzzer input: a byte stream as a peer would send it to the server.
/// The first byte chooses whether a valid Hello goes first (so the input can
/// reach the calls), the rest goes through `FrameDecoder` in chunks into an
/// acceptor `ConnectionStateMachine`, with time advancing. Invariants: no
/// crash, no frame over the limit decoded, and a closed machine stays closed.
@_cdecl("LLVMFuzzerTestOneInput")
public func wireFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let limit = 4096
    var stream = ByteBuffer()
    if bytes[0] & 1 == 1 {
        var hello = Trellis_V1_Frame()
        hello.hello.magic = WireProtocol.magic
        hello.hello.protocolVersion = WireProtocol.version
        hello.hello.role = .client
        try! FrameEncoder().encode(data: hello, out: &stream)
    }
    stream.writeBytes(bytes.dropFirst())

    var configuration = ConnectionStateMachine.Configuration()
    configuration.maximumConcurrentCalls = 8
    configuration.idleTimeout = .seconds(60)
    var now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    var machine = ConnectionStateMachine(side: .acceptor, configuration: configuration, now: now)
    _ = machine.channelActive(hello: nil, now: now)

    let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumFrameLength: limit)))
    defer { _ = try? channel.finish() }
    let chunk = 1 + Int(bytes[0] >> 1) % 64
    while stream.readableBytes > 0 {
        let piece = stream.readSlice(length: min(chunk, stream.readableBytes))!
        do {
            try channel.writeInbound(piece)
        } catch {
            precondition(error is WireError, "decoder threw \(error)")
            return 0
        }
        while let frame = try? channel.readInbound(as: Trellis_V1_Frame.self) {
            precondition((try! frame.serializedBytes() as [UInt8]).count <= limit, "oversize frame decoded")
            let wasClosed = machine.isClosed
            switch machine.receive(frame, now: now) {
            case .authenticate:
                _ = machine.authenticated(welcome: Trellis_V1_Welcome())
            case .dispatch(let id, _, _):
                if id % 3 == 0 { _ = machine.finishInbound(id) }
            case .creditGranted(let id):
                _ = machine.takeStreamCredit(id)
            default:
                break
            }
            precondition(!wasClosed || machine.isClosed, "a closed connection reopened")
            now = now + .milliseconds(250)
            _ = machine.tick(now: now)
        }
    }
    return 0
}

/// libFuzzer's driver, for a custom `main` (SwiftPM names an executable's
/// entry point `<module>_main`).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("WireFuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        guard let data else { return 0 }
        return wireFuzz(data, size)
    }
}
