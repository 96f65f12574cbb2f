public import Foundation
public import TrellisCore

extension TaskState: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { rawValue }
    public init(postgresText text: String) throws(PostgresError) {
        guard let state = TaskState(rawValue: text) else { throw .decodingFailed(text, as: "TaskState") }
        self = state
    }
}

/// One task of one run as stored: a row of the run's task grid.
public struct TaskInstanceRecord: Sendable, Hashable, RowDecodable {
    public var id: Int64
    public var dagRunID: Int64
    public var dagID: String
    public var taskID: String
    public var state: TaskState
    /// Tries started (Airflow's `try_number`).
    public var tryNumber: Int
    /// Airflow's `max_tries`.
    public var maxTries: Int
    public var retries: Int
    public var priorityWeight: Int
    public var pool: String
    public var poolSlots: Int
    public var queue: String
    public var executor: String
    /// The fencing token of the attempt in flight, if any.
    public var fencingToken: Int64?
    public var startDate: Date?
    public var endDate: Date?
    public var updatedAt: Date
    /// When an `up_for_retry` instance may run again.
    public var nextRetryAt: Date?

    static let columns = "id, dag_run_id, dag_id, task_id, state, try_number, max_tries, retries, priority_weight, pool, pool_slots, queue, executor, fencing_token, start_date, end_date, updated_at, next_retry_at"
    init(row: PostgresRow) throws(PostgresError) {
        id = try row.decode(0)
        dagRunID = try row.decode(1)
        dagID = try row.decode(2)
        taskID = try row.decode(3)
        state = try row.decode(4)
        tryNumber = try row.decode(5)
        maxTries = try row.decode(6)
        retries = try row.decode(7)
        priorityWeight = try row.decode(8)
        pool = try row.decode(9)
        poolSlots = try row.decode(10)
        queue = try row.decode(11)
        executor = try row.decode(12)
        fencingToken = try row.decodeIfPresent(13)
        startDate = try row.decodeIfPresent(14)
        endDate = try row.decodeIfPresent(15)
        updatedAt = try row.decode(16)
        nextRetryAt = try row.decodeIfPresent(17)
    }
}

/// A request to move one task instance with `event`, applied only if the
/// instance is still in `expected` (and, for an attempt's reports, still
/// carries `fencingToken`).
public struct TransitionRequest: Sendable, Hashable {
    public var taskInstanceID: Int64
    public var event: TaskInstanceEvent
    public var expected: TaskState
    /// The token of the attempt the request is about. An attempt's own
    /// reports (`start`, `succeed`, `fail`, `time_out`, `skip`, `lose`)
    /// apply only if it equals the instance's current token (nil matches
    /// only an instance with no attempt in flight); for other events it is
    /// checked when given.
    public var fencingToken: Int64?
    /// Recorded on the attempt when it starts.
    public var agentName: String?
    public var podName: String?
    /// Recorded on the attempt when it ends.
    public var exitCode: Int?
    public var failureReason: String?
    /// Free text for the event log.
    public var detail: String?
    /// The task's JSON result, kept when the transition succeeds it.
    public var xcom: String?
    /// When it happened, as the executor saw it (a process's spawn or exit);
    /// recorded as the attempt's start or end instead of the time the
    /// report arrived.
    public var at: Date?
    /// When the instance may run again if this transition leaves it
    /// `up_for_retry` (the caller's `RetryPolicy` decides); ignored otherwise.
    public var retryAt: Date?

    public init(
        taskInstanceID: Int64, event: TaskInstanceEvent, expected: TaskState, fencingToken: Int64? = nil,
        agentName: String? = nil, podName: String? = nil, exitCode: Int? = nil, failureReason: String? = nil, detail: String? = nil,
        retryAt: Date? = nil, xcom: String? = nil, at: Date? = nil
    ) {
        self.taskInstanceID = taskInstanceID
        self.event = event
        self.expected = expected
        self.fencingToken = fencingToken
        self.agentName = agentName
        self.podName = podName
        self.exitCode = exitCode
        self.failureReason = failureReason
        self.detail = detail
        self.retryAt = retryAt
        self.xcom = xcom
        self.at = at
    }
}

/// A transition that applied: where the instance went.
public struct AppliedTransition: Sendable, Hashable {
    public var taskInstanceID: Int64
    /// The run the instance belongs to (the run to evaluate next).
    public var dagRunID: Int64
    public var event: TaskInstanceEvent
    public var from: TaskState
    public var to: TaskState
    public var tryNumber: Int
}

extension StateStore {
    /// Applies `event` to the task instance if it is in `expected`; returns
    /// what happened, or nil when the guard did not hold (someone else moved
    /// it first). An event the state machine forbids in `expected` throws
    /// `illegalTransition` before the database is touched.
    public func transition(_ request: TransitionRequest) async throws(PostgresError) -> AppliedTransition? {
        try await transition([request]).first
    }

