import Foundation
import TrellisCore
import TrellisProcess
import TrellisStore

/// `pool`: the persistent-pool executor on warm agents, end to end — the
/// real `trellisd serve` and four real `trellis-agent` processes (release
/// builds) with 8 slots each, tasks that are real processes (`true`).
///
/// - A 200-task chain: each link's latency is the downstream process's
///   spawn minus the upstream process's exit, both as the agent recorded
///   them (the attempt's start and end times); median and p99.
/// - A 2,000-task fan-out: tasks completed per second, from the run's start
///   to its end as the database recorded them.
enum PoolBenchmark {
    static let chainTasks = 200
    static let fanOutTasks = 2_000
    static let agents = 4
    static let slots = 8

    static func run() async throws -> [Measurement] {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["TRELLIS_BENCH_DATABASE_URL"], let trellisd = environment["TRELLIS_BENCH_TRELLISD"],
              let agentBinary = environment["TRELLIS_BENCH_AGENT"], let plugins = environment["TRELLIS_BENCH_PLUGIN_DIR"] else {
            throw BenchError(description: "pool: run it through ./scripts/bench pool, which builds trellisd, trellis-agent and the plugin and starts PostgreSQL")
        }
        let (pool, store) = try await SchedulerBenchmark.migratedStore(url)
        try await store.submitDag(try chain())
        try await store.submitDag(try fanOut())

        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("trellis-bench-pool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let tokenFile = scratch.appendingPathComponent("join-token").path
        try Data("bench-join-\(UUID().uuidString)\n".utf8).write(to: URL(fileURLWithPath: tokenFile))

        let server = try Spawned(trellisd, [
            "serve", "--database-url", url, "--rpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
            "--plugin-dirs", plugins, "--default-executor", "persistent-pool", "--parallelism", "100000",
            "--agent-join-token-file", tokenFile, "--log-level", "warning",
        ])
        defer { server.terminate() }
        try await server.waitForOutput("trellisd: serving rpc on ", timeout: .seconds(60))
        let rpc = try server.rpcAddress()

        var workers: [Spawned] = []
        defer { for worker in workers { worker.terminate() } }
        for index in 1...agents {
            let work = scratch.appendingPathComponent("agent-\(index)").path
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            workers.append(try Spawned(agentBinary, [
                "--control-plane", rpc, "--token-file", tokenFile, "--pool", "default", "--slots", "\(slots)",
                "--node-name", "bench-\(index)", "--work-dir", work, "--log-level", "warning",
            ]))
        }
        try await waitForAgents(store)

        let chainRun = try await SchedulerBenchmark.runToEnd(store, dagID: "bench_pool_chain")
        let links = try await chainLinks(store, dagID: "bench_pool_chain")
        let fanOutSeconds = try await SchedulerBenchmark.runToEnd(store, dagID: "bench_pool_fan_out")
        await pool.close()
        return [
            Measurement(name: "pool.chain_link_median_ms", value: percentile(links, 0.5) * 1_000, unit: "ms"),
            Measurement(name: "pool.chain_link_p99_ms", value: percentile(links, 0.99) * 1_000, unit: "ms"),
            Measurement(name: "pool.chain_seconds", value: chainRun, unit: "s (\(chainTasks) tasks, run start to end)"),
            Measurement(name: "pool.fanout_tasks_per_s", value: Double(fanOutTasks) / fanOutSeconds, unit: "tasks/s (\(agents) agents × \(slots) slots)"),
            Measurement(name: "pool.fanout_seconds", value: fanOutSeconds, unit: "s"),
        ]
    }

    static func chain() throws -> DagDefinition {
        var yaml = """
            dag_id: bench_pool_chain
            default_args: {executor: persistent-pool}
            tasks:
              - {task_id: t0, command: ["true"]}

            """
        for index in 1..<chainTasks { yaml += "  - {task_id: t\(index), command: [\"true\"], upstream: [t\(index - 1)]}\n" }
        return try DagFile.parse(yaml, file: "bench_pool_chain.yaml")
    }

    static func fanOut() throws -> DagDefinition {
        var yaml = """
            dag_id: bench_pool_fan_out
            max_active_tasks: \(fanOutTasks)
            default_args: {executor: persistent-pool}
            tasks:
              - {task_id: root, command: ["true"]}

            """
        for index in 1..<fanOutTasks { yaml += "  - {task_id: t\(index), command: [\"true\"], upstream: [root]}\n" }
        return try DagFile.parse(yaml, file: "bench_pool_fan_out.yaml")
    }

    /// Waits until `count` agents are registered and connected.
    static func waitForAgents(_ store: StateStore, count: Int = agents, within timeout: Duration = .seconds(60), benchmark: String = "pool") async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await store.agents().filter(\.isConnected).count >= count { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        let connected = try await store.agents().filter(\.isConnected).count
        throw BenchError(description: "\(benchmark): \(connected) of \(count) agents registered within \(timeout)")
    }

    /// Each link's latency in seconds: the downstream attempt's start minus
    /// the upstream attempt's end, in chain order.
    static func chainLinks(_ store: StateStore, dagID: String) async throws -> [Double] {
        let rows = try await store.pool.withSession { session in
            try session.query(
                """
                SELECT ti.task_id, a.started_at, a.ended_at FROM attempt a
                JOIN task_instance ti ON ti.id = a.task_instance_id
                JOIN dag_run r ON r.id = ti.dag_run_id
                WHERE r.dag_id = $1 AND a.state = 'ended' AND a.started_at IS NOT NULL
                """, [dagID]
            ).map { row throws(PostgresError) -> (Int, Date, Date) in
                let task = try row.decode(0, as: String.self)
                return (Int(task.dropFirst()) ?? -1, try row.decode(1, as: Date.self), try row.decode(2, as: Date.self))
            }
        }
        let byIndex = Dictionary(rows.map { ($0.0, ($0.1, $0.2)) }, uniquingKeysWith: { first, _ in first })
        guard byIndex.count == chainTasks else {
            throw BenchError(description: "pool: the chain has \(byIndex.count) ended attempts, expected \(chainTasks)")
        }
        return (1..<chainTasks).map { index in byIndex[index]!.0.timeIntervalSince(byIndex[index - 1]!.1) }
    }

    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * fraction).rounded()))]
    }
}
