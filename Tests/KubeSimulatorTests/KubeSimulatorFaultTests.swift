import Foundation
import KubeSimulator
import Testing
import TrellisProcess
import TrellisTestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite("Kubernetes API simulator: deletes, faults and the binary", .timeLimit(.minutes(1)))
struct KubeSimulatorFaultTests {
    func withSimulator(_ configure: (inout KubeSimulator.Configuration) -> Void = { _ in }, _ body: (KubeSimulator, Curl) async throws -> Void) async throws {
        var configuration = KubeSimulator.Configuration()
        configure(&configuration)
        let simulator = try KubeSimulator(configuration: configuration)
        try await simulator.start()
        let curl = try Curl(port: try #require(simulator.port))
        do { try await body(simulator, curl) } catch { await simulator.shutdown(); throw error }
        await simulator.shutdown()
        try await curl.validateReceived()
    }

    func waitFor(_ curl: Curl, _ path: String, until condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
        var last: [String: Any] = [:]
        for _ in 0..<300 {
            last = try curl.request("GET", path).json
            if condition(last) { return last }
            try await Task.sleep(for: .milliseconds(30))
        }
        return last
    }

    @Test func deletingARunningPodStopsItsProcess() async throws {
        try await withSimulator { simulator, curl in
            let terminated = NSTemporaryDirectory() + "kube-sim-terminated-" + UUID().uuidString
            defer { try? FileManager.default.removeItem(atPath: terminated) }
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("long", command: ["sh", "-c", "trap 'touch \(terminated); exit 0' TERM; while :; do sleep 0.05; done"])).code == 201)
            let running = try await waitFor(curl, "/api/v1/namespaces/default/pods/long") { $0[path: "status.phase"] as? String == "Running" }
            #expect(running[path: "status.containerStatuses.0.state.running.startedAt"] as? String != nil)
            let watch = try curl.stream("/api/v1/namespaces/default/pods?watch=true&resourceVersion=\(simulator.resourceVersion)")
            defer { watch.stop() }
            try await Task.sleep(for: .milliseconds(200))
            let deleted = try curl.request("DELETE", "/api/v1/namespaces/default/pods/long", json: ["kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 1])
            #expect(deleted.code == 200)
            #expect(deleted.json[path: "metadata.deletionTimestamp"] as? String != nil)
            #expect(try await watch.wait { $0.events.contains { $0["type"] as? String == "DELETED" } })
            // Terminating first (MODIFIED with deletionTimestamp), then gone.
            let types = watch.events.map { "\($0["type"] as? String ?? "") \($0[path: "object.metadata.deletionTimestamp"] != nil)" }
            #expect(types.first == "MODIFIED true")
            #expect(types.last == "DELETED true")
            #expect(try curl.request("GET", "/api/v1/namespaces/default/pods/long").code == 404)
            // The process group got SIGTERM.
            var seen = false
            for _ in 0..<200 where !seen {
                seen = FileManager.default.fileExists(atPath: terminated)
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(seen)
        }
    }

    @Test func imagePullFailureKeepsThePodPending() async throws {
        try await withSimulator({ $0.unpullableImages = ["private/missing:1.0"] }) { _, curl in
            for (name, image) in [("bad-registry", "registry.invalid/app:1"), ("bad-image", "private/missing:1.0")] {
                var body = pod(name, command: ["true"])
                body["spec"] = ["containers": [["name": "base", "image": image, "command": ["true"]]]]
                #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: body).code == 201)
                let pod = try await waitFor(curl, "/api/v1/namespaces/default/pods/\(name)") {
                    $0[path: "status.containerStatuses.0.state.waiting.reason"] as? String == "ImagePullBackOff"
                }
                #expect(pod[path: "status.phase"] as? String == "Pending")
                #expect(pod[path: "status.containerStatuses.0.state.waiting.reason"] as? String == "ImagePullBackOff")
                let log = try curl.request("GET", "/api/v1/namespaces/default/pods/\(name)/log")
                #expect(log.code == 400)
                #expect(log.json["message"] as? String == "container \"base\" in pod \"\(name)\" is waiting to start: ImagePullBackOff")
            }
        }
    }

    @Test func unschedulableAndSlowStart() async throws {
        // A delay long enough that the pod is surely still pending when we
        // look, however loaded the machine (500 ms was not).
        try await withSimulator({ $0.startDelay = .seconds(4) }) { _, curl in
            var body = pod("nowhere", command: ["true"])
            body["spec"] = ["nodeSelector": ["gpu": "yes"], "containers": [["name": "base", "image": "busybox", "command": ["true"]]]]
            let created = try curl.request("POST", "/api/v1/namespaces/default/pods", json: body)
            #expect(created.code == 201)
            #expect(created.json[path: "status.conditions.0.reason"] as? String == "Unschedulable")
            #expect(created.json[path: "status.conditions.0.status"] as? String == "False")

            let clock = ContinuousClock()
            let start = clock.now
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("slow", command: ["true"])).code == 201)
            let pending = try curl.request("GET", "/api/v1/namespaces/default/pods/slow").json
            #expect(pending[path: "status.phase"] as? String == "Pending")
            #expect(pending[path: "status.containerStatuses.0.state.waiting.reason"] as? String == "ContainerCreating")
            let done = try await waitFor(curl, "/api/v1/namespaces/default/pods/slow") { $0[path: "status.phase"] as? String == "Succeeded" }
            #expect(done[path: "status.phase"] as? String == "Succeeded")
            #expect(clock.now - start >= .seconds(4))
            #expect(try curl.request("GET", "/api/v1/namespaces/default/pods/nowhere").json[path: "status.phase"] as? String == "Pending")
        }
    }

