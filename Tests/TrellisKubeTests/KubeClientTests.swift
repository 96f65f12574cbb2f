import Foundation
import KubeSimulator
import Synchronization
import Testing
import TrellisKube

/// TrellisKube's client over real HTTP (libcurl) against the Kubernetes API
/// simulator on loopback.
@Suite struct KubeClientTests {
    func withClient(
        historyLimit: Int = 1000, options: KubeClient.Options = KubeClient.Options(),
        _ body: (KubeSimulator, KubeClient) async throws -> Void
    ) async throws {
        let simulator = try KubeSimulator(configuration: .init(historyLimit: historyLimit))
        try await simulator.start()
        let port = try #require(simulator.port)
        let client = try KubeClient(endpoint: KubeEndpoint(server: "http://127.0.0.1:\(port)"), options: options)
        do { try await body(simulator, client) } catch {
            await simulator.shutdown()
            throw error
        }
        await simulator.shutdown()
    }

    static func pod(_ name: String, labels: [String: String] = ["app": "test"], command: [String]) -> Pod {
        var container = Container(name: "base", image: "ubuntu:22.04")
        container.command = command
        var spec = PodSpec(containers: [container])
        spec.restartPolicy = "Never"
        return Pod(metadata: ObjectMeta(name: name, labels: labels), spec: spec)
    }

