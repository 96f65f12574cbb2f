import Foundation
import KubeSimulator
import Synchronization
import Testing
import TrellisKube

/// PodInformer: list, watch, resume after a dropped watch, relist after 410.
@Suite struct PodInformerTests {
    /// What the informer reported, by Pod name: the last phase seen.
    final class Recorder: Sendable {
        let phases = Mutex<[String: String]>([:])
        let deleted = Mutex<Set<String>>([])
        let troubles = Mutex<[String]>([])

        func record(_ change: PodInformer.Change) {
            switch change {
            case .listed(let pods): for pod in pods { phases.withLock { $0[pod.name] = pod.status?.phase ?? "" } }
            case .updated(let pod): phases.withLock { $0[pod.name] = pod.status?.phase ?? "" }
            case .deleted(let pod): deleted.withLock { _ = $0.insert(pod.name) }
            case .trouble(let error): troubles.withLock { $0.append(error.description) }
            }
        }

        func phase(_ name: String) -> String? { phases.withLock { $0[name] } }

        func wait(timeout: Duration = .seconds(30), until condition: () -> Bool) async throws {
            let deadline = ContinuousClock.now + timeout
            while !condition() {
                guard ContinuousClock.now < deadline else { Issue.record("condition never held"); return }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    @Test func followsPodsThroughDroppedWatchesAndGone() async throws {
        try await KubeSimulator.with(configuration: .init(historyLimit: 1000)) { simulator in
            let client = try KubeClient(endpoint: KubeEndpoint(server: "http://127.0.0.1:\(try #require(simulator.port))"))
            // A pod that exists before the informer starts comes with the list.
            _ = try await client.createPod(KubeClientTests.pod("before", labels: ["team": "a"], command: ["true"]), namespace: "default")
            _ = try await client.createPod(KubeClientTests.pod("other-team", labels: ["team": "b"], command: ["true"]), namespace: "default")

            let recorder = Recorder()
            let informer = PodInformer(client: client, namespace: "default", labelSelector: "team=a", watchTimeoutSeconds: 30) { recorder.record($0) }
            informer.start()
            defer { informer.stop() }
            try await recorder.wait { recorder.phase("before") == "Succeeded" }
            #expect(informer.lists == 1)

            // Pods made later arrive through the watch; the other team's never.
            _ = try await client.createPod(KubeClientTests.pod("during", labels: ["team": "a"], command: ["true"]), namespace: "default")
            try await recorder.wait { recorder.phase("during") == "Succeeded" }

            // A dropped watch is resumed from the last resourceVersion, not relisted.
            simulator.dropWatches()
            _ = try await client.createPod(KubeClientTests.pod("after-drop", labels: ["team": "a"], command: ["true"]), namespace: "default")
            try await recorder.wait { recorder.phase("after-drop") == "Succeeded" }
            #expect(informer.lists == 1)

            // A watch answered 410 Gone leads to a fresh list.
            simulator.injectFaults(code: 410, count: 1, method: "GET")
            simulator.dropWatches()
            try await recorder.wait { informer.lists == 2 }
            _ = try await client.createPod(KubeClientTests.pod("after-gone", labels: ["team": "a"], command: ["true"]), namespace: "default")
            try await recorder.wait { recorder.phase("after-gone") == "Succeeded" }

            try await client.deletePod("during", namespace: "default", gracePeriodSeconds: 0)
            try await recorder.wait { recorder.deleted.withLock { $0.contains("during") } }
            #expect(recorder.phase("other-team") == nil)
        }
    }

    @Test func keepsTryingWhileTheServerFails() async throws {
        try await KubeSimulator.with(configuration: .init()) { simulator in
            var options = KubeClient.Options()
            options.maxAttempts = 1
            let client = try KubeClient(endpoint: KubeEndpoint(server: "http://127.0.0.1:\(try #require(simulator.port))"), options: options)
            simulator.injectFaults(code: 500, count: 3, method: "GET")
            let recorder = Recorder()
            let informer = PodInformer(client: client, namespace: "default", labelSelector: "team=a") { recorder.record($0) }
            informer.start()
            defer { informer.stop() }
            _ = try await client.createPod(KubeClientTests.pod("eventually", labels: ["team": "a"], command: ["true"]), namespace: "default")
            try await recorder.wait { recorder.phase("eventually") == "Succeeded" }
            #expect(recorder.troubles.withLock { $0.count } >= 1)
        }
    }
}
