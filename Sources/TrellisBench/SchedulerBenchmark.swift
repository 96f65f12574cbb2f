import Foundation
import TrellisCore
import TrellisStore
import TrellisProcess

/// `scheduler`: task instances completed per second by the real `trellisd
/// serve` (release build) with the instant C executor, for a 10,000-task
/// fan-out and a 1,000-task chain, against the PostgreSQL scripts/bench
/// starts. The time is the run's own, as the database recorded it (from
/// the run's start to its end), so process start-up is not counted.
///
/// Concurrency limits are opened wide (pool slots, max_active_tasks,
/// parallelism) so the figure is the scheduler's own speed, not a limit's.
enum SchedulerBenchmark {
    static let fanOutTasks = 10_000
    static let chainTasks = 1_000

    static func run() async throws -> [Measurement] {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["TRELLIS_BENCH_DATABASE_URL"], let trellisd = environment["TRELLIS_BENCH_TRELLISD"],
              let plugins = environment["TRELLIS_BENCH_PLUGIN_DIR"] else {
            throw BenchError(description: "scheduler: run it through ./scripts/bench scheduler, which builds trellisd and starts PostgreSQL")
        }
        let (pool, store) = try await SchedulerBenchmark.migratedStore(url)

        try await store.submitDag(try fanOut())
        try await store.submitDag(try chain())

        let server = try Spawned(trellisd, [
            "serve", "--database-url", url, "--rpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
            "--plugin-dirs", plugins, "--default-executor", "c-instant", "--parallelism", "100000", "--log-level", "warning",
        ])
        defer { server.terminate() }
        try await server.waitForOutput("trellisd: serving rpc on ", timeout: .seconds(60))

        let fanOutSeconds = try await runToEnd(store, dagID: "bench_fan_out")
        let chainSeconds = try await runToEnd(store, dagID: "bench_chain")
        await pool.close()
        return [
            Measurement(name: "scheduler.fanout_tasks_per_s", value: Double(fanOutTasks) / fanOutSeconds, unit: "tasks/s"),
            Measurement(name: "scheduler.fanout_seconds", value: fanOutSeconds, unit: "s"),
            Measurement(name: "scheduler.chain_tasks_per_s", value: Double(chainTasks) / chainSeconds, unit: "tasks/s"),
            Measurement(name: "scheduler.chain_seconds", value: chainSeconds, unit: "s"),
        ]
    }

    /// The benchmark database, migrated, with `default_pool` opened wide so
    /// a figure is the system's speed, not a pool's limit.
    static func migratedStore(_ url: String) async throws -> (PostgresPool, StateStore) {
        let migrator = try await PostgresConnection.connect(url)
        try await Migrator.migrate(migrator)
        await migrator.close()
        let pool = PostgresPool(url, maximumConnections: 2)
        let store = StateStore(pool: pool)
        try await store.setPool("default_pool", slots: 100_000)
        return (pool, store)
    }

    /// One root, then every other task downstream of it.
    static func fanOut() throws -> DagDefinition {
        var yaml = """
            dag_id: bench_fan_out
            max_active_tasks: \(fanOutTasks)
            default_args: {executor: c-instant, executor_config: {}}
            tasks:
              - {task_id: root}

            """
        for index in 1..<fanOutTasks { yaml += "  - {task_id: t\(index), upstream: [root]}\n" }
        return try DagFile.parse(yaml, file: "bench_fan_out.yaml")
    }

    /// Each task downstream of the one before.
    static func chain() throws -> DagDefinition {
        var yaml = """
            dag_id: bench_chain
            default_args: {executor: c-instant, executor_config: {}}
            tasks:
              - {task_id: t0}

            """
        for index in 1..<chainTasks { yaml += "  - {task_id: t\(index), upstream: [t\(index - 1)]}\n" }
        return try DagFile.parse(yaml, file: "bench_chain.yaml")
    }

    /// Triggers a run and waits for it; the seconds from its start to its
    /// end as the database recorded them.
    static func runToEnd(_ store: StateStore, dagID: String) async throws -> Double {
        let run = try await store.createRun(dagID: dagID, logicalDate: Date(), runType: .manual).run
        try await store.notifyRunChanged(run.id)
        let deadline = ContinuousClock.now + .seconds(1_800)
        while ContinuousClock.now < deadline {
            let current = try await store.run(run.id)
            if current.state == .failed { throw BenchError(description: "scheduler: run \(run.runID) of \(dagID) failed") }
            if current.state == .success, let start = current.startDate, let end = current.endDate {
                return end.timeIntervalSince(start)
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError(description: "scheduler: \(dagID) did not finish within 30 minutes")
    }
}

/// A child process whose standard output goes to a file.
final class Spawned {
    let pid: pid_t
    let output: String

    init(_ path: String, _ arguments: [String]) throws {
        output = FileManager.default.temporaryDirectory.appendingPathComponent("trellis-bench-\(UUID().uuidString).out").path
        do {
            pid = try Spawn.start(path, arguments, environment: ProcessInfo.processInfo.environment,
                                  standardOutput: .file(output), standardError: .descriptor(2))
        } catch {
            throw BenchError(description: "\(error)")
        }
    }

    func waitForOutput(_ text: String, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let output = try? String(contentsOfFile: output, encoding: .utf8), output.contains(text) { return }
            if Spawn.poll(pid) != nil { throw BenchError(description: "the server exited before it served") }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchError(description: "the server did not start within \(timeout)")
    }

    /// The `host:port` of the rpc address a `trellisd serve` printed.
    func rpcAddress() throws -> String {
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("trellisd: serving rpc on ") }),
              let address = line.dropFirst("trellisd: serving rpc on ".count).split(separator: ",").first else {
            throw BenchError(description: "no rpc address in the server's output: \(text)")
        }
        return String(address)
    }

    /// SIGTERM, then waits for it.
    func terminate() {
        kill(pid, SIGTERM)
        _ = Spawn.wait(pid)
        try? FileManager.default.removeItem(atPath: output)
    }
}
