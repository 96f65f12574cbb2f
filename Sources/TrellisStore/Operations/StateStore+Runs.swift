public import Foundation
import TrellisProto
public import TrellisCore

/// A DAG run's state (Airflow's `DagRunState`).
public enum DagRunState: String, Sendable, Hashable, CaseIterable, PostgresEncodable, PostgresDecodable {
    case queued, running, success, failed

    public var postgresText: String? { rawValue }
    public init(postgresText text: String) throws(PostgresError) {
        guard let state = Self(rawValue: text) else { throw .decodingFailed(text, as: "DagRunState") }
        self = state
    }
}

/// Why a run exists (Airflow's `DagRunType`).
public enum DagRunType: String, Sendable, Hashable, CaseIterable, PostgresEncodable, PostgresDecodable {
    case scheduled, manual, backfill

    public var postgresText: String? { rawValue }
    public init(postgresText text: String) throws(PostgresError) {
        guard let type = Self(rawValue: text) else { throw .decodingFailed(text, as: "DagRunType") }
        self = type
    }
}

/// One run of a DAG, pinned to the DAG version it was created with.
public struct DagRunRecord: Sendable, Hashable, RowDecodable {
    public var id: Int64
    public var dagID: String
    public var dagVersion: Int
    public var runID: String
    public var logicalDate: Date
    public var runType: DagRunType
    public var state: DagRunState
    /// The run's `conf`, a JSON object.
    public var conf: String
    public var createdAt: Date
    public var startDate: Date?
    public var endDate: Date?
    /// The data interval of a scheduled run; nil for manual runs without one.
    public var dataIntervalStart: Date?
    public var dataIntervalEnd: Date?

    static let columns = "id, dag_id, dag_version, run_id, logical_date, run_type, state, conf, created_at, start_date, end_date, data_interval_start, data_interval_end"
    init(row: PostgresRow) throws(PostgresError) {
        id = try row.decode(0)
        dagID = try row.decode(1)
        dagVersion = try row.decode(2)
        runID = try row.decode(3)
        logicalDate = try row.decode(4)
        runType = try row.decode(5)
        state = try row.decode(6)
        conf = try row.decode(7)
        createdAt = try row.decode(8)
        startDate = try row.decodeIfPresent(9)
        endDate = try row.decodeIfPresent(10)
        dataIntervalStart = try row.decodeIfPresent(11)
        dataIntervalEnd = try row.decodeIfPresent(12)
    }
}

extension StateStore {
    /// Creates the run of `dagID` for `logicalDate` on the DAG's latest
    /// version, with one task instance in state `none` per task. Idempotent
    /// per DAG and logical date: a second call returns the existing run with
    /// `created` false.
    public func createRun(
        dagID: String, logicalDate: Date, runType: DagRunType = .scheduled,
        runID: String? = nil, conf: String = "{}", dataInterval: (start: Date, end: Date)? = nil
    ) async throws(PostgresError) -> (run: DagRunRecord, created: Bool) {
        let runID = runID ?? "\(runType.rawValue)__\(logicalDate.postgresText!)"
        let intervalStart = dataInterval?.start
        let intervalEnd = dataInterval?.end
        return try await pool.transaction { session in
            let versions = try session.query("SELECT latest_version FROM dag WHERE dag_id = $1", [dagID])
            guard let versionRow = versions.first else { throw PostgresError(.notFound, "no DAG '\(dagID)'") }
            let version = try versionRow.decode(0, as: Int.self)
            let inserted = try session.all(
                DagRunRecord.self,
                """
                INSERT INTO dag_run (dag_id, dag_version, run_id, logical_date, run_type, conf, data_interval_start, data_interval_end)
                VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
                ON CONFLICT DO NOTHING RETURNING \(DagRunRecord.columns)
                """, [dagID, version, runID, logicalDate, runType, conf, intervalStart, intervalEnd])
            guard let run = inserted.first else {
                let existing = try session.all(
                    DagRunRecord.self,
                    "SELECT \(DagRunRecord.columns) FROM dag_run WHERE dag_id = $1 AND logical_date = $2", [dagID, logicalDate])
                guard let run = existing.first else {
                    throw PostgresError(.invalidArgument, "DAG '\(dagID)' already has a run named '\(runID)' for another logical date")
                }
                return (run, false)
            }
            let specBytes = try session.query("SELECT spec FROM dag_version WHERE dag_id = $1 AND version = $2", [dagID, version])[0]
            let spec = try Self.decodeSpec(try specBytes.decode(0, as: PostgresBytes.self), dagID: dagID)
            let tasks = spec.tasks
            try session.query(
                """
                INSERT INTO task_instance (dag_run_id, dag_id, task_id, retries, max_tries, priority_weight, pool, pool_slots, queue, executor)
                SELECT $1, $2, t.task_id, t.retries, t.retries, t.priority_weight, t.pool, t.pool_slots, t.queue, t.executor
                FROM unnest($3::text[], $4::integer[], $5::integer[], $6::text[], $7::integer[], $8::text[], $9::text[])
                    AS t(task_id, retries, priority_weight, pool, pool_slots, queue, executor)
                """,
                [
                    run.id, dagID,
                    PostgresArray(tasks.map(\.taskID)),
                    PostgresArray(tasks.map { Int(max(0, $0.retries)) }),
                    // The weight claims order by: priority_weight under
                    // the task's weight_rule (Airflow's priority_weight_total).
                    PostgresArray(PriorityWeights.effective(spec)),
                    PostgresArray(tasks.map { $0.pool.isEmpty ? "default_pool" : $0.pool }),
                    PostgresArray(tasks.map { Int(max(0, $0.poolSlots)) }),
                    PostgresArray(tasks.map { $0.process.queue }),
                    PostgresArray(tasks.map(\.executor)),
                ])
            return (run, true)
        }
    }

