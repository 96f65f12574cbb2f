public import Foundation
public import TrellisCore

/// A task instance handed to an executor by `claimReady`: now `queued`, with
/// a new attempt whose fencing token every report about it must carry.
public struct ClaimedTask: Sendable, Hashable {
    public var taskInstanceID: Int64
    public var attemptID: Int64
    public var fencingToken: Int64
    public var dagRunID: Int64
    public var dagID: String
    public var taskID: String
    public var priorityWeight: Int
    public var pool: String
    public var queue: String
    public var executor: String
    /// The try the attempt will be once it starts.
    public var tryNumber: Int
    /// When the instance became ready (`scheduled`): the start of its
    /// dispatch latency.
    public var readySince: Date?
}

/// One attempt to run a task instance.
public struct AttemptRecord: Sendable, Hashable, RowDecodable {
    /// Where the attempt is: handed out, its process running, or over.
    public enum State: String, Sendable, Hashable, PostgresDecodable {
        case queued, running, ended
        public init(postgresText text: String) throws(PostgresError) {
            guard let state = Self(rawValue: text) else { throw .decodingFailed(text, as: "attempt state") }
            self = state
        }
    }

    public var id: Int64
    public var taskInstanceID: Int64
    public var fencingToken: Int64
    public var tryNumber: Int
    public var executor: String
    public var agentName: String?
    public var podName: String?
    public var state: State
    /// The instance's state when the attempt ended, and the event that ended it.
    public var outcome: String?
    public var exitCode: Int?
    public var failureReason: String?
    public var queuedAt: Date
    public var startedAt: Date?
    public var endedAt: Date?

    static let columns = "id, task_instance_id, fencing_token, try_number, executor, agent_name, pod_name, state, outcome, exit_code, failure_reason, queued_at, started_at, ended_at"
    init(row: PostgresRow) throws(PostgresError) {
        id = try row.decode(0)
        taskInstanceID = try row.decode(1)
        fencingToken = try row.decode(2)
        tryNumber = try row.decode(3)
        executor = try row.decode(4)
        agentName = try row.decodeIfPresent(5)
        podName = try row.decodeIfPresent(6)
        state = try row.decode(7)
        outcome = try row.decodeIfPresent(8)
        exitCode = try row.decodeIfPresent(9)
        failureReason = try row.decodeIfPresent(10)
        queuedAt = try row.decode(11)
        startedAt = try row.decodeIfPresent(12)
        endedAt = try row.decodeIfPresent(13)
    }
}

/// How an attempt ended, as its executor reports it.
public enum AttemptOutcome: Sendable, Hashable {
    case success
    case failure
    case timedOut
    case skipped
    /// The agent or pod vanished.
    case lost

    /// The task-instance event that ends an attempt this way.
    public var event: TaskInstanceEvent {
        switch self {
        case .success: .succeed
        case .failure: .fail
        case .timedOut: .timeOut
        case .skipped: .skip
        case .lost: .lose
        }
    }
}

