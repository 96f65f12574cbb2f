import Foundation

/// One row of a run's task grid as the client shows it: the task instance
/// and what its latest attempt left behind (where it ran, how it failed).
public struct TaskGridRow: Sendable, Hashable {
    public var instance: TaskInstanceRecord
    /// The latest attempt's agent node and pod, if it has run anywhere yet.
    public var agentName: String?
    public var podName: String?
    /// The latest attempt's failure reason and exit code, when it has them.
    public var failureReason: String?
    public var exitCode: Int?
    /// The slots of the instance's pool; nil when no such pool exists.
    public var poolSize: Int?
}

extension StateStore {
    /// The task grid of a run with each instance's latest attempt, in one
    /// query, by task id; only the instances in `taskInstanceIDs` when given.
    public func taskGrid(runID: Int64, taskInstanceIDs: [Int64]? = nil) async throws(PostgresError) -> [TaskGridRow] {
        let columns = TaskInstanceRecord.columns.split(separator: ",").map { "ti." + $0.trimmingCharacters(in: .whitespaces) }
        let filter: PostgresArray<Int64>? = taskInstanceIDs.map { PostgresArray($0) }
        let rows = try await pool.withSession { session in
            try session.query(
                """
                SELECT \(columns.joined(separator: ", ")), a.agent_name, a.pod_name, a.failure_reason, a.exit_code, p.slots
                FROM task_instance ti
                LEFT JOIN pool p ON p.name = ti.pool
                LEFT JOIN LATERAL (
                    SELECT agent_name, pod_name, failure_reason, exit_code FROM attempt
                    WHERE task_instance_id = ti.id ORDER BY id DESC LIMIT 1
                ) a ON true
                WHERE ti.dag_run_id = $1 AND ($2::bigint[] IS NULL OR ti.id = ANY($2::bigint[]))
                ORDER BY ti.task_id
                """, [runID, filter])
        }
        let base = columns.count
        return try rows.map { row throws(PostgresError) in
            TaskGridRow(
                instance: try TaskInstanceRecord(row: row),
                agentName: try row.decodeIfPresent(base),
                podName: try row.decodeIfPresent(base + 1),
                failureReason: try row.decodeIfPresent(base + 2),
                exitCode: try row.decodeIfPresent(base + 3),
                poolSize: try row.decodeIfPresent(base + 4))
        }
    }

    /// The run's state changes with an event-log id above `afterID`, oldest
    /// first (what `WatchRun` polls for).
    public func events(runID: Int64, afterID: Int64, limit: Int = 10_000) async throws(PostgresError) -> [EventRecord] {
        try await pool.withSession { session in
            try session.all(
                EventRecord.self,
                "SELECT \(EventRecord.columns) FROM event_log WHERE dag_run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                [runID, afterID, limit])
        }
    }

    /// The newest event-log id of a run (0 with none yet).
    public func lastEventID(runID: Int64) async throws(PostgresError) -> Int64 {
        try await pool.withSession { session in
            try session.query("SELECT coalesce(max(id), 0) FROM event_log WHERE dag_run_id = $1", [runID])[0].decode(0, as: Int64.self)
        }
    }
}