    /// Starts queued runs, oldest logical date first, while each DAG has
    /// fewer than `max_active_runs` running and is not paused. Returns the
    /// ids of the runs started. Only tasks of running runs are claimed.
    @discardableResult
    public func startQueuedRuns() async throws(PostgresError) -> [Int64] {
        try await pool.transaction { session in
            // Serialise with other starters per DAG, so two cannot both start
            // the last allowed run.
            try session.query(
                "SELECT 1 FROM dag WHERE dag_id IN (SELECT dag_id FROM dag_run WHERE state = 'queued') ORDER BY dag_id FOR UPDATE")
            return try session.query(
                """
                WITH candidate AS (
                    SELECT r.id, r.dag_id, row_number() OVER (PARTITION BY r.dag_id ORDER BY r.logical_date, r.id) AS n
                    FROM dag_run r WHERE r.state = 'queued'
                ), running AS (
                    SELECT dag_id, count(*) AS c FROM dag_run WHERE state = 'running' GROUP BY dag_id
                )
                UPDATE dag_run SET state = 'running', start_date = now()
                FROM candidate c JOIN dag d ON d.dag_id = c.dag_id LEFT JOIN running r ON r.dag_id = c.dag_id
                WHERE dag_run.id = c.id AND NOT d.is_paused AND c.n + coalesce(r.c, 0) <= d.max_active_runs
                RETURNING dag_run.id
                """
            ).map { row throws(PostgresError) in try row.decode(0, as: Int64.self) }
        }
    }

    /// Ends a running run with `state` (success or failed); false if the run
    /// was not running, or (for success) if an instance is unfinished again:
    /// a user may clear tasks between the scheduler's reading of the grid
    /// and this update.
    public func finishRun(_ runID: Int64, state: DagRunState) async throws(PostgresError) -> Bool {
        guard state == .success || state == .failed else {
            throw PostgresError(.invalidArgument, "a run finishes as success or failed, not \(state.rawValue)")
        }
        return try await pool.withSession { session in
            try session.query(
                """
                UPDATE dag_run SET state = $2, end_date = now() WHERE id = $1 AND state = 'running'
                  AND ($2 <> 'success' OR NOT EXISTS (
                      SELECT 1 FROM task_instance WHERE dag_run_id = $1 AND state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry')))
                """, [runID, state]
            ).affectedRows == 1
        }
    }

    /// One run by its id.
    public func run(_ id: Int64) async throws(PostgresError) -> DagRunRecord {
        let runs = try await pool.withSession { session in
            try session.all(DagRunRecord.self, "SELECT \(DagRunRecord.columns) FROM dag_run WHERE id = $1", [id])
        }
        guard let run = runs.first else { throw PostgresError(.notFound, "no run \(id)") }
        return run
    }

