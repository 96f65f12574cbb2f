import Foundation
import TrellisCore
import TrellisStore
import TrellisTestSupport

/// A migrated database of its own with a `StateStore` over it, plus DAG
/// builders for the tests.
enum StoreFixture {
    static func with<T>(connections: Int = 4, _ body: (StateStore) async throws -> T) async throws -> T {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: connections)
            do {
                let value = try await body(StateStore(pool: pool))
                await pool.close()
                return value
            } catch {
                await pool.close()
                throw error
            }
        }
    }

    /// A DAG of independent tasks (`name:priority:pool:slots:retries` fields
    /// default to 1, default_pool, 1, 0).
    static func dag(
        _ id: String, tasks: [(id: String, priority: Int, pool: String?, retries: Int)],
        maxActiveRuns: Int = 16, maxActiveTasks: Int = 16, description: String = ""
    ) throws -> DagDefinition {
        var yaml = """
            dag_id: \(id)
            description: "\(description)"
            schedule: null
            max_active_runs: \(maxActiveRuns)
            max_active_tasks: \(maxActiveTasks)
            tasks:

            """
        for task in tasks {
            yaml += """
                  - task_id: \(task.id)
                    executor: persistent-pool
                    command: [echo, hi]
                    priority_weight: \(task.priority)
                    retries: \(task.retries)

                """
            if let pool = task.pool { yaml += "    pool: \(pool)\n" }
        }
        return try DagFile.parse(yaml, file: "\(id).yaml")
    }

    static func simpleDag(_ id: String, taskCount: Int, retries: Int = 0, maxActiveRuns: Int = 16, maxActiveTasks: Int = 16) throws -> DagDefinition {
        try dag(id, tasks: (0..<taskCount).map { (id: "t\($0)", priority: 1, pool: nil, retries: retries) },
                maxActiveRuns: maxActiveRuns, maxActiveTasks: maxActiveTasks)
    }

    /// Submits `dag`, creates a run and starts it, and schedules every task
    /// instance; returns the run and its instances.
    static func scheduledRun(_ store: StateStore, _ dag: DagDefinition, date: Date = Date(timeIntervalSince1970: 1_767_225_600)) async throws -> (DagRunRecord, [TaskInstanceRecord]) {
        try await store.submitDag(dag)
        let (run, _) = try await store.createRun(dagID: dag.spec.dagID, logicalDate: date)
        try await store.startQueuedRuns()
        let instances = try await store.taskInstances(runID: run.id)
        let applied = try await store.transition(instances.map {
            TransitionRequest(taskInstanceID: $0.id, event: .schedule, expected: .none)
        })
        precondition(applied.count == instances.count)
        return (try await store.run(run.id), try await store.taskInstances(runID: run.id))
    }
}
