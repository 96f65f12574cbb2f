import NIOCore
import NIOPosix
import Synchronization
import Testing
import TrellisTestSupport

@testable import TrellisControlPlane

/// The ops HTTP server over real loopback TCP, read byte for byte by
/// `RawHTTPConnection`.
@Suite struct OpsHTTPServerTests {
    /// A running server on a free port with a readiness the test switches,
    /// and a registry whose `refreshes` gauge counts `beforeMetrics` calls.
    final class Fixture: Sendable {
        let registry = MetricsRegistry()
        let readiness = Shared(Readiness.ready)
        let server: OpsHTTPServer
        var port: Int { server.port ?? 0 }

        init(readinessGate: (@Sendable () async -> Void)? = nil) async throws {
            let registry = registry
            let refreshes = registry.gauge("refreshes", help: "beforeMetrics calls.")
            registry.counter("things_total", help: "Things.", labelNames: ["kind"]).increment(labels: ["a\"b"])
            let readiness = readiness
            server = OpsHTTPServer(
                configuration: OpsHTTPServerConfiguration(host: "127.0.0.1", port: 0),
                registry: registry,
                readiness: {
                    await readinessGate?()
                    return readiness.value
                },
                beforeMetrics: { refreshes.increment() }
            )
            try await server.start()
        }
    }

    @Test func bindsAFreePortWhenAskedForZero() async throws {
        let fixture = try await Fixture()
        #expect(fixture.port > 0)
        await fixture.server.shutdown()
    }