extension StateStore {
    /// Moves up to `limit` scheduled task instances of running runs to
    /// `queued`, highest `priority_weight` first, each with a new attempt and
    /// fencing token. Respects pool slots and each DAG's `max_active_tasks`
    /// (counting queued and running instances). Concurrent claimers never
    /// claim the same instance (`FOR UPDATE SKIP LOCKED`) and never overfill
    /// a pool (they serialise on the pool and DAG rows they fill).
    ///
    /// `parallelism` caps the task instances queued or running across the
    /// whole deployment (Airflow's `core.parallelism`); nil is no cap.
    /// Claimers with a cap serialise on one advisory lock to count.
    public func claimReady(limit: Int, executors: [String]? = nil, parallelism: Int? = nil) async throws(PostgresError) -> [ClaimedTask] {
        guard limit > 0 else { return [] }
        guard TaskInstanceTransitionRule.rule(from: .scheduled, on: .enqueue) != nil else {
            throw PostgresError(.illegalTransition, "the state machine no longer allows scheduled → queued")
        }
        let executorFilter: PostgresArray<String>? = executors.map { PostgresArray($0) }
        return try await pool.transaction { session in
            var limit = limit
            if let parallelism {
                try session.query("SELECT pg_advisory_xact_lock($1)", [Self.parallelismLockKey])
                let active = try session.query("SELECT count(*) FROM task_instance WHERE state IN ('queued', 'running')")[0].decode(0, as: Int.self)
                limit = min(limit, parallelism - active)
                if limit <= 0 { return [] }
            }
            // The candidates leave out what cannot run now, as Airflow's
            // scheduler leaves out starved pools and DAGs: a task whose pool
            // is missing or has fewer open slots than it needs, or whose DAG
            // is at max_active_tasks. Otherwise enough such tasks at a high
            // priority would fill the window for good and hide every task
            // that could run. A pool or DAG with some room may still fill a
            // window: the pass claims what fits, and the next one, finding it
            // full, looks past it. These counts are unlocked (the locked
            // recount below decides), and go in as arrays so that the scan
            // keeps to the ready index's priority order.
            var openPools: [String] = []
            var openSlots: [Int] = []
            var fullDags: [String] = []
            // One round trip: each pool's open slots, then each DAG at its
            // max_active_tasks.
            for row in try session.query(
                """
                SELECT p.name, CASE WHEN p.slots = -1 THEN 2147483647 ELSE p.slots - coalesce(
                    (SELECT sum(busy.pool_slots) FROM task_instance busy WHERE busy.pool = p.name AND busy.state IN ('queued', 'running')), 0) END
                FROM pool p
                UNION ALL
                SELECT d.dag_id, NULL FROM dag d JOIN task_instance busy ON busy.dag_id = d.dag_id AND busy.state IN ('queued', 'running')
                GROUP BY d.dag_id, d.max_active_tasks HAVING count(*) >= d.max_active_tasks
                """) {
                let name = try row.decode(0, as: String.self)
                if let open = try row.decodeIfPresent(1, as: Int.self) {
                    openPools.append(name)
                    openSlots.append(open)
                } else {
                    fullDags.append(name)
                }
            }
            let candidates = try session.query(
                """
                SELECT ti.id, ti.dag_id, ti.pool, ti.pool_slots, ti.updated_at FROM task_instance ti
                JOIN dag_run r ON r.id = ti.dag_run_id
                WHERE ti.state = 'scheduled' AND r.state = 'running'
                  AND ($2::text[] IS NULL OR ti.executor = ANY($2::text[]))
                  AND ti.pool_slots <= coalesce(($4::int[])[array_position($3::text[], ti.pool)], -1)
                  AND ti.dag_id <> ALL($5::text[])
                ORDER BY ti.priority_weight DESC, ti.id
                LIMIT $1 FOR UPDATE OF ti SKIP LOCKED
                """, [limit * 4, executorFilter, PostgresArray(openPools), PostgresArray(openSlots), PostgresArray(fullDags)])
            if candidates.isEmpty { return [] }
            let rows = try candidates.map { row throws(PostgresError) in
                (id: try row.decode(0, as: Int64.self), dag: try row.decode(1, as: String.self),
                 pool: try row.decode(2, as: String.self), slots: try row.decode(3, as: Int.self),
                 readySince: try row.decode(4, as: Date.self))
            }
            let pools = Array(Set(rows.map(\.pool))).sorted()
            let dags = Array(Set(rows.map(\.dag))).sorted()
            // Lock in a fixed order (pools, then DAGs, each by name) so
            // claimers never deadlock; then count what is in use.
            var freeSlots: [String: Int] = [:]
            for row in try session.query("SELECT name, slots FROM pool WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE", [PostgresArray(pools)]) {
                let slots = try row.decode(1, as: Int.self)
                // An unlimited pool (-1) never runs out.
                freeSlots[try row.decode(0, as: String.self)] = slots == PoolRecord.unlimited ? Int(Int32.max) : slots
            }
            var freeTasks: [String: Int] = [:]
            for row in try session.query("SELECT dag_id, max_active_tasks FROM dag WHERE dag_id = ANY($1::text[]) ORDER BY dag_id FOR UPDATE", [PostgresArray(dags)]) {
                freeTasks[try row.decode(0, as: String.self)] = try row.decode(1, as: Int.self)
            }
            for row in try session.query(
                "SELECT pool, sum(pool_slots) FROM task_instance WHERE state IN ('queued', 'running') AND pool = ANY($1::text[]) GROUP BY pool",
                [PostgresArray(pools)]) {
                freeSlots[try row.decode(0, as: String.self), default: 0] -= try row.decode(1, as: Int.self)
            }
            for row in try session.query(
                "SELECT dag_id, count(*) FROM task_instance WHERE state IN ('queued', 'running') AND dag_id = ANY($1::text[]) GROUP BY dag_id",
                [PostgresArray(dags)]) {
                freeTasks[try row.decode(0, as: String.self), default: 0] -= try row.decode(1, as: Int.self)
            }
            var chosen: [Int64] = []
            for row in rows where chosen.count < limit {
                // A task in an unknown pool never runs (Airflow: pool does not exist).
                guard let slots = freeSlots[row.pool], slots >= row.slots, let tasks = freeTasks[row.dag], tasks > 0 else { continue }
                freeSlots[row.pool] = slots - row.slots
                freeTasks[row.dag] = tasks - 1
                chosen.append(row.id)
            }
            if chosen.isEmpty { return [] }
            let readySince = Dictionary(rows.map { ($0.id, $0.readySince) }, uniquingKeysWith: { first, _ in first })
            return try session.query(
                """
                WITH u AS (
                    UPDATE task_instance ti SET state = 'queued', fencing_token = nextval('fencing_token_seq'), updated_at = now()
                    WHERE ti.id = ANY($1::bigint[]) AND ti.state = 'scheduled'
                    RETURNING ti.id, ti.dag_run_id, ti.dag_id, ti.task_id, ti.fencing_token, ti.try_number, ti.priority_weight, ti.pool, ti.queue, ti.executor
                ), a AS (
                    INSERT INTO attempt (task_instance_id, fencing_token, try_number, executor)
                    SELECT id, fencing_token, try_number + 1, executor FROM u
                    RETURNING id, task_instance_id, try_number
                ), e AS (
                    INSERT INTO event_log (task_instance_id, dag_run_id, event, from_state, to_state, try_number, fencing_token)
                    SELECT id, dag_run_id, $2, 'scheduled', 'queued', try_number, fencing_token FROM u
                )
                SELECT u.id, a.id, u.fencing_token, u.dag_run_id, u.dag_id, u.task_id, u.priority_weight, u.pool, u.queue, u.executor, a.try_number
                FROM u JOIN a ON a.task_instance_id = u.id
                ORDER BY u.priority_weight DESC, u.id
                """, [PostgresArray(chosen), TaskInstanceEvent.enqueue.rawValue]
            ).map { row throws(PostgresError) in
                ClaimedTask(
                    taskInstanceID: try row.decode(0), attemptID: try row.decode(1), fencingToken: try row.decode(2),
                    dagRunID: try row.decode(3), dagID: try row.decode(4), taskID: try row.decode(5),
                    priorityWeight: try row.decode(6), pool: try row.decode(7), queue: try row.decode(8), executor: try row.decode(9),
                    tryNumber: try row.decode(10), readySince: readySince[try row.decode(0, as: Int64.self)])
            }
        }
    }

