public import Foundation
public import TrellisCore

/// One recorded state change of a task instance.
public struct EventRecord: Sendable, Hashable, RowDecodable {
    public var id: Int64
    public var at: Date
    public var taskInstanceID: Int64
    public var dagRunID: Int64
    /// The `TaskInstanceEvent` raw value.
    public var event: String
    public var from: TaskState
    public var to: TaskState
    public var tryNumber: Int
    public var fencingToken: Int64?
    public var detail: String?

    static let columns = "id, at, task_instance_id, dag_run_id, event, from_state, to_state, try_number, fencing_token, detail"
    init(row: PostgresRow) throws(PostgresError) {
        id = try row.decode(0)
        at = try row.decode(1)
        taskInstanceID = try row.decode(2)
        dagRunID = try row.decode(3)
        event = try row.decode(4)
        from = try row.decode(5)
        to = try row.decode(6)
        tryNumber = try row.decode(7)
        fencingToken = try row.decodeIfPresent(8)
        detail = try row.decodeIfPresent(9)
    }
}

extension StateStore {
    /// The state changes of one task instance, oldest first.
    public func events(taskInstanceID: Int64) async throws(PostgresError) -> [EventRecord] {
        try await pool.withSession { session in
            try session.all(EventRecord.self, "SELECT \(EventRecord.columns) FROM event_log WHERE task_instance_id = $1 ORDER BY id", [taskInstanceID])
        }
    }

    /// The state changes of every task instance of a run, oldest first.
    public func events(runID: Int64) async throws(PostgresError) -> [EventRecord] {
        try await pool.withSession { session in
            try session.all(EventRecord.self, "SELECT \(EventRecord.columns) FROM event_log WHERE dag_run_id = $1 ORDER BY id", [runID])
        }
    }
}