    @Test func healthzAnswersOK() async throws {
        let fixture = try await Fixture()
        let response = try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.request("GET", "/healthz")
            return try await connection.readResponse()
        }
        #expect(response.statusLine == "HTTP/1.1 200 OK")
        #expect(response.body == "ok\n")
        #expect(response.header("Content-Type") == "text/plain; charset=utf-8")
        #expect(response.header("Content-Length") == "3")
        await fixture.server.shutdown()
    }

    @Test func readyzFollowsTheReadinessClosure() async throws {
        let fixture = try await Fixture()
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.request("GET", "/readyz")
            let ready = try await connection.readResponse()
            #expect(ready.status == 200)
            #expect(ready.body == "ready\n")

            fixture.readiness.value = .notReady("database unreachable: connection refused", "not the leader")
            try await connection.request("GET", "/readyz?verbose=1")
            let notReady = try await connection.readResponse()
            #expect(notReady.statusLine == "HTTP/1.1 503 Service Unavailable")
            #expect(notReady.body == "not ready\ndatabase unreachable: connection refused\nnot the leader\n")
            #expect(notReady.header("Content-Type") == "text/plain; charset=utf-8")
        }
        await fixture.server.shutdown()
    }

    @Test func metricsServesTheRegistryAfterRefreshing() async throws {
        let fixture = try await Fixture()
        let response = try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.request("GET", "/metrics")
            return try await connection.readResponse()
        }
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
        #expect(response.body == """
            # HELP refreshes beforeMetrics calls.
            # TYPE refreshes gauge
            refreshes 1
            # HELP things_total Things.
            # TYPE things_total counter
            things_total{kind="a\\"b"} 1

            """)
        #expect(response.header("Content-Length") == String(response.body.utf8.count))
        await fixture.server.shutdown()
    }

    @Test func headGetsTheHeadersWithoutTheBody() async throws {
        let fixture = try await Fixture()
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.request("GET", "/healthz")
            let get = try await connection.readResponse()
            try await connection.request("HEAD", "/healthz")
            let head = try await connection.readResponse(headOnly: true)
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == get.header("Content-Length"))
            // Had the HEAD answer carried a body, it would be read as the
            // start of this next response.
            try await connection.request("GET", "/healthz")
            #expect(try await connection.readResponse().body == "ok\n")
        }
        await fixture.server.shutdown()
    }

    @Test func unknownPathIs404AndOtherMethodsAre405() async throws {
        let fixture = try await Fixture()
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.request("GET", "/admin")
            let missing = try await connection.readResponse()
            #expect(missing.statusLine == "HTTP/1.1 404 Not Found")
            #expect(missing.body == "not found: /admin\n")

            try await connection.request("POST", "/healthz", headers: ["Content-Length: 0"])
            let post = try await connection.readResponse()
            #expect(post.statusLine == "HTTP/1.1 405 Method Not Allowed")
            #expect(post.header("Allow") == "GET, HEAD")

            try await connection.request("DELETE", "/metrics")
            let delete = try await connection.readResponse()
            #expect(delete.status == 405)
            #expect(delete.header("Allow") == "GET, HEAD")
            #expect(delete.header("Connection") == nil)
        }
        await fixture.server.shutdown()
    }

    @Test func keepAliveServesTwoRequestsOnOneConnection() async throws {
        let fixture = try await Fixture()
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.request("GET", "/healthz")
            let first = try await connection.readResponse()
            try await connection.request("GET", "/metrics")
            let second = try await connection.readResponse()
            #expect(first.body == "ok\n")
            #expect(second.status == 200)
            #expect(second.body.contains("refreshes 1\n"))
            #expect(first.header("Connection") == nil && second.header("Connection") == nil)
        }
        await fixture.server.shutdown()
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        let fixture = try await Fixture()
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            // /readyz is answered after an await, /healthz at once: the
            // answers must still come back in request order.
            try await connection.send(
                "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try await connection.readResponse().body == "ready\n")
            #expect(try await connection.readResponse().body == "ok\n")
            #expect(try await connection.readResponse().status == 404)
        }
        await fixture.server.shutdown()
    }

    @Test func connectionCloseIsHonoured() async throws {
        let fixture = try await Fixture()
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.request("GET", "/healthz", headers: ["Connection: close"])
            let response = try await connection.readResponse()
            #expect(response.status == 200)
            #expect(response.header("Connection") == "close")
            #expect(try await connection.serverCloses())
        }
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.send("GET /healthz HTTP/1.0\r\n\r\n")
            let response = try await connection.readResponse()
            #expect(response.statusLine == "HTTP/1.0 200 OK")
            #expect(try await connection.serverCloses())
        }
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            #expect(try await connection.readResponse().header("Connection") == "keep-alive")
            try await connection.send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            #expect(try await connection.readResponse().body == "ok\n")
        }
        await fixture.server.shutdown()
    }

    @Test func requestsWithABodyAreRefused() async throws {
        let fixture = try await Fixture()
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.send("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            let response = try await connection.readResponse()
            #expect(response.statusLine == "HTTP/1.1 413 Payload Too Large")
            #expect(response.header("Connection") == "close")
            #expect(try await connection.serverCloses())
        }
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            #expect(try await connection.readResponse().status == 413)
            #expect(try await connection.serverCloses())
        }
        await fixture.server.shutdown()
    }

    @Test func oversizedHeadersAreRefusedByTheDecoder() async throws {
        let fixture = try await Fixture()
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            let huge = String(repeating: "x", count: 16 * 1024)
            try await connection.request("GET", "/healthz", headers: ["X-Huge: \(huge)"])
            let response = try await connection.readResponse()
            #expect(response.status == 400)
            #expect(try await connection.serverCloses())
        }
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.send("NOT AN HTTP REQUEST\r\n\r\n")
            #expect(try await connection.readResponse().status == 400)
        }
        await fixture.server.shutdown()
    }

    @Test func shutdownClosesIdleConnectionsAndStopsAccepting() async throws {
        let fixture = try await Fixture()
        let port = fixture.port
        try await RawHTTPConnection.with(port: port) { connection in
            try await connection.request("GET", "/healthz")
            #expect(try await connection.readResponse().status == 200)
            await fixture.server.shutdown()
            #expect(try await connection.serverCloses())
        }
        #expect(fixture.server.port == nil)
        await fixture.server.shutdown()  // a second call is harmless
        // Not checked: that connecting to the old port fails. Tests run in
        // parallel, and another test's server may be given the freed port.
    }

    @Test func shutdownLetsARequestInProgressFinish() async throws {
        let entered = Shared(false)
        let (release, releaseContinuation) = AsyncStream<Void>.makeStream()
        let fixture = try await Fixture(readinessGate: {
            entered.value = true
            for await _ in release { break }
        })
        try await RawHTTPConnection.with(port: fixture.port) { connection in
            try await connection.request("GET", "/readyz")
            try await eventually("the readiness check started") { entered.value }
            let shutdown = Task { await fixture.server.shutdown(grace: .seconds(30)) }
            releaseContinuation.yield()
            let response = try await connection.readResponse()
            #expect(response.status == 200)
            #expect(response.body == "ready\n")
            #expect(try await connection.serverCloses())
            await shutdown.value
        }
    }
}