    @Test func injectedAPIErrors() async throws {
        try await withSimulator { simulator, curl in
            simulator.injectFaults(code: 500, count: 2, method: "POST")
            let body = pod("retried", command: ["true"])
            let first = try curl.request("POST", "/api/v1/namespaces/default/pods", json: body)
            #expect(first.code == 500)
            #expect(first.json["reason"] as? String == "InternalError")
            #expect(try curl.request("GET", "/api/v1/namespaces/default/pods").code == 200)  // GETs are not affected
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: body).code == 500)
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: body).code == 201)

            #expect(try curl.request("POST", "/simulator/faults", json: ["code": 429, "count": 1]).code == 204)
            let throttled = try curl.request("GET", "/api/v1/namespaces/default/pods/retried")
            #expect(throttled.code == 429)
            #expect(throttled.json["reason"] as? String == "TooManyRequests")
            #expect(try curl.request("GET", "/api/v1/namespaces/default/pods/retried").code == 200)
        }
    }

    @Test func droppedWatchesEndTheStream() async throws {
        try await withSimulator { simulator, curl in
            let watch = try curl.stream("/api/v1/namespaces/default/pods?watch=true&resourceVersion=\(simulator.resourceVersion)")
            defer { watch.stop() }
            try await Task.sleep(for: .milliseconds(300))
            #expect(!watch.finished)
            #expect(try curl.request("POST", "/simulator/drop-watches").code == 204)
            #expect(try await watch.wait { $0.finished })
        }
    }

    @Test func theBinaryServesOnTheAnnouncedPort() async throws {
        let binary = try ChildProcess.builtProduct("trellis-kube-sim")
        try await BackgroundProcess.with(binary, ["--port", "0"]) { process in
            let line = try await process.waitForOutput("listening on 127.0.0.1:")
            let port = try #require(line.split(separator: "\n").first { $0.hasPrefix("trellis-kube-sim: listening on 127.0.0.1:") }
                .flatMap { Int($0.split(separator: ":").last ?? "") })
            let curl = try Curl(port: port)
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("from-binary", command: ["echo", "hi"])).code == 201)
            let list = try curl.request("GET", "/api/v1/namespaces/default/pods?labelSelector=foo%3Dbar")
            #expect((list.json["items"] as? [Any])?.count == 1)
            try await curl.validateReceived()
        }
    }
}
