import Foundation
import NIOCore
import Testing
import TrellisProto

@testable import TrellisWire

/// A bounded, seeded barrage of bad input against a live server: each bad
/// connection gets the right status or a clean close of that connection only,
/// and the server keeps serving a well-behaved client throughout.
@Suite struct BadInputTests {
    enum Attack: CaseIterable {
        case randomBytes, truncatedFrame, hugeLength, garbageProtobuf, unknownMethod,
             callBeforeHandshake, duplicateCallID, responseNeverAsked, randomFrames
    }

    @Test func liveServerSurvivesBadInput() async throws {
        let test = try await TestServer.start {
            $0.handshakeTimeout = .milliseconds(500)
            $0.maximumFrameLength = 16 * 1024
        }
        let good = try await test.connect()
        var random = SplitMix64(seed: 0xBAD_1DEA)
        var seen: [Attack: Int] = [:]
        for round in 0..<20 {
            var attacks: [(Attack, UInt64)] = []
            for _ in 0..<9 {
                let attack = Attack.allCases[Int(random.next() % UInt64(Attack.allCases.count))]
                attacks.append((attack, random.next()))
                seen[attack, default: 0] += 1
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (attack, seed) in attacks {
                    group.addTask {
                        do {
                            try await Self.run(attack, seed: seed, port: test.port)
                        } catch {
                            throw AttackFailed(attack: attack, seed: seed, error: error)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let payload = Data("round \(round)".utf8)
            #expect(try await good.unary("/test.Echo/Echo", payload, timeout: .seconds(20)) == payload)
        }
        #expect(seen.count == Attack.allCases.count)
        // Every bad connection is gone; only the good one is left. Generous:
        // under a loaded suite the last handshake timeouts fire late.
        try await withTimeout(60) {
            while test.server.connectionCount > 1 { try await Task.sleep(for: .milliseconds(20)) }
        }
        await good.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    /// Names the attack (and its seed, to replay it) that went wrong.
    struct AttackFailed: Error, CustomStringConvertible {
        let attack: Attack
        let seed: UInt64
        let error: any Error
        var description: String { "\(attack) (seed \(seed)): \(error)" }
    }

    /// A send that met a connection the server had already closed.
    static func isClosedByPeer(_ error: any Error) -> Bool {
        if let error = error as? IOError { return error.errnoCode == EPIPE || error.errnoCode == ECONNRESET }
        if let error = error as? ChannelError { return error == .ioOnClosedChannel || error == .alreadyClosed }
        return false
    }

    static func run(_ attack: Attack, seed: UInt64, port: Int) async throws {
        var random = SplitMix64(seed: seed)
        let peer = try await RawPeer(port: port)
        func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
        var expected: Trellis_V1_StatusCode?
        do {
            switch attack {
            case .randomBytes:
                try await peer.send(bytes(1 + Int(random.next() % 64)))
            case .truncatedFrame:
                var frame = Frames.encodedBytes(Frames.hello())
                frame.removeLast(1 + Int(random.next() % UInt64(frame.count - 1)))
                try await peer.send(frame)
            case .hugeLength:
                try await peer.send(Frames.hello())
                var header: [UInt8] = []
                withUnsafeBytes(of: UInt32(16 * 1024 + 1 + random.next() % 1_000_000_000).bigEndian) { header.append(contentsOf: $0) }
                try await peer.send(header)
                expected = .resourceExhausted
            case .garbageProtobuf:
                try await peer.send(Frames.hello())
                var body = bytes(8 + Int(random.next() % 32))
                body[0] = 0xFF  // field 31, wire type 7: never valid
                var frame: [UInt8] = []
                withUnsafeBytes(of: UInt32(body.count).bigEndian) { frame.append(contentsOf: $0) }
                try await peer.send(frame + body)
                expected = .invalidArgument
            case .unknownMethod:
                try await peer.send(Frames.hello())
                try await peer.send(Frames.request(1, "/trellis.v1.Nothing/\(random.next())"))
                // This one is answered and the connection stays open; we leave.
                let welcome = try await peer.nextFrame()
                #expect(welcome?.welcome.protocolVersion == WireProtocol.version)
                let answer = try await peer.nextFrame()
                #expect(answer?.response.status.code == .unimplemented)
                try await peer.channel.close()
                return
            case .callBeforeHandshake:
                try await peer.send(Frames.request(1))
                expected = .failedPrecondition
            case .duplicateCallID:
                try await peer.send(Frames.hello())
                try await peer.send(Frames.request(1, "/test.Echo/Slow"))
                try await peer.send(Frames.request(1, "/test.Echo/Slow"))
                expected = .invalidArgument
            case .responseNeverAsked:
                try await peer.send(Frames.hello())
                try await peer.send(Frames.response(2 + 2 * (random.next() % 1000)))
                expected = .invalidArgument
            case .randomFrames:
                try await peer.send(Frames.hello())
                for _ in 0..<Int(1 + random.next() % 8) {
                    var frame = Trellis_V1_Frame()
                    frame.callID = random.next() % 16
                    switch random.next() % 6 {
                    case 0: frame.request.method = "/test.Echo/Echo"
                    case 1: frame.response.payload = Data(bytes(4))
                    case 2: frame.streamItem.payload = Data(bytes(4))
                    case 3: frame.cancel = Trellis_V1_Cancel()
                    case 4: frame.streamCredit.items = UInt32(truncatingIfNeeded: random.next())
                    default: frame.hello = Frames.hello().hello
                    }
                    try? await peer.send(frame)
                }
                // Whatever the server made of it, end cleanly from our side too.
                try await Task.sleep(for: .milliseconds(20))
                try? await peer.channel.close()
                _ = try await peer.framesUntilClosed()
                return
            }
        } catch where Self.isClosedByPeer(error) {
            // Under load the server may already have closed this connection
            // (its 500 ms handshake timeout) before all of our bytes went out:
            // a clean close of this connection only, which is what we check.
            _ = try await peer.framesUntilClosed()
            return
        }
        // The server ends the connection (at the latest when the handshake
        // times out), saying why when it can.
        let frames = try await peer.framesUntilClosed()
        if let expected {
            // On a loaded machine the handshake timeout can close the
            // connection before the bad frame is read: also a clean close.
            let code = frames.last?.goaway.status.code
            #expect(code == expected || code == .deadlineExceeded, "\(attack): \(frames)")
        } else if let last = frames.last, case .goaway(let goaway) = last.kind {
            #expect(goaway.status.code != .ok)
        }
    }
}
