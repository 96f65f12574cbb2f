import Foundation
import NIOCore
import NIOEmbedded
import NIOTestUtils
import Testing
import TrellisProto

@testable import TrellisWire

/// The length-prefixed codec, on NIO's decoder verifier and EmbeddedChannel.
@Suite struct FrameCodecTests {
    @Test func decoderHandlesEveryWayTheBytesCanBeSplit() throws {
        let frames = [Frames.hello(), Frames.request(1), Frames.response(2, payload: Array(repeating: 7, count: 300)), Trellis_V1_Frame()]
        let pairs = frames.map { (Frames.encoded($0), [$0]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            FrameDecoder()
        }
    }

    @Test func encoderWritesLengthThenProtobuf() throws {
        let channel = EmbeddedChannel(handler: MessageToByteHandler(FrameEncoder()))
        let frame = Frames.request(3)
        try channel.writeOutbound(frame)
        var written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        let bytes: [UInt8] = try frame.serializedBytes()
        #expect(written.readInteger(as: UInt32.self) == UInt32(bytes.count))
        #expect(Array(written.readableBytesView) == bytes)
        _ = try channel.finish()
    }

    @Test func oversizeLengthIsRejectedFromTheHeaderAlone() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumFrameLength: 1024)))
        var header = ByteBuffer()
        header.writeInteger(UInt32(1025))
        // Only the header: the decoder must refuse before any body arrives.
        #expect {
            try channel.writeInbound(header)
        } throws: { error in
            (error as? WireError)?.code == .resourceExhausted
        }
        _ = try? channel.finish()
    }

    @Test func frameAtTheLimitIsAccepted() throws {
        var frame = Frames.response(2)
        let limit = 512
        frame.response.payload = Data(repeating: 1, count: 400)
        #expect(Frames.encoded(frame).readableBytes - 4 <= limit)
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumFrameLength: limit)))
        try channel.writeInbound(Frames.encoded(frame))
        #expect(try channel.readInbound(as: Trellis_V1_Frame.self) == frame)
        _ = try channel.finish()
    }

    @Test func garbageBodyIsInvalidArgument() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(3))
        buffer.writeBytes([0xFF, 0xFF, 0xFF])
        #expect {
            try channel.writeInbound(buffer)
        } throws: { error in
            (error as? WireError)?.code == .invalidArgument
        }
        _ = try? channel.finish()
    }

    @Test func truncatedFrameWaitsForMore() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder()))
        var bytes = Frames.encoded(Frames.request(1))
        let first = bytes.readSlice(length: bytes.readableBytes - 2)!
        try channel.writeInbound(first)
        #expect(try channel.readInbound(as: Trellis_V1_Frame.self) == nil)
        try channel.writeInbound(bytes)
        #expect(try channel.readInbound(as: Trellis_V1_Frame.self) == Frames.request(1))
        _ = try channel.finish()
    }

    /// Random bytes, random lengths, random cuts: the decoder either yields
    /// frames, waits, or throws a WireError; it never crashes and never
    /// buffers more than the limit plus one read.
    @Test func randomBytesNeverCrashTheDecoder() throws {
        var random = SplitMix64(seed: 0x7E11_15)
        for _ in 0..<500 {
            let channel = EmbeddedChannel(handler: ByteToMessageHandler(FrameDecoder(maximumFrameLength: 4096)))
            var input: [UInt8] = []
            switch random.next() % 3 {
            case 0:
                input = (0..<Int(random.next() % 200)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 1:
                var frame = Frames.encodedBytes(Frames.request(random.next() | 1, payload: [UInt8](repeating: 9, count: Int(random.next() % 64))))
                frame.removeLast(Int(random.next() % UInt64(frame.count)))
                input = frame
            default:
                var frame = Frames.encodedBytes(Frames.request(1))
                let index = 4 + Int(random.next() % UInt64(frame.count - 4))
                frame[index] = UInt8.random(in: 0...255, using: &random)
                input = frame
            }
            do {
                try channel.writeInbound(ByteBuffer(bytes: input))
                while try channel.readInbound(as: Trellis_V1_Frame.self) != nil {}
            } catch {
                #expect(error is WireError)
            }
            _ = try? channel.finish()
        }
    }
}
