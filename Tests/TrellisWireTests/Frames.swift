import Foundation
import NIOCore
import TrellisProto

@testable import TrellisWire

/// Builders for the frames the tests send.
enum Frames {
    static func hello(role: Trellis_V1_PeerRole = .client, credentials: String = "secret", magic: UInt32 = WireProtocol.magic, version: UInt32 = WireProtocol.version) -> Trellis_V1_Frame {
        var frame = Trellis_V1_Frame()
        frame.hello.magic = magic
        frame.hello.protocolVersion = version
        frame.hello.role = role
        frame.hello.credentials = credentials
        frame.hello.name = "test"
        return frame
    }

    static func welcome(ttlMillis: Int64 = 0) -> Trellis_V1_Frame {
        var frame = Trellis_V1_Frame()
        frame.welcome.protocolVersion = WireProtocol.version
        if ttlMillis > 0 { frame.welcome.heartbeatTtl.millis = ttlMillis }
        return frame
    }

    static func request(_ id: UInt64, _ method: String = "/test.Echo/Echo", payload: [UInt8] = [1, 2, 3], timeoutMillis: Int64? = nil, window: UInt32 = 0) -> Trellis_V1_Frame {
        var frame = Trellis_V1_Frame()
        frame.callID = id
        frame.request.method = method
        frame.request.payload = Data(payload)
        if let timeoutMillis { frame.request.timeout.millis = timeoutMillis }
        frame.request.streamWindow = window
        return frame
    }

    static func response(_ id: UInt64, payload: [UInt8] = []) -> Trellis_V1_Frame {
        var frame = Trellis_V1_Frame()
        frame.callID = id
        frame.response.payload = Data(payload)
        return frame
    }

    static func cancel(_ id: UInt64) -> Trellis_V1_Frame {
        var frame = Trellis_V1_Frame()
        frame.callID = id
        frame.cancel = Trellis_V1_Cancel()
        return frame
    }

    static func credit(_ id: UInt64, _ items: UInt32) -> Trellis_V1_Frame {
        var frame = Trellis_V1_Frame()
        frame.callID = id
        frame.streamCredit.items = items
        return frame
    }

    /// The frame as it goes on the wire: length, then protobuf.
    static func encoded(_ frame: Trellis_V1_Frame) -> ByteBuffer {
        var buffer = ByteBuffer()
        try! FrameEncoder().encode(data: frame, out: &buffer)
        return buffer
    }

    static func encodedBytes(_ frame: Trellis_V1_Frame) -> [UInt8] {
        Array(encoded(frame).readableBytesView)
    }
}

/// A deterministic generator, so a failing randomized test can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