    /// Runs in `state`, oldest logical date first.
    public func runs(state: DagRunState, limit: Int = 1_000) async throws(PostgresError) -> [DagRunRecord] {
        try await pool.withSession { session in
            try session.all(
                DagRunRecord.self,
                "SELECT \(DagRunRecord.columns) FROM dag_run WHERE state = $1 ORDER BY logical_date, id LIMIT $2", [state, limit])
        }
    }

    /// The runs of a DAG with a logical date before `date`, newest first
    /// (the previous run, for `depends_on_past`).
    public func runs(dagID: String, before date: Date, limit: Int = 1) async throws(PostgresError) -> [DagRunRecord] {
        try await pool.withSession { session in
            try session.all(
                DagRunRecord.self,
                "SELECT \(DagRunRecord.columns) FROM dag_run WHERE dag_id = $1 AND logical_date < $2 ORDER BY logical_date DESC LIMIT $3",
                [dagID, date, limit])
        }
    }

    /// The DAG's scheduled run with the latest data interval: where its
    /// timetable continues from. Manual runs do not count.
    public func latestScheduledRun(dagID: String) async throws(PostgresError) -> DagRunRecord? {
        try await pool.withSession { session in
            try session.all(
                DagRunRecord.self,
                """
                SELECT \(DagRunRecord.columns) FROM dag_run WHERE dag_id = $1 AND run_type = 'scheduled'
                ORDER BY coalesce(data_interval_end, logical_date) DESC LIMIT 1
                """, [dagID])
        }.first
    }

    /// The runs of a DAG, newest logical date first.
    public func runs(dagID: String, limit: Int = 100) async throws(PostgresError) -> [DagRunRecord] {
        try await pool.withSession { session in
            try session.all(
                DagRunRecord.self,
                "SELECT \(DagRunRecord.columns) FROM dag_run WHERE dag_id = $1 ORDER BY logical_date DESC LIMIT $2", [dagID, limit])
        }
    }

    /// Runs newest first (by logical date), of one DAG or every DAG (`dagID`
    /// nil), in one state or any (`state` nil), at most `limit`.
    public func listRuns(dagID: String? = nil, state: DagRunState? = nil, limit: Int = 100) async throws(PostgresError) -> [DagRunRecord] {
        try await pool.withSession { session in
            try session.all(
                DagRunRecord.self,
                """
                SELECT \(DagRunRecord.columns) FROM dag_run
                WHERE ($1::text IS NULL OR dag_id = $1) AND ($2::text IS NULL OR state = $2)
                ORDER BY logical_date DESC, id DESC LIMIT $3
                """, [dagID, state, limit])
        }
    }

    /// One run by its DAG and run id, or nil.
    public func run(dagID: String, runID: String) async throws(PostgresError) -> DagRunRecord? {
        try await pool.withSession { session in
            try session.all(
                DagRunRecord.self, "SELECT \(DagRunRecord.columns) FROM dag_run WHERE dag_id = $1 AND run_id = $2", [dagID, runID])
        }.first
    }

    /// How many task instances of each run are in each state, for many runs
    /// in one query. Runs without instances are absent.
    public func taskCounts(runIDs: [Int64]) async throws(PostgresError) -> [Int64: [TaskState: Int]] {
        if runIDs.isEmpty { return [:] }
        let rows = try await pool.withSession { session in
            try session.query(
                "SELECT dag_run_id, state, count(*) FROM task_instance WHERE dag_run_id = ANY($1::bigint[]) GROUP BY 1, 2",
                [PostgresArray(runIDs)])
        }
        var counts: [Int64: [TaskState: Int]] = [:]
        for row in rows {
            counts[try row.decode(0, as: Int64.self), default: [:]][try row.decode(1, as: TaskState.self)] = try row.decode(2, as: Int.self)
        }
        return counts
    }
}

extension StateStore {
    /// The NOTIFY channel on which replicas announce that a run changed
    /// outside the scheduler (payload: the run's id, or `*` for "look at
    /// everything", as after a DAG is unpaused). The leader evaluates it at
    /// once instead of at its next sweep.
    public static let runChangedChannel = "trellis_run_changed"

    /// Tells the leader (whichever replica it is) that `runID` changed; nil
    /// asks it to look at every DAG and run.
    public func notifyRunChanged(_ runID: Int64?) async throws(PostgresError) {
        try await pool.withSession { session in
            _ = try session.query("SELECT pg_notify($1, $2)", [Self.runChangedChannel, runID.map(String.init) ?? "*"])
        }
    }
}
