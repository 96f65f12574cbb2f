import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KubeSimulator
import Synchronization
import Testing
import TrellisKube
import TrellisProto
import TrellisStore
import TrellisTestSupport
import TrellisWire

/// scaled-pool end to end: the real trellisd with the scaled-pool plugin
/// sizes a worker Deployment in the Kubernetes API simulator, whose replica
/// controller runs one real `trellis-agent` process per replica (named after
/// its pod through the downward API, as deploy/ does). A burst of 200 tasks
/// scales the workers out to the maximum and, once the queue has drained and
/// the cooldown passed, back to the minimum — and no task is killed on the
/// way (every one succeeds on its first try, with no retries allowed).
@Suite struct ScaledPoolEndToEndTests {
    @Test func aBurstScalesWorkersOutToTheMaximumAndBackWithNoTaskKilled() async throws {
        try await KubeSimulator.with(configuration: .init()) { simulator in
            let port = try #require(simulator.port)
            let kube = try KubeClient(endpoint: KubeEndpoint(server: "http://127.0.0.1:\(port)"))

            try await ServedControlPlane.with { served, store in
                try served.addPlugin("libtrellis-executor-scaled-pool.so")
                let trellisd = try await served.start(name: "scaler", extra: ["--parallelism", "1000"], environment: [
                    "TRELLIS__EXECUTOR__SCALED_POOL__API_SERVER": "http://127.0.0.1:\(port)",
                    "TRELLIS__EXECUTOR__SCALED_POOL__NAMESPACE": "trellis",
                    "TRELLIS__EXECUTOR__SCALED_POOL__POLLING_INTERVAL_SECONDS": "1",
                    "TRELLIS__EXECUTOR__SCALED_POOL__COOLDOWN_SECONDS": "5",
                    "TRELLIS__EXECUTOR__SCALED_POOL__MAX_REPLICAS": "10",
                ])
                try await store.setPool("default_pool", slots: 1000)
                let rpc = try ServedControlPlane.ports(of: trellisd).rpc

                // The worker Deployment, as deploy/base has it: pool `scaled`, the
                // agent named after its pod, 0 replicas until the executor says.
                let work = served.scratch.appendingPathComponent("workers").path
                let deployment: [String: Any] = [
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": ["name": "trellis-worker", "namespace": "trellis"],
                    "spec": [
                        "replicas": 0,
                        "selector": ["matchLabels": ["app": "trellis-worker"]],
                        "template": [
                            "metadata": ["labels": ["app": "trellis-worker"]],
                            "spec": [
                                // 1 s from SIGTERM to SIGKILL: were a busy worker ever
                                // removed, its task would die and fail the run.
                                "terminationGracePeriodSeconds": 1,
                                "containers": [[
                                    "name": "agent", "image": "trellis:test",
                                    "command": [try ChildProcess.builtProduct("trellis-agent")],
                                    "args": ["--control-plane", "127.0.0.1:\(rpc)", "--token-file", served.joinTokenFile, "--pool", "scaled",
                                             "--slots", "4", "--work-dir", "\(work)/$(TRELLIS_AGENT_NAME)", "--log-level", "info"],
                                    "env": [["name": "TRELLIS_AGENT_NAME", "valueFrom": ["fieldRef": ["fieldPath": "metadata.name"]]]],
                                ] as [String: Any]],
                            ] as [String: Any],
                        ] as [String: Any],
                    ] as [String: Any],
                ]
                var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/apis/apps/v1/namespaces/trellis/deployments")!)
                request.httpMethod = "POST"
                request.setValue("application/json", forHTTPHeaderField: "Content-Type")
                request.httpBody = try JSONSerialization.data(withJSONObject: deployment)
                let (_, created) = try await URLSession.shared.data(for: request)
                #expect((created as? HTTPURLResponse)?.statusCode == 201)

                let api = try await served.api(trellisd)
                // 196 short tasks and 4 long ones: the long ones still run on a few
                // workers when the cooldown has passed and the idle rest go.
                let tasks = (1...200).map { "  - {task_id: t\($0), command: [sh, -c, \"sleep \($0 > 196 ? 15 : 2)\"]}" }.joined(separator: "\n")
                _ = try await api.submit("""
                    dag_id: burst
                    max_active_tasks: 200
                    default_args: {executor: scaled-pool, retries: 0}
                    tasks:
                    \(tasks)
                    """, file: "burst.yaml")

                // The replicas, sampled while the burst runs.
                let highest = Mutex(0)
                let sizes = Mutex<[Int]>([])
                let sampling = Task {
                    while !Task.isCancelled {
                        if let replicas = try? await kube.getScale(deployment: "trellis-worker", namespace: "trellis").spec.replicas {
                            highest.withLock { $0 = max($0, replicas) }
                            sizes.withLock { if $0.last != replicas { $0.append(replicas) } }
                        }
                        try? await Task.sleep(for: .milliseconds(200))
                    }
                }
                let run = try await api.trigger("burst")
                let end = try await api.waitForEnd("burst", run, within: .seconds(300), explaining: [trellisd])
                sampling.cancel()
                #expect(end.run.state == .success, "\(end.tasks.filter { $0.state != .success }.map { "\($0.taskID)=\($0.state) \($0.failureReason)" }.prefix(10))")
                #expect(end.tasks.count == 200)
                #expect(end.tasks.allSatisfy { $0.state == .success && $0.tryNumber == 1 })
                #expect(highest.withLock { $0 } == 10, "the workers never reached the maximum")
                // Scaled in while the long tasks still ran, by idle workers only.
                #expect(sizes.withLock { $0 }.contains { $0 > 0 && $0 < 10 }, "\(sizes.withLock { $0 })")
                // Spread over the workers, which were named after their pods.
                let agents = Set(end.tasks.map(\.agentName))
                #expect(agents.count >= 5, "\(agents)")
                #expect(agents.allSatisfy { $0.hasPrefix("trellis-worker-") }, "\(agents)")

                // The queue drained: after the cooldown, back to the minimum (0),
                // every worker pod gone.
                do {
                    try await eventually("scaled back to 0", timeout: .seconds(120)) {
                        try await kube.getScale(deployment: "trellis-worker", namespace: "trellis").spec.replicas ?? 0 == 0
                    }
                } catch {
                    let lines = trellisd.stderr.split(separator: "\n").filter { $0.contains("scaled-pool") && !$0.contains("cannot start attempt") }.suffix(40)
                    throw BackgroundProcess.Failure("\(error)\n\(lines.joined(separator: "\n"))")
                }
                try await eventually("no worker pod left", timeout: .seconds(120)) {
                    try await kube.listPods(namespace: "trellis", labelSelector: "app=trellis-worker").items.isEmpty
                }
                await api.close()
            }
        }
    }
}
