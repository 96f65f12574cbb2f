import Foundation
public import NIOCore
public import TrellisProto

/// Splits a byte stream into `Frame`s: a 4-byte big-endian length, then that
/// many bytes of protobuf. A length over `maximumFrameLength` is rejected as
/// soon as the header is read, before any of the body is buffered, so a peer
/// cannot make us hold more than one frame's worth of memory.
public struct FrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = Trellis_V1_Frame

    /// 4 MiB unless configured otherwise.
    public static let defaultMaximumFrameLength = 4 * 1024 * 1024

    public let maximumFrameLength: Int

    public init(maximumFrameLength: Int = FrameDecoder.defaultMaximumFrameLength) {
        self.maximumFrameLength = maximumFrameLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.decodeFrame(from: &buffer, maximumFrameLength: maximumFrameLength) else {
            return .needMoreData
        }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A partial frame left at EOF is dropped: the peer is gone.
        return .needMoreData
    }

    /// Reads one frame if the buffer holds all of it; throws on an oversize
    /// length or a body that is not a `Frame`.
    static func decodeFrame(from buffer: inout ByteBuffer, maximumFrameLength: Int) throws -> Trellis_V1_Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= maximumFrameLength else {
            throw WireError(
                .resourceExhausted,
                "frame of \(length) bytes exceeds the limit of \(maximumFrameLength) bytes"
            )
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        let body = buffer.readSlice(length: Int(length))!
        do {
            return try body.withUnsafeReadableBytes { bytes in
                // No copy: the decoded message copies what it keeps.
                guard let base = bytes.baseAddress else { return Trellis_V1_Frame() }
                let view = Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: bytes.count, deallocator: .none)
                return try Trellis_V1_Frame(serializedBytes: view)
            }
        } catch {
            throw WireError(.invalidArgument, "a frame of \(length) bytes is not a valid trellis.v1.Frame")
        }
    }
}

/// Writes each `Frame` as its 4-byte big-endian length followed by its
/// protobuf bytes.
public struct FrameEncoder: MessageToByteEncoder, Sendable {
    public typealias OutboundIn = Trellis_V1_Frame

    public init() {}

    public func encode(data: Trellis_V1_Frame, out: inout ByteBuffer) throws {
        let bytes: [UInt8] = try data.serializedBytes()
        out.reserveCapacity(minimumWritableBytes: 4 + bytes.count)
        out.writeInteger(UInt32(bytes.count))
        out.writeBytes(bytes)
    }
}
