import Foundation
import Testing
import TrellisTestSupport

extension Deploy {
    /// The base's containers, run as its manifests say (PodEmulator: their
    /// commands, arguments, environment, Secrets from deploy/generate-secrets,
    /// mounted volumes, uid 50000) from the image's staged file tree
    /// (StagedImage), against a fresh database: trellisd's init container
    /// migrates, trellisd registers the admin token and answers its probes, the
    /// node agent and a scaled worker join their pools under the names the
    /// executors expect, the `trellis` client works with the generated admin
    /// token, and a process task runs on the node agent through
    /// persistent-pool. Only the network is not the cluster's: trellisd listens
    /// on ports the kernel picks, and `trellisd:7400` is mapped to them.
    @Suite struct ManifestsRunTests {
        @Test func theBasesContainersFormAWorkingDeployment() async throws {
            let rendering = try await Rendering.render("deploy/base")
            let image = try await StagedImage.shared()
            let scratch = try Repository.temporaryDirectory("trellis-pods")
            var processes: [BackgroundProcess] = []
            defer { try? FileManager.default.removeItem(at: scratch) }
            do {
                try await StoreDatabase.with { url, _ in
                    // The Secrets, as the script makes them, for this database.
                    let generated = try await GeneratedSecrets.generate(["--database-url", url])
                    defer { generated.remove() }
                    var emulator = PodEmulator(rendering: rendering, secrets: generated.secrets, imageRoot: image, scratch: scratch)

                    // trellisd: init containers in order, then the server.
                    let pod = try emulator.pod("Deployment", "trellisd", podName: "trellisd-7f9c6d5b8-q2w4e")
                    let migrate = try rendering.container("Deployment", "trellisd", "migrate")
                    try await emulator.runToCompletion(migrate, in: pod)
                    let trellisdContainer = try rendering.container("Deployment", "trellisd", "trellisd")
                    let trellisd = try emulator.start(trellisdContainer, in: pod, overrides: [
                        "TRELLIS_RPC_ADDRESS": "127.0.0.1:0", "TRELLIS_HTTP_ADDRESS": "127.0.0.1:0",
                    ])
                    processes.append(trellisd)
                    try await trellisd.waitForOutput("trellisd: serving rpc on ")
                    let (rpc, http) = try Self.ports(trellisd.stdout)
                    // Its logs are JSON lines, and it named itself after the Pod.
                    try await eventually("trellisd logs its replica name") { trellisd.stderr.contains("\"replica\":\"trellisd-7f9c6d5b8-q2w4e\"") }
                    #expect(trellisd.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("{") }, "\(trellisd.stderr)")

                    // The probes, as the kubelet makes them.
                    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                        let path = try #require(trellisdContainer.spec[probe]["httpGet"]["path"].string)
                        let last = Shared("")
                        do {
                            try await eventually("\(probe) \(path) answers 200", timeout: .seconds(60)) {
                                let (status, detail) = try await Self.status(port: http, path: path)
                                last.value = detail
                                return status == 200
                            }
                        } catch {
                            throw Repository.Failed(description: "\(error); the last answer: \(last.value)")
                        }
                    }

                    // The node agent (DaemonSet) and a scaled worker.
                    emulator.services = ["trellisd:7400": "127.0.0.1:\(rpc)"]
                    let nodePod = try emulator.pod("DaemonSet", "trellis-agent", podName: "trellis-agent-x8k2p", nodeName: "node-a")
                    let node = try emulator.start(try rendering.container("DaemonSet", "trellis-agent", "trellis-agent"), in: nodePod)
                    processes.append(node)
                    let workerPod = try emulator.pod("Deployment", "trellis-worker", podName: "trellis-worker-6b7c8d9f5-m3n4p", nodeName: "node-b")
                    let worker = try emulator.start(try rendering.container("Deployment", "trellis-worker", "trellis-agent"), in: workerPod)
                    processes.append(worker)
                    try await node.waitForOutput("trellis-agent: node-a (pool persistent, 4 slots) connecting to 127.0.0.1:\(rpc)")
                    try await worker.waitForOutput("trellis-agent: trellis-worker-6b7c8d9f5-m3n4p (pool scaled, 4 slots) connecting to 127.0.0.1:\(rpc)")

                    // The client, with the admin token the operator got from
                    // generate-secrets.
                    let trellis = image.path + "/usr/bin/trellis"
                    var client = ProcessInfo.processInfo.environment
                    client["TRELLIS_ADDRESS"] = "127.0.0.1:\(rpc)"
                    client["TRELLIS_TOKEN"] = try generated.file("admin-token")
                    client["LD_LIBRARY_PATH"] = try StagedImage.libraryPath(image)
                    client["XDG_CONFIG_HOME"] = scratch.path
                    @discardableResult func trellisCommand(_ arguments: [String]) async throws -> String {
                        try await Repository.run(trellis, arguments, environment: client).stdout
                    }
                    try await eventually("both agents registered", timeout: .seconds(60)) {
                        let agents = try Self.json(try await trellisCommand(["agents", "list", "-o", "json"]))["agents"] as? [[String: Any]] ?? []
                        let byName = Dictionary(agents.map { (($0["name"] as? String) ?? "", $0) }) { first, _ in first }
                        return byName["node-a"]?["pool"] as? String == "persistent" && byName["node-a"]?["node"] as? String == "node-a"
                            && byName["trellis-worker-6b7c8d9f5-m3n4p"]?["pool"] as? String == "scaled"
                            && byName["trellis-worker-6b7c8d9f5-m3n4p"]?["node"] as? String == "node-b"
                    }

                    // A process task on the default executor (persistent-pool),
                    // which must find the DaemonSet's agents in their pool.
                    let dag = scratch.appendingPathComponent("deploy_smoke.yaml")
                    try Data("""
                        dag_id: deploy_smoke
                        schedule: null
                        tasks:
                          - task_id: hello
                            command: [sh, -c, "echo hello from $TRELLIS_TASK_ID as $(id -u)"]
                        """.utf8).write(to: dag)
                    try await trellisCommand(["dags", "submit", dag.path])
                    try await trellisCommand(["dags", "trigger", "deploy_smoke", "--wait"])
                    let run = try Self.json(try await trellisCommand(["runs", "show", "deploy_smoke", "latest", "-o", "json"]))
                    let task = try #require((run["tasks"] as? [[String: Any]])?.first)
                    #expect(task["state"] as? String == "success")
                    #expect(task["agent_name"] as? String == "node-a", "\(task)")
                    let log = try await trellisCommand(["tasks", "logs", "deploy_smoke", "latest", "hello"])
                    #expect(log.contains("hello from hello"), "\(log)")
                    if getuid() == 0 { #expect(log.contains("as 50000"), "\(log)") }

                    // Shutdown as Kubernetes does it: SIGTERM, then the grace.
                    for agent in [node, worker] {
                        agent.signal(SIGTERM)
                        #expect(await agent.wait() == 0, "\(agent.stderr)")
                        #expect(agent.stdout.contains("trellis-agent: drained"))
                    }
                    trellisd.signal(SIGTERM)
                    #expect(await trellisd.wait() == 0, "\(trellisd.stderr)")
                }
            } catch {
                for process in processes {
                    Issue.record("\(process.name) stderr:\n\(process.stderr.suffix(4000))")
                }
                for process in processes { await process.stop() }
                throw error
            }
            for process in processes { await process.stop() }
        }

        static func ports(_ stdout: String) throws -> (rpc: Int, http: Int) {
            // "trellisd: serving rpc on 127.0.0.1:PORT, http on 127.0.0.1:PORT"
            let line = stdout.split(separator: "\n").first { $0.hasPrefix("trellisd: serving rpc on ") } ?? ""
            let ports = line.split(separator: ",").compactMap { $0.split(separator: ":").last.flatMap { Int($0) } }
            guard ports.count == 2 else { throw Repository.Failed(description: "no ports in '\(line)'") }
            return (ports[0], ports[1])
        }

        /// An HTTP GET as the kubelet's probe makes it: the status code, and
        /// what curl said.
        static func status(port: Int, path: String) async throws -> (Int, String) {
            let result = try await ChildProcess.run(try Repository.tool("curl"), [
                "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "http://127.0.0.1:\(port)\(path)",
            ])
            return (Int(result.stdout) ?? 0, "status \(result.status): \(result.stdout) \(result.stderr)")
        }

        static func json(_ text: String) throws -> [String: Any] {
            guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
                throw Repository.Failed(description: "not a JSON object: \(text)")
            }
            return object
        }
    }
}