    /// Applies many guarded transitions in one statement (one round trip, one
    /// transaction); returns those that applied. Each instance may appear
    /// once per batch.
    public func transition(_ requests: [TransitionRequest]) async throws(PostgresError) -> [AppliedTransition] {
        let parameters = try Self.transitionParameters(requests)
        return try await pool.withSession { session in
            try Self.applyTransitions(session, parameters)
        }
    }

    /// The task grid of a run: every task instance, by task id.
    public func taskInstances(runID: Int64) async throws(PostgresError) -> [TaskInstanceRecord] {
        try await pool.withSession { session in
            try session.all(
                TaskInstanceRecord.self,
                "SELECT \(TaskInstanceRecord.columns) FROM task_instance WHERE dag_run_id = $1 ORDER BY task_id", [runID])
        }
    }

    /// Every task instance in one of `states`, across running runs (the
    /// scheduler's timeout sweep reads queued and running ones).
    public func taskInstances(inStates states: [TaskState], limit: Int = 10_000) async throws(PostgresError) -> [TaskInstanceRecord] {
        try await pool.withSession { session in
            try session.all(
                TaskInstanceRecord.self,
                """
                SELECT \(TaskInstanceRecord.columns) FROM task_instance
                WHERE state = ANY($1::text[]) AND dag_run_id IN (SELECT id FROM dag_run WHERE state = 'running')
                ORDER BY id LIMIT $2
                """, [PostgresArray(states.map(\.rawValue)), limit])
        }
    }

    /// The task instances with these ids (in id order; unknown ids are left out).
    public func taskInstances(ids: [Int64]) async throws(PostgresError) -> [TaskInstanceRecord] {
        guard !ids.isEmpty else { return [] }
        return try await pool.withSession { session in
            try session.all(
                TaskInstanceRecord.self,
                "SELECT \(TaskInstanceRecord.columns) FROM task_instance WHERE id = ANY($1::bigint[]) ORDER BY id", [PostgresArray(ids)])
        }
    }

    /// One task instance by its id.
    public func taskInstance(_ id: Int64) async throws(PostgresError) -> TaskInstanceRecord {
        let rows = try await pool.withSession { session in
            try session.all(TaskInstanceRecord.self, "SELECT \(TaskInstanceRecord.columns) FROM task_instance WHERE id = $1", [id])
        }
        guard let record = rows.first else { throw PostgresError(.notFound, "no task instance \(id)") }
        return record
    }

    // MARK: The one guarded-transition statement

    /// Events an attempt's executor reports: fenced by the attempt's token.
    static let attemptReports: Set<TaskInstanceEvent> = [.start, .succeed, .fail, .timeOut, .skip, .lose]

    static func transitionParameters(_ requests: [TransitionRequest]) throws(PostgresError) -> [any PostgresEncodable] {
        var seen = Set<Int64>()
        var targets: [String] = []
        var retryOrFail: [Bool] = []
        var startsTry: [Bool] = []
        var renews: [Bool] = []
        for request in requests {
            guard seen.insert(request.taskInstanceID).inserted else {
                throw PostgresError(.invalidArgument, "task instance \(request.taskInstanceID) appears twice in one batch of transitions")
            }
            guard let rule = TaskInstanceTransitionRule.rule(from: request.expected, on: request.event) else {
                throw PostgresError(
                    .illegalTransition,
                    "event '\(request.event.rawValue)' is not allowed in state '\(request.expected.rawValue)' (task instance \(request.taskInstanceID))")
            }
            switch rule.target {
            case .state(let state):
                targets.append(state.rawValue)
                retryOrFail.append(false)
            case .retryOrFail:
                targets.append("")
                retryOrFail.append(true)
            }
            startsTry.append(rule.startsTry)
            renews.append(rule.renewsTries)
        }
        return [
            PostgresArray(requests.map(\.taskInstanceID)),
            PostgresArray(requests.map(\.expected.rawValue)),
            PostgresArray(requests.map(\.event.rawValue)),
            PostgresArray(targets),
            PostgresArray(retryOrFail),
            PostgresArray(startsTry),
            PostgresArray(renews),
            PostgresArray(requests.map(\.fencingToken)),
            PostgresArray(requests.map(\.agentName)),
            PostgresArray(requests.map(\.podName)),
            PostgresArray(requests.map(\.exitCode)),
            PostgresArray(requests.map(\.failureReason)),
            PostgresArray(requests.map(\.detail)),
            PostgresArray(requests.map { attemptReports.contains($0.event) }),
            PostgresArray(requests.map(\.retryAt)),
            PostgresArray(requests.map(\.xcom)),
            PostgresArray(requests.map(\.at)),
        ]
    }

    /// The new state, computed from the rule and the row: `retry_or_fail`
    /// becomes up_for_retry while tries remain (Airflow's
    /// `is_eligible_to_retry`), failed otherwise.
    private static let newState = """
        CASE WHEN r.retry_or_fail
             THEN CASE WHEN ti.try_number + r.starts_try::int <= ti.max_tries THEN 'up_for_retry' ELSE 'failed' END
             ELSE r.target END
        """

