import Foundation
import TrellisCore
import TrellisStore

/// `store`: guarded task-instance transitions per second against the
/// PostgreSQL that scripts/bench starts, next to that server's pgbench TPS
/// measured in the same run (scripts/bench passes it in).
///
/// Each transition is a real guarded one (`UPDATE … WHERE state = $expected`
/// plus its event-log row, checked against the state machine first), sent in
/// batches of `batchSize` per statement from `workers` connections; every
/// instance goes none → scheduled → queued → running → success.
enum StoreBenchmark {
    static let workers = 4
    static let batchSize = 200
    static let instances = 40_000

    static func run() async throws -> [Measurement] {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["TRELLIS_BENCH_DATABASE_URL"], let pgbenchText = environment["TRELLIS_BENCH_PGBENCH_TPS"],
              let pgbenchTPS = Double(pgbenchText) else {
            throw BenchError(description: "store: run it through ./scripts/bench store, which starts PostgreSQL and pgbench")
        }
        let migrator = try await PostgresConnection.connect(url)
        try await Migrator.migrate(migrator)
        await migrator.close()
        let pool = PostgresPool(url, maximumConnections: workers)
        let store = StateStore(pool: pool)

        let batched = try await measure(store, pool, instances: instances, batchSize: batchSize, tag: "batched")
        let single = try await measure(store, pool, instances: 2_000, batchSize: 1, tag: "single")
        await pool.close()
        return [
            Measurement(name: "store.transitions_per_s", value: batched, unit: "transitions/s"),
            Measurement(name: "store.pgbench_tps", value: pgbenchTPS, unit: "tps"),
            Measurement(name: "store.ratio", value: batched / pgbenchTPS, unit: "x"),
            Measurement(name: "store.unbatched_transitions_per_s", value: single, unit: "transitions/s"),
        ]
    }

    /// Transitions per second moving `instances` fresh task instances
    /// through four guarded transitions each.
    static func measure(_ store: StateStore, _ pool: PostgresPool, instances: Int, batchSize: Int, tag: String) async throws -> Double {
        let ids = try await seed(store, pool, instances: instances, tag: tag)
        let steps: [(TaskInstanceEvent, TaskState)] = [(.schedule, .none), (.enqueue, .scheduled), (.start, .queued), (.succeed, .running)]
        let slices = stride(from: 0, to: ids.count, by: (ids.count + workers - 1) / workers).map {
            Array(ids[$0..<min($0 + (ids.count + workers - 1) / workers, ids.count)])
        }
        let start = ContinuousClock.now
        let applied = try await withThrowingTaskGroup(of: Int.self) { group in
            for slice in slices {
                group.addTask {
                    var applied = 0
                    for batchStart in stride(from: 0, to: slice.count, by: batchSize) {
                        let batch = slice[batchStart..<min(batchStart + batchSize, slice.count)]
                        for (event, expected) in steps {
                            applied += try await store.transition(batch.map {
                                TransitionRequest(taskInstanceID: $0, event: event, expected: expected)
                            }).count
                        }
                    }
                    return applied
                }
            }
            var total = 0
            for try await count in group { total += count }
            return total
        }
        let seconds = (ContinuousClock.now - start).seconds
        guard applied == ids.count * steps.count else {
            throw BenchError(description: "store: \(applied) of \(ids.count * steps.count) transitions applied")
        }
        return Double(applied) / seconds
    }

    /// A one-task DAG, one run, and `instances` task instances in state none
    /// added to it in bulk.
    static func seed(_ store: StateStore, _ pool: PostgresPool, instances: Int, tag: String) async throws -> [Int64] {
        let dag = try DagFile.parse("""
            dag_id: bench_\(tag)
            schedule: null
            tasks:
              - task_id: t
                executor: persistent-pool
                command: [true]
            """, file: "bench.yaml")
        try await store.submitDag(dag)
        let (run, _) = try await store.createRun(dagID: "bench_\(tag)", logicalDate: Date(timeIntervalSince1970: 0))
        return try await pool.withSession { session in
            try session.query(
                """
                INSERT INTO task_instance (dag_run_id, dag_id, task_id)
                SELECT $1, $2, 'bulk_' || i FROM generate_series(1, $3::integer) AS i RETURNING id
                """, [run.id, "bench_\(tag)", instances]
            ).map { try $0.decode(0, as: Int64.self) }
        }
    }
}