    /// Polls `getPod` until `condition` holds (the simulator runs the pod as
    /// a process; no fixed sleeps).
    static func waitFor(_ client: KubeClient, _ name: String, timeout: Duration = .seconds(30), until condition: (Pod) -> Bool) async throws -> Pod {
        let deadline = ContinuousClock.now + timeout
        while true {
            let pod = try await client.getPod(name, namespace: "default")
            if condition(pod) { return pod }
            if ContinuousClock.now > deadline { Issue.record("pod \(name) never reached the condition; last status \(String(describing: pod.status))"); return pod }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func createGetListLogDelete() async throws {
        try await withClient { _, client in
            let created = try await client.createPod(Self.pod("echo-1", command: ["sh", "-c", "echo hello; echo world >&2"]), namespace: "default")
            #expect(created.name == "echo-1")
            #expect(created.metadata.uid?.isEmpty == false)
            #expect(created.spec?.restartPolicy == "Never")

            let done = try await Self.waitFor(client, "echo-1") { $0.status?.phase == "Succeeded" }
            let terminated = try #require(done.status?.containerStatuses?.first?.state?.terminated)
            #expect(terminated.exitCode == 0)

            let log = try await client.podLog("echo-1", namespace: "default")
            #expect(String(decoding: log, as: UTF8.self).contains("hello"))

            let listed = try await client.listPods(namespace: "default", labelSelector: "app=test")
            #expect(listed.items.map(\.name) == ["echo-1"])
            #expect(listed.metadata.resourceVersion?.isEmpty == false)
            #expect(try await client.listPods(namespace: "default", labelSelector: "app=other").items.isEmpty)

            try await client.deletePod("echo-1", namespace: "default", gracePeriodSeconds: 0)
            // Deleting what is gone is not an error.
            try await client.deletePod("echo-1", namespace: "default")
            await #expect(throws: KubeError.self) { try await client.getPod("echo-1", namespace: "default") }
            do throws(KubeError) { _ = try await client.getPod("echo-1", namespace: "default") } catch { #expect(error.isNotFound) }
        }
    }

    @Test func apiErrorsCarryTheirStatus() async throws {
        try await withClient { _, client in
            _ = try await client.createPod(Self.pod("twice", command: ["true"]), namespace: "default")
            do throws(KubeError) {
                _ = try await client.createPod(Self.pod("twice", command: ["true"]), namespace: "default")
                Issue.record("a second create of the same name succeeded")
            } catch {
                #expect(error.isAlreadyExists)
                #expect(error.description.contains("409"))
            }
            do throws(KubeError) {
                _ = try await client.createPod(Self.pod("Not_A_Name", command: ["true"]), namespace: "default")
                Issue.record("an invalid name was accepted")
            } catch {
                #expect(error.code == 422)
                #expect(error.description.contains("Not_A_Name"))
            }
        }
    }

    @Test func retriesServerErrorsAndTooManyRequests() async throws {
        var options = KubeClient.Options()
        options.initialBackoff = .milliseconds(20)
        try await withClient(options: options) { simulator, client in
            simulator.injectFaults(code: 500, count: 2, method: "POST")
            _ = try await client.createPod(Self.pod("after-500s", command: ["true"]), namespace: "default")
            #expect(client.retryCount == 2)

            // 429 comes with Retry-After: 1; the client waits at least that.
            simulator.injectFaults(code: 429, count: 1, method: "GET")
            let started = ContinuousClock.now
            _ = try await client.getPod("after-500s", namespace: "default")
            #expect(ContinuousClock.now - started >= .milliseconds(900))
            #expect(client.retryCount == 3)
        }
    }

    @Test func givesUpAfterMaxAttempts() async throws {
        var options = KubeClient.Options()
        options.initialBackoff = .milliseconds(10)
        options.maxAttempts = 3
        try await withClient(options: options) { simulator, client in
            simulator.injectFaults(code: 503, count: 10, method: "GET")
            do throws(KubeError) {
                _ = try await client.listPods(namespace: "default")
                Issue.record("the list succeeded through 503s")
            } catch {
                #expect(error.code == 503)
            }
            #expect(client.retryCount == 2)
        }
    }

    @Test func unreachableServerIsATransportError() async throws {
        var options = KubeClient.Options()
        options.maxAttempts = 2
        options.initialBackoff = .milliseconds(10)
        let client = try KubeClient(endpoint: KubeEndpoint(server: "http://127.0.0.1:1"), options: options)
        do throws(KubeError) {
            _ = try await client.listPods(namespace: "default")
            Issue.record("listing from port 1 succeeded")
        } catch {
            guard case .transport(let message) = error else { Issue.record("expected a transport error, got \(error)"); return }
            #expect(message.contains("127.0.0.1:1"))
        }
    }

    @Test func followedLogEndsWithTheContainer() async throws {
        try await withClient { _, client in
            _ = try await client.createPod(Self.pod("counter", command: ["sh", "-c", "for i in 1 2 3; do echo line-$i; sleep 0.2; done"]), namespace: "default")
            _ = try await Self.waitFor(client, "counter") { $0.status?.phase != "Pending" }
            let collected = Mutex(Data())
            let ended: Result<Void, KubeError> = await withCheckedContinuation { continuation in
                _ = client.followPodLog("counter", namespace: "default", onData: { data in
                    collected.withLock { $0.append(data) }
                }, onEnd: { continuation.resume(returning: $0) })
            }
            #expect((try? ended.get()) != nil)
            #expect(String(decoding: collected.withLock { $0 }, as: UTF8.self) == "line-1\nline-2\nline-3\n")
        }
    }

    @Test func cancellingAStreamEndsIt() async throws {
        try await withClient { _, client in
            _ = try await client.createPod(Self.pod("sleeper", command: ["sleep", "30"]), namespace: "default")
            _ = try await Self.waitFor(client, "sleeper") { $0.status?.phase == "Running" }
            let ended: Result<Void, KubeError> = await withCheckedContinuation { continuation in
                let stream = client.followPodLog("sleeper", namespace: "default", onData: { _ in }, onEnd: { continuation.resume(returning: $0) })
                stream.cancel()
            }
            guard case .failure(.cancelled) = ended else { Issue.record("expected cancelled, got \(ended)"); return }
            try await client.deletePod("sleeper", namespace: "default", gracePeriodSeconds: 0)
        }
    }

    @Test func tooOldResourceVersionIsGone() async throws {
        try await withClient(historyLimit: 3) { _, client in
            for index in 0..<6 { _ = try await client.createPod(Self.pod("p\(index)", command: ["true"]), namespace: "default") }
            let ended: Result<Void, KubeError> = await withCheckedContinuation { continuation in
                let gone = Mutex(false)
                _ = client.watchPods(namespace: "default", labelSelector: nil, resourceVersion: "1", timeoutSeconds: 5, onEvent: { event in
                    if event.type == "ERROR", let status = try? event.decode(Status.self).object, status.code == 410 { gone.withLock { $0 = true } }
                }, onEnd: { result in
                    if gone.withLock({ $0 }) { continuation.resume(returning: .failure(.api(code: 410, status: nil, request: "watch"))) }
                    else { continuation.resume(returning: result) }
                })
            }
            guard case .failure(let error) = ended, error.isGone else { Issue.record("expected 410 Gone, got \(ended)"); return }
        }
    }

    @Test func manyConcurrentCreations() async throws {
        try await withClient { _, client in
            try await withThrowingTaskGroup(of: Pod.self) { group in
                for index in 0..<150 {
                    group.addTask { try await client.createPod(Self.pod("burst-\(index)", labels: ["burst": "yes"], command: ["true"]), namespace: "default") }
                }
                var names = Set<String>()
                for try await pod in group { names.insert(pod.name) }
                #expect(names.count == 150)
            }
            #expect(try await client.listPods(namespace: "default", labelSelector: "burst=yes").items.count == 150)
        }
    }
}