    /// Guarded update of the instances, the attempt in flight (started,
    /// ended, or cancelled when the instance leaves queued/running) and the
    /// event log, as one statement.
    static let transitionSQL = """
        WITH r AS (
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bool[], $7::bool[],
                                 $8::bigint[], $9::text[], $10::text[], $11::integer[], $12::text[], $13::text[], $14::bool[],
                                 $15::timestamptz[], $16::text[], $17::timestamptz[])
                AS r(id, expected, event, target, retry_or_fail, starts_try, renews, token, agent, pod, exit_code, reason, detail, fenced, retry_at, xcom, at)
        ), u AS (
            UPDATE task_instance ti SET
                state = \(newState),
                try_number = ti.try_number + r.starts_try::int,
                max_tries = CASE WHEN r.renews THEN ti.try_number + r.starts_try::int + ti.retries ELSE ti.max_tries END,
                fencing_token = CASE WHEN (\(newState)) IN ('queued', 'running') THEN ti.fencing_token END,
                start_date = CASE WHEN (\(newState)) = 'running' THEN now()
                                  WHEN (\(newState)) IN ('none', 'scheduled') THEN NULL ELSE ti.start_date END,
                end_date = CASE WHEN (\(newState)) IN ('success', 'failed', 'skipped', 'upstream_failed', 'removed', 'up_for_retry') THEN now() END,
                next_retry_at = CASE WHEN (\(newState)) = 'up_for_retry' THEN r.retry_at END,
                xcom = CASE WHEN (\(newState)) = 'success' THEN r.xcom
                            WHEN (\(newState)) IN ('none', 'scheduled', 'queued', 'running') THEN NULL ELSE ti.xcom END,
                updated_at = now()
            FROM r
            WHERE ti.id = r.id AND ti.state = r.expected
              AND CASE WHEN r.fenced THEN ti.fencing_token IS NOT DISTINCT FROM r.token
                       ELSE r.token IS NULL OR ti.fencing_token = r.token END
            RETURNING ti.id, ti.dag_run_id, r.event, r.expected, ti.state, ti.try_number, r.token, r.agent, r.pod, r.exit_code, r.reason, r.detail, r.at
        ), a AS (
            UPDATE attempt a SET
                state = CASE WHEN u.state = 'running' THEN 'running' WHEN u.state = 'queued' THEN a.state ELSE 'ended' END,
                try_number = CASE WHEN u.state = 'running' THEN u.try_number ELSE a.try_number END,
                started_at = CASE WHEN u.state = 'running' AND a.started_at IS NULL THEN coalesce(u.at, now()) ELSE a.started_at END,
                ended_at = CASE WHEN u.state NOT IN ('queued', 'running') THEN coalesce(u.at, now()) ELSE a.ended_at END,
                outcome = CASE WHEN u.state NOT IN ('queued', 'running') THEN u.state || ' (' || u.event || ')' ELSE a.outcome END,
                agent_name = coalesce(u.agent, a.agent_name),
                pod_name = coalesce(u.pod, a.pod_name),
                exit_code = coalesce(u.exit_code, a.exit_code),
                failure_reason = coalesce(u.reason, a.failure_reason)
            FROM u WHERE a.task_instance_id = u.id AND a.state <> 'ended'
        ), e AS (
            INSERT INTO event_log (task_instance_id, dag_run_id, event, from_state, to_state, try_number, fencing_token, detail)
            SELECT id, dag_run_id, event, expected, state, try_number, token, detail FROM u
        )
        SELECT id, event, expected, state, try_number, dag_run_id FROM u
        """

    static func applyTransitions(_ session: PostgresSession, _ parameters: [any PostgresEncodable]) throws(PostgresError) -> [AppliedTransition] {
        try session.query(transitionSQL, parameters).map { row throws(PostgresError) in
            let eventText = try row.decode(1, as: String.self)
            guard let event = TaskInstanceEvent(rawValue: eventText) else { throw .decodingFailed(eventText, as: "TaskInstanceEvent") }
            return AppliedTransition(
                taskInstanceID: try row.decode(0), dagRunID: try row.decode(5), event: event,
                from: try row.decode(2), to: try row.decode(3), tryNumber: try row.decode(4))
        }
    }
}

extension StateStore {
    /// The JSON results (XCom) the run's tasks wrote, by task id: what
    /// `{{ xcom.TASK_ID }}` renders to in downstream templates.
    public func xcoms(runID: Int64) async throws(PostgresError) -> [String: String] {
        try await pool.withSession { session in
            var results: [String: String] = [:]
            for row in try session.query("SELECT task_id, xcom FROM task_instance WHERE dag_run_id = $1 AND xcom IS NOT NULL", [runID]) {
                results[try row.decode(0, as: String.self)] = try row.decode(1, as: String.self)
            }
            return results
        }
    }
}
