import Foundation
import KubeSimulator
import Testing
import TrellisProcess
import TrellisTestSupport

@Suite("Kubernetes API simulator: bearer tokens and traffic", .timeLimit(.minutes(1)))
struct KubeSimulatorAuthTests {
    func withSimulator(_ configure: (inout KubeSimulator.Configuration) -> Void, _ body: (KubeSimulator, Int) async throws -> Void) async throws {
        var configuration = KubeSimulator.Configuration()
        configure(&configuration)
        let simulator = try KubeSimulator(configuration: configuration)
        try await simulator.start()
        do { try await body(simulator, try #require(simulator.port)) } catch { await simulator.shutdown(); throw error }
        await simulator.shutdown()
    }

    /// The API server's answer to a request it cannot authenticate.
    func expectUnauthorized(_ response: Curl.Response, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.code == 401, sourceLocation: sourceLocation)
        #expect(response.json["kind"] as? String == "Status", sourceLocation: sourceLocation)
        #expect(response.json["apiVersion"] as? String == "v1", sourceLocation: sourceLocation)
        #expect(response.json["status"] as? String == "Failure", sourceLocation: sourceLocation)
        #expect(response.json["reason"] as? String == "Unauthorized", sourceLocation: sourceLocation)
        #expect(response.json["message"] as? String == "Unauthorized", sourceLocation: sourceLocation)
        #expect(response.json["code"] as? Int == 401, sourceLocation: sourceLocation)
    }

    @Test func aConfiguredTokenIsRequired() async throws {
        try await withSimulator({ $0.bearerToken = "s3cret" }) { simulator, port in
            let anonymous = try Curl(port: port)
            expectUnauthorized(try anonymous.request("GET", "/api/v1/namespaces/default/pods"))
            expectUnauthorized(try anonymous.request("POST", "/api/v1/namespaces/default/pods", json: pod("a", command: ["true"])))
            let wrong = try Curl(port: port, token: "wrong")
            expectUnauthorized(try wrong.request("GET", "/api/v1/namespaces/default/pods"))
            try await wrong.validateReceived()
            expectUnauthorized(try anonymous.request("GET", "/api/v1/namespaces/default/pods", headers: ["Authorization: Basic czNjcmV0"]))
            // Refused requests change nothing.
            let authorized = try Curl(port: port, token: "s3cret")
            let list = try authorized.request("GET", "/api/v1/namespaces/default/pods")
            #expect(list.code == 200)
            #expect((list.json["items"] as? [Any])?.isEmpty == true)
            #expect(try authorized.request("POST", "/api/v1/namespaces/default/pods", json: pod("a", command: ["true"])).code == 201)
            // Watches too; the simulator's own endpoints need no token.
            let watch = try anonymous.stream("/api/v1/namespaces/default/pods?watch=true")
            defer { watch.stop() }
            #expect(try await watch.wait { $0.finished })
            #expect(watch.text.contains(#""reason":"Unauthorized""#))
            let traffic = try anonymous.request("GET", "/simulator/requests")
            #expect(traffic.code == 200)
            #expect(traffic.json[path: "requests.GET /api/v1/namespaces/default/pods"] as? Int == 5)
            #expect(simulator.requestCount(method: "POST", path: "/api/v1/namespaces/default/pods") == 2)
            #expect(simulator.requestCounts["GET /simulator/requests"] == nil)
            #expect(simulator.connectionsAccepted >= 7)
            try await anonymous.validateReceived()
            try await authorized.validateReceived()
        }
    }

    @Test func aTokenFileIsReadOnEveryRequest() async throws {
        let file = NSTemporaryDirectory() + "kube-sim-token-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data("first\n".utf8).write(to: URL(fileURLWithPath: file))
        try await withSimulator({ $0.bearerTokenFile = file }) { _, port in
            let first = try Curl(port: port, token: "first"), second = try Curl(port: port, token: "second")
            #expect(try first.request("GET", "/api/v1/namespaces/default/pods").code == 200)
            expectUnauthorized(try second.request("GET", "/api/v1/namespaces/default/pods"))
            try Data("second".utf8).write(to: URL(fileURLWithPath: file))
            expectUnauthorized(try first.request("GET", "/api/v1/namespaces/default/pods"))
            #expect(try second.request("GET", "/api/v1/namespaces/default/pods").code == 200)
            // No file, no way in.
            try FileManager.default.removeItem(atPath: file)
            expectUnauthorized(try second.request("GET", "/api/v1/namespaces/default/pods"))
            try await first.validateReceived()
            try await second.validateReceived()
        }
    }

    @Test func theBinaryTakesATokenOrATokenFile() async throws {
        let binary = try ChildProcess.builtProduct("trellis-kube-sim")
        let file = NSTemporaryDirectory() + "kube-sim-token-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: file) }
        try Data("from-file\n".utf8).write(to: URL(fileURLWithPath: file))
        for (flags, token) in [(["--token", "from-flag"], "from-flag"), (["--token-file", file], "from-file")] {
            try await BackgroundProcess.with(binary, ["--port", "0"] + flags) { process in
                let output = try await process.waitForOutput("listening on 127.0.0.1:")
                let port = try #require(output.split(separator: "\n").first { $0.hasPrefix("trellis-kube-sim: listening on 127.0.0.1:") }
                    .flatMap { Int($0.split(separator: ":").last ?? "") })
                let anonymous = try Curl(port: port), authorized = try Curl(port: port, token: token)
                expectUnauthorized(try anonymous.request("GET", "/api/v1/namespaces/default/pods"))
                #expect(try authorized.request("GET", "/api/v1/namespaces/default/pods").code == 200)
                try await anonymous.validateReceived()
                try await authorized.validateReceived()
            }
        }
    }
}
