import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing
import TrellisProto

@testable import TrellisWire

/// Server and client over real TCP sockets on 127.0.0.1. Tests wait for
/// events with generous timeouts and never assert on speed.
@Suite struct LoopbackTests {
    @Test func unaryCall() async throws {
        let test = try await TestServer.start()
        let connection = try await test.connect()
        #expect(connection.welcome?.heartbeatTtl.millis == 30_000)
        let answer = try await connection.unary("/test.Echo/Echo", Data([1, 2, 3]))
        #expect(answer == Data([1, 2, 3]))
        var ping = Trellis_V1_PingRequest()
        ping.payload = Data("hi ".utf8)
        let typed = try await connection.unary("/trellis.v1.TrellisAPI/Ping", ping, as: Trellis_V1_PingResponse.self)
        #expect(String(decoding: typed.payload, as: UTF8.self) == "hi admin")
        await connection.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test(arguments: [true, false]) func synchronousUnaryHandler(onEventLoop: Bool) async throws {
        let test = try await TestServer.start { $0.handlersOnEventLoop = onEventLoop }
        let connection = try await test.connect()
        #expect(try await connection.unary("/test.Echo/SyncEcho", Data("hi ".utf8)) == Data("hi admin".utf8))
        await #expect(throws: WireError.self) {
            _ = try await connection.unary("/test.Echo/SyncEcho", Data())
        }
        do {
            _ = try await connection.unary("/test.Echo/SyncEcho", Data())
        } catch let error as WireError {
            #expect(error.code == .invalidArgument)
        }
        // Many in flight at once, answered in one read burst each.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask {
                    let payload = Data([UInt8(index % 256), 1])
                    let answer = try await connection.unary("/test.Echo/SyncEcho", payload, timeout: .seconds(20))
                    #expect(answer == payload + Data("admin".utf8))
                }
            }
            try await group.waitForAll()
        }
        await connection.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func manyConcurrentCallsShareOneConnection() async throws {
        let test = try await TestServer.start()
        let connection = try await test.connect()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<500 {
                group.addTask {
                    let payload = Data(String(index).utf8)
                    let answer = try await connection.unary("/test.Echo/Echo", payload, timeout: .seconds(20))
                    #expect(answer == payload)
                }
            }
            try await group.waitForAll()
        }
        await connection.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func serverStreamingWithBackpressure() async throws {
        let test = try await TestServer.start()
        let connection = try await test.connect()
        let stream = connection.serverStream("/test.Echo/Count", Data([50]), window: 2)
        var iterator = stream.makeAsyncIterator()
        // Read nothing yet: with a window of 2 the server sends two items, then waits.
        try await test.events.next("sent 1")
        var received: [UInt8] = []
        while let item = try await iterator.next() { received.append(contentsOf: item) }
        #expect(received == Array(0..<50))
        await connection.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func deadlineExceededCancelsTheHandler() async throws {
        let test = try await TestServer.start()
        let connection = try await test.connect()
        await #expect {
            _ = try await connection.unary("/test.Echo/Slow", Data(), timeout: .milliseconds(200))
        } throws: { ($0 as? WireError)?.code == .deadlineExceeded }
        try await test.events.next("slow cancelled")
        // The connection is still fine.
        #expect(try await connection.unary("/test.Echo/Echo", Data([7])) == Data([7]))
        await connection.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func cancellingTheCallerCancelsTheHandler() async throws {
        let test = try await TestServer.start()
        let connection = try await test.connect()
        let call = Task { try await connection.unary("/test.Echo/Slow", Data()) }
        try await test.events.next("slow started")
        call.cancel()
        await #expect { _ = try await call.value } throws: { ($0 as? WireError)?.code == .cancelled }
        try await test.events.next("slow cancelled")
        await connection.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func wrongTokenIsUnauthenticated() async throws {
        let test = try await TestServer.start()
        await #expect { _ = try await test.connect(credentials: "guess") } throws: { ($0 as? WireError)?.code == .unauthenticated }
        let client = WireClient(configuration: test.clientConfiguration(credentials: ""))
        await #expect { try await client.run() } throws: { ($0 as? WireError)?.code == .unauthenticated }
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        let test = try await TestServer.start()
        let connection = try await test.connect()
        await #expect {
            _ = try await connection.unary("/trellis.v1.TrellisAPI/NoSuchMethod", Data())
        } throws: { ($0 as? WireError)?.code == .unimplemented }
        await connection.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func garbageRequestPayloadIsInvalidArgument() async throws {
        let test = try await TestServer.start()
        let connection = try await test.connect()
        await #expect {
            _ = try await connection.unary("/trellis.v1.TrellisAPI/Ping", Data([0xFF, 0xFF, 0xFF]))
        } throws: { ($0 as? WireError)?.code == .invalidArgument }
        await connection.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func oversizeFrameClosesOnlyThatConnection() async throws {
        let test = try await TestServer.start { $0.maximumFrameLength = 64 * 1024 }
        let good = try await test.connect()
        let raw = try await RawPeer(port: test.port)
        try await raw.send(Frames.hello())
        #expect(try await raw.nextFrame()?.welcome.protocolVersion == WireProtocol.version)
        var header: [UInt8] = []
        withUnsafeBytes(of: UInt32(100 * 1024 * 1024).bigEndian) { header.append(contentsOf: $0) }
        try await raw.send(header)
        let frames = try await raw.framesUntilClosed()
        #expect(frames.last?.goaway.status.code == .resourceExhausted)
        #expect(try await good.unary("/test.Echo/Echo", Data([1])) == Data([1]))
        await good.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func goAwayLetsCallsInFlightFinishAndRefusesNewOnes() async throws {
        let test = try await TestServer.start()
        let connection = try await test.connect()
        let inFlight = Task { try await connection.unary("/test.Echo/Gated", Data([5])) }
        try await test.events.next("gated started")
        let shutdown = Task { await test.server.shutdown(grace: .seconds(30)) }
        // Wait until the client has seen GOAWAY: new calls are refused.
        try await withTimeout {
            while true {
                do {
                    _ = try await connection.unary("/test.Echo/Echo", Data([1]))
                    try await Task.sleep(for: .milliseconds(10))
                } catch let error as WireError {
                    #expect(error.code == .unavailable)
                    return
                }
            }
        }
        test.gate.open()
        #expect(try await inFlight.value == Data([5]))
        try await withTimeout { await shutdown.value }
        #expect(test.server.connectionCount == 0)
    }

    @Test func serverRefusesCallsAfterGoAwayWithUnavailable() async throws {
        let test = try await TestServer.start()
        let raw = try await RawPeer(port: test.port)
        try await raw.send(Frames.hello())
        var frames = raw.frames.makeAsyncIterator()
        #expect(await frames.next()?.welcome.protocolVersion == WireProtocol.version)
        try await raw.send(Frames.request(1, "/test.Echo/Gated", payload: [9]))
        try await test.events.next("gated started")
        let shutdown = Task { await test.server.shutdown(grace: .seconds(30)) }
        let goaway = try #require(await frames.next())
        #expect(goaway.goaway.lastCallID == 1)
        #expect(goaway.goaway.status.code == .unavailable)
        // A call that crossed the GOAWAY is refused, not run.
        try await raw.send(Frames.request(3, "/test.Echo/Echo"))
        let refused = try #require(await frames.next())
        #expect(refused.callID == 3)
        #expect(refused.response.status.code == .unavailable)
        test.gate.open()
        let answer = try #require(await frames.next())
        #expect(answer.callID == 1)
        #expect(answer.response.payload == Data([9]))
        // Then the server closes the drained connection.
        #expect(await frames.next() == nil)
        try await withTimeout { await shutdown.value }
    }

    @Test func leavingAStreamEarlyCancelsTheHandler() async throws {
        let test = try await TestServer.start()
        let connection = try await test.connect()
        do {
            let stream = connection.serverStream("/test.Echo/Count", Data([200]), window: 4)
            for try await item in stream where item == Data([2]) { break }
        }
        // The handler is stopped: it waits for credit that never comes and
        // the cancel ends it. The connection keeps working.
        let serverSide = try #require(test.connections.withLockedValue { $0.first })
        try await withTimeout {
            while true {
                let open = await connection.openCalls() + serverSide.openCalls()
                if open == 0 { return }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        #expect(try await connection.unary("/test.Echo/Echo", Data([4])) == Data([4]))
        await connection.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func shutdownGraceEndsHandlersThatDoNotFinish() async throws {
        let test = try await TestServer.start()
        let connection = try await test.connect()
        let inFlight = Task { try await connection.unary("/test.Echo/Slow", Data()) }
        try await test.events.next("slow started")
        try await withTimeout { await test.server.shutdown(grace: .milliseconds(200)) }
        await #expect { _ = try await inFlight.value } throws: { ($0 as? WireError)?.code == .unavailable }
        try await test.events.next("slow cancelled")
    }

    @Test func clientReconnectsAfterTheServerRestarts() async throws {
        // A port below Linux's ephemeral range (32768-60999): a port the kernel
        // handed out for bind(0) can be given to another test's outgoing
        // connection as soon as the first server lets go of it.
        let first = try await TestServer.startBelowEphemeralRange()
        let port = first.port
        let client = WireClient(configuration: first.clientConfiguration())
        let running = Task { try await client.run() }
        defer { running.cancel() }
        // The first call waits for the first connection: generous, because a
        // machine running two test suites at once once took over 20 s here.
        #expect(try await client.unary("/test.Echo/Echo", Data([1]), timeout: .seconds(60)) == Data([1]))
        await first.server.shutdown(grace: .seconds(5))
        // Under load the old server's sockets may hold the port a moment
        // longer; a restarted server retries its bind the same way.
        let second = try await withTimeout {
            while true {
                do {
                    return try await TestServer.start(port: port)
                } catch {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
        }
        // Calls made while reconnecting wait for the new connection.
        let answer = try await withTimeout {
            while true {
                if let answer = try? await client.unary("/test.Echo/Echo", Data([2]), timeout: .seconds(5)) { return answer }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(answer == Data([2]))
        running.cancel()
        _ = try? await running.value
        await second.server.shutdown(grace: .seconds(5))
    }

    @Test func serverCallsTheClientOverTheSameConnection() async throws {
        let test = try await TestServer.start()
        var agentServices = WireServices()
        agentServices.unary("/trellis.v1.AgentWorker/CancelTask", Trellis_V1_CancelTaskRequest.self) { request, _ in
            var response = Trellis_V1_CancelTaskResponse()
            response.wasRunning = request.attempt.attemptID == "7.1"
            return response
        }
        var configuration = test.clientConfiguration(credentials: "join", role: .agent)
        configuration.name = "node-1"
        let agent = try await WireClient.connect(configuration: configuration, services: agentServices)
        let serverSide = try await withTimeout {
            while true {
                if let connection = test.connections.withLockedValue({ $0.first }) { return connection }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        #expect(serverSide.peer == WireIdentity(role: .agent, name: "node-1"))
        var request = Trellis_V1_CancelTaskRequest()
        request.attempt.attemptID = "7.1"
        let response = try await serverSide.unary("/trellis.v1.AgentWorker/CancelTask", request, as: Trellis_V1_CancelTaskResponse.self, timeout: .seconds(20))
        #expect(response.wasRunning)
        await agent.close()
        await test.server.shutdown(grace: .seconds(5))
    }

    @Test func silentPeerIsDeclaredDead() async throws {
        let test = try await TestServer.start {
            $0.heartbeatTTL = .milliseconds(100)
            $0.heartbeatGrace = .milliseconds(100)
        }
        let raw = try await RawPeer(port: test.port)
        try await raw.send(Frames.hello())
        // Then say nothing: the server closes the connection after TTL + grace.
        let frames = try await raw.framesUntilClosed()
        #expect(frames.first?.welcome.heartbeatTtl.millis == 100)
        await test.server.shutdown(grace: .seconds(5))

        // A client that pings (every TTL / 2) stays connected past TTL + grace.
        // A server of its own with a longer TTL: a short ping cadence slips on
        // two loaded cores, and the point is the pinging, not the cadence.
        let patient = try await TestServer.start {
            $0.heartbeatTTL = .seconds(2)
            $0.heartbeatGrace = .seconds(2)
        }
        let connection = try await patient.connect()
        try await Task.sleep(for: .seconds(5))
        #expect(try await connection.unary("/test.Echo/Echo", Data([3])) == Data([3]))
        await connection.close()
        await patient.server.shutdown(grace: .seconds(5))
    }
}