    /// The instances whose SLA (`deadlines`, by instance id) has passed
    /// unfinished, recorded once each as an `sla_miss` event in their event
    /// log (Airflow's sla_miss rows); returns the ids newly recorded.
    public func recordSLAMisses(_ candidates: [Int64], detail: [Int64: String]) async throws(PostgresError) -> [Int64] {
        guard !candidates.isEmpty else { return [] }
        let details = candidates.map { detail[$0] ?? "" }
        return try await pool.withSession { session in
            try session.query(
                """
                INSERT INTO event_log (task_instance_id, dag_run_id, event, from_state, to_state, try_number, detail)
                SELECT ti.id, ti.dag_run_id, 'sla_miss', ti.state, ti.state, ti.try_number, c.detail
                FROM unnest($1::bigint[], $2::text[]) AS c(id, detail) JOIN task_instance ti ON ti.id = c.id
                WHERE ti.state NOT IN ('success', 'skipped', 'removed')
                  AND NOT EXISTS (SELECT 1 FROM event_log e WHERE e.task_instance_id = ti.id AND e.event = 'sla_miss')
                RETURNING task_instance_id
                """, [PostgresArray(candidates), PostgresArray(details)]
            ).map { row throws(PostgresError) in try row.decode(0, as: Int64.self) }
        }
    }

