import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KubeSimulator
import Synchronization
import Testing
import TrellisKube
import TrellisTestSupport

/// TrellisKube against the simulator's authentication, Events, Deployments'
/// scale and Pod patches, and its connection reuse.
@Suite struct KubeClientClusterTests {
    @Test func sendsTheBearerTokenAndRereadsARotatedTokenFile() async throws {
        let directory = NSTemporaryDirectory() + "trellis-kube-token-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let serverToken = directory + "/server-token"
        let clientToken = directory + "/client-token"
        try "first-token\n".write(toFile: serverToken, atomically: true, encoding: .utf8)
        try "first-token\n".write(toFile: clientToken, atomically: true, encoding: .utf8)

        var configuration = KubeSimulator.Configuration()
        configuration.bearerTokenFile = serverToken
        try await KubeSimulator.with(configuration: configuration) { simulator in
            let server = "http://127.0.0.1:\(try #require(simulator.port))"

            // No token: 401 Unauthorized, not retried.
            let anonymous = try KubeClient(endpoint: KubeEndpoint(server: server))
            do throws(KubeError) {
                _ = try await anonymous.listPods(namespace: "default")
                Issue.record("listing without a token succeeded")
            } catch {
                #expect(error.code == 401)
            }
            #expect(anonymous.retryCount == 0)

            let client = try KubeClient(endpoint: KubeEndpoint(server: server, credentials: .tokenFile(clientToken)))
            _ = try await client.listPods(namespace: "default")

            // The token rotates (as a projected ServiceAccount token does): the
            // server takes only the new one; the client's next request, answered
            // 401, reads the file again and succeeds.
            try "second-token\n".write(toFile: serverToken, atomically: true, encoding: .utf8)
            try "second-token\n".write(toFile: clientToken, atomically: true, encoding: .utf8)
            _ = try await client.listPods(namespace: "default")

            let fixed = try KubeClient(endpoint: KubeEndpoint(server: server, credentials: .token("second-token")))
            _ = try await fixed.listPods(namespace: "default")
        }
    }

    @Test func podEventsAndAnnotations() async throws {
        var configuration = KubeSimulator.Configuration()
        configuration.unpullableImages = ["registry.invalid/missing:1"]
        try await KubeSimulator.with(configuration: configuration) { simulator in
            let client = try KubeClient(endpoint: KubeEndpoint(server: "http://127.0.0.1:\(try #require(simulator.port))"))
            var pod = KubeClientTests.pod("no-image", command: ["true"])
            pod.spec?.containers[0].image = "registry.invalid/missing:1"
            _ = try await client.createPod(pod, namespace: "default")
            var events: [Event] = []
            try await eventually("the pull failure is an event", timeout: .seconds(30)) {
                events = try await client.podEvents("no-image", namespace: "default")
                return events.contains { $0.reason == "Failed" }
            }
            let failed = try #require(events.first { $0.reason == "Failed" })
            #expect(failed.type == "Warning")
            #expect(failed.involvedObject?.name == "no-image")
            #expect(events.contains { $0.reason == "Scheduled" })
            // Events of other pods are not listed.
            _ = try await client.createPod(KubeClientTests.pod("other", command: ["true"]), namespace: "default")
            #expect(try await client.podEvents("no-image", namespace: "default").allSatisfy { $0.involvedObject?.name == "no-image" })

            let annotated = try await client.annotatePod("other", namespace: "default", annotations: ["controller.kubernetes.io/pod-deletion-cost": "-100"])
            #expect(annotated.metadata.annotations?["controller.kubernetes.io/pod-deletion-cost"] == "-100")
            let removed = try await client.annotatePod("other", namespace: "default", annotations: ["controller.kubernetes.io/pod-deletion-cost": nil])
            #expect(removed.metadata.annotations?["controller.kubernetes.io/pod-deletion-cost"] == nil)
        }
    }

    @Test func getsAndPatchesADeploymentsScale() async throws {
        try await KubeSimulator.with(configuration: .init()) { simulator in
            let port = try #require(simulator.port)
            let client = try KubeClient(endpoint: KubeEndpoint(server: "http://127.0.0.1:\(port)"))
            let deployment = #"""
                {"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"workers"},
                 "spec":{"replicas":1,"selector":{"matchLabels":{"app":"workers"}},
                         "template":{"metadata":{"labels":{"app":"workers"}},
                                     "spec":{"terminationGracePeriodSeconds":1,"containers":[{"name":"agent","image":"trellis/agent:1","command":["sleep","60"]}]}}}}
                """#
            var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/apis/apps/v1/namespaces/default/deployments")!)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(deployment.utf8)
            let (_, response) = try await URLSession.shared.data(for: request)
            #expect((response as? HTTPURLResponse)?.statusCode == 201)

            let scale = try await client.getScale(deployment: "workers", namespace: "default")
            #expect(scale.spec.replicas == 1)
            #expect(scale.status?.selector == "app=workers")
            let patched = try await client.patchScale(deployment: "workers", namespace: "default", replicas: 3)
            #expect(patched.spec.replicas == 3)
            try await eventually("three workers run", timeout: .seconds(30)) {
                try await client.listPods(namespace: "default", labelSelector: "app=workers").items.filter { $0.status?.phase == "Running" }.count == 3
            }
            _ = try await client.patchScale(deployment: "workers", namespace: "default", replicas: 0)
            do throws(KubeError) {
                _ = try await client.getScale(deployment: "nope", namespace: "default")
                Issue.record("the scale of a missing deployment was found")
            } catch {
                #expect(error.isNotFound)
            }
        }
    }

    @Test func concurrentRequestsReuseConnections() async throws {
        try await KubeSimulator.with(configuration: .init()) { simulator in
            let client = try KubeClient(endpoint: KubeEndpoint(server: "http://127.0.0.1:\(try #require(simulator.port))"))
            // Ten rounds of 20 concurrent requests: the connections of the first
            // round carry the later ones.
            for _ in 0..<10 {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<20 { group.addTask { _ = try await client.listPods(namespace: "default") } }
                    try await group.waitForAll()
                }
            }
            #expect(simulator.requestCount(method: "GET", path: "/api/v1/namespaces/default/pods") == 200)
            #expect(simulator.connectionsAccepted <= 40, "\(simulator.connectionsAccepted) connections for 200 requests")
        }
    }
}
