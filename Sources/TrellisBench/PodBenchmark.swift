import Foundation
import TrellisCore
import TrellisProcess
import TrellisStore

/// `pod`: the pod-per-task executor end to end — the real `trellisd serve`
/// (release build) loading the pod-per-task plugin, which talks HTTP to the
/// Kubernetes API simulator (`trellis-kube-sim`, its own process); each pod
/// runs `true` as a local process, its log is copied and the pod deleted
/// (delete_pod), as on a cluster.
///
/// 1,000 runs of a one-task DAG are created at once:
/// - `pod.creations_per_s`: pods created per second, from the first
///   attempt queued to the last pod the API confirmed created (the plugin
///   reports an attempt started when its create call returned);
/// - `pod.total_s`: the first run's start to the last run's end, as the
///   database recorded them.
enum PodBenchmark {
    static let runs = 1_000

    static func run() async throws -> [Measurement] {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["TRELLIS_BENCH_DATABASE_URL"], let trellisd = environment["TRELLIS_BENCH_TRELLISD"],
              let simulatorBinary = environment["TRELLIS_BENCH_KUBE_SIM"], let plugins = environment["TRELLIS_BENCH_PLUGIN_DIR"] else {
            throw BenchError(description: "pod: run it through ./scripts/bench pod, which builds trellisd, the simulator and the plugin and starts PostgreSQL")
        }
        let (pool, store) = try await SchedulerBenchmark.migratedStore(url)
        try await store.submitDag(try DagFile.parse("""
            dag_id: bench_pod
            max_active_runs: \(runs)
            default_args: {executor: pod-per-task, image: "busybox:1.36", namespace: bench, retries: 0}
            tasks:
              - {task_id: pod, cmds: ["true"]}
            """, file: "bench_pod.yaml"))

        let simulator = try Spawned(simulatorBinary, ["--port", "0", "--history", "100000"])
        defer { simulator.terminate() }
        try await simulator.waitForOutput("trellis-kube-sim: listening on ", timeout: .seconds(30))
        let text = (try? String(contentsOfFile: simulator.output, encoding: .utf8)) ?? ""
        guard let address = text.split(separator: "\n").first(where: { $0.hasPrefix("trellis-kube-sim: listening on ") })?
            .dropFirst("trellis-kube-sim: listening on ".count) else {
            throw BenchError(description: "pod: the simulator printed no address: \(text)")
        }
        setenv("TRELLIS__EXECUTOR__POD_PER_TASK__API_SERVER", "http://\(address)", 1)

        let server = try Spawned(trellisd, [
            "serve", "--database-url", url, "--rpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
            "--plugin-dirs", plugins, "--default-executor", "pod-per-task", "--parallelism", "100000", "--log-level", "warning",
        ])
        defer { server.terminate() }
        try await server.waitForOutput("trellisd: serving rpc on ", timeout: .seconds(60))

        // All runs at once, as a backfill or a burst of triggers would make them.
        let base = Date(timeIntervalSince1970: 1_700_000_000)
        var ids: [Int64] = []
        for index in 0..<runs {
            let run = try await store.createRun(dagID: "bench_pod", logicalDate: base.addingTimeInterval(Double(index) * 60), runType: .manual).run
            ids.append(run.id)
        }
        try await store.notifyRunChanged(ids[0])

        let deadline = ContinuousClock.now + .seconds(1_800)
        while true {
            let (ended, failed) = try await counts(store)
            if failed > 0 { throw BenchError(description: "pod: \(failed) run(s) failed") }
            if ended == runs { break }
            guard ContinuousClock.now < deadline else { throw BenchError(description: "pod: only \(ended) of \(runs) runs ended within 30 minutes") }
            try await Task.sleep(for: .milliseconds(200))
        }
        let window = try await windows(store)
        await pool.close()
        return [
            Measurement(name: "pod.creations_per_s", value: Double(runs) / window.creation, unit: "pods/s (\(runs) pods, max_concurrent_creations 16)"),
            Measurement(name: "pod.total_s", value: window.total, unit: "s (\(runs) single-task runs, first start to last end)"),
        ]
    }

    static func counts(_ store: StateStore) async throws -> (ended: Int, failed: Int) {
        try await store.pool.withSession { session in
            let row = try session.query(
                "SELECT count(*) FILTER (WHERE state = 'success'), count(*) FILTER (WHERE state = 'failed') FROM dag_run WHERE dag_id = 'bench_pod'"
            )[0]
            return (Int(try row.decode(0, as: Int64.self)), Int(try row.decode(1, as: Int64.self)))
        }
    }

    /// Seconds from the first attempt queued to the last started (created),
    /// and from the first run's start to the last run's end.
    static func windows(_ store: StateStore) async throws -> (creation: Double, total: Double) {
        try await store.pool.withSession { session in
            let attempts = try session.query(
                """
                SELECT extract(epoch FROM max(a.started_at) - min(a.queued_at))::float8 FROM attempt a
                JOIN task_instance ti ON ti.id = a.task_instance_id JOIN dag_run r ON r.id = ti.dag_run_id
                WHERE r.dag_id = 'bench_pod'
                """)[0]
            let total = try session.query(
                "SELECT extract(epoch FROM max(end_date) - min(start_date))::float8 FROM dag_run WHERE dag_id = 'bench_pod'")[0]
            return (try attempts.decode(0, as: Double.self), try total.decode(0, as: Double.self))
        }
    }
}