    /// The advisory lock that claimers with a parallelism cap share
    /// ("TRLSPARA").
    static let parallelismLockKey: Int64 = 0x5452_4C53_5041_5241

    /// Every attempt not yet ended, of running runs: what a restarted control
    /// plane hands back to its executors.
    public func attemptsInFlight() async throws(PostgresError) -> [AttemptRecord] {
        try await pool.withSession { session in
            try session.all(
                AttemptRecord.self,
                """
                SELECT \(AttemptRecord.columns.split(separator: ",").map { "a." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", "))
                FROM attempt a JOIN task_instance ti ON ti.id = a.task_instance_id
                WHERE a.state <> 'ended' AND ti.dag_run_id IN (SELECT id FROM dag_run WHERE state = 'running')
                ORDER BY a.id
                """)
        }
    }

    /// The executor reports that the attempt's process started: `queued →
    /// running`, a new try. Applies only while the instance is queued with
    /// this fencing token; returns nil for a stale or repeated report.
    public func startAttempt(
        taskInstanceID: Int64, fencingToken: Int64, agentName: String? = nil, podName: String? = nil
    ) async throws(PostgresError) -> AppliedTransition? {
        try await transition(TransitionRequest(
            taskInstanceID: taskInstanceID, event: .start, expected: .queued, fencingToken: fencingToken,
            agentName: agentName, podName: podName))
    }

    /// The executor reports how a running attempt ended. Applies only while
    /// the instance is running with this fencing token; nil for a stale
    /// report (the attempt was cancelled, lost or already ended).
    ///
    /// `retryAt` is when the instance may run again if the attempt's end
    /// leaves it `up_for_retry` (stored as `next_retry_at`).
    public func endAttempt(
        taskInstanceID: Int64, fencingToken: Int64, outcome: AttemptOutcome,
        exitCode: Int? = nil, failureReason: String? = nil, retryAt: Date? = nil
    ) async throws(PostgresError) -> AppliedTransition? {
        try await transition(TransitionRequest(
            taskInstanceID: taskInstanceID, event: outcome.event, expected: .running, fencingToken: fencingToken,
            exitCode: exitCode, failureReason: failureReason, retryAt: retryAt))
    }

    /// The executor could not start a queued attempt at all (image pull
    /// error, refused submission): counts as a try.
    public func failToStart(
        taskInstanceID: Int64, fencingToken: Int64, reason: String, retryAt: Date? = nil
    ) async throws(PostgresError) -> AppliedTransition? {
        try await transition(TransitionRequest(
            taskInstanceID: taskInstanceID, event: .fail, expected: .queued, fencingToken: fencingToken, failureReason: reason,
            retryAt: retryAt))
    }

    /// Every attempt of a task instance, oldest first.
    public func attempts(taskInstanceID: Int64) async throws(PostgresError) -> [AttemptRecord] {
        try await pool.withSession { session in
            try session.all(
                AttemptRecord.self,
                "SELECT \(AttemptRecord.columns) FROM attempt WHERE task_instance_id = $1 ORDER BY id", [taskInstanceID])
        }
    }

    /// One attempt by its id.
    public func attempt(_ id: Int64) async throws(PostgresError) -> AttemptRecord {
        let rows = try await pool.withSession { session in
            try session.all(AttemptRecord.self, "SELECT \(AttemptRecord.columns) FROM attempt WHERE id = $1", [id])
        }
        guard let attempt = rows.first else { throw PostgresError(.notFound, "no attempt \(id)") }
        return attempt
    }
}
