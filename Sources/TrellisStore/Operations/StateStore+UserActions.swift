import Foundation
public import TrellisCore

/// An attempt that was in flight when a user's action (clear, mark, cancel,
/// delete) ended it: the caller asks its executor to stop it. Its fencing
/// token is already retired, so whatever the executor reports later is stale.
public struct AttemptInFlight: Sendable, Hashable, RowDecodable {
    public var attemptID: Int64
    public var taskInstanceID: Int64
    public var fencingToken: Int64
    /// As stored on the attempt: empty means the deployment's default executor.
    public var executor: String
    public var dagRunID: Int64

    static let columns = "a.id, a.task_instance_id, a.fencing_token, a.executor, ti.dag_run_id"
    init(row: PostgresRow) throws(PostgresError) {
        attemptID = try row.decode(0)
        taskInstanceID = try row.decode(1)
        fencingToken = try row.decode(2)
        executor = try row.decode(3)
        dagRunID = try row.decode(4)
    }
}

/// What a user's action on a run's task instances did.
public struct UserActionResult: Sendable, Hashable {
    /// The transitions that applied, in the order applied.
    public var applied: [AppliedTransition]
    /// The task ids of the instances that changed.
    public var changedTaskIDs: [String]
    /// Attempts the action ended; cancel them on their executors.
    public var inFlight: [AttemptInFlight]
    /// The run had finished and is `running` again, for the scheduler to
    /// evaluate.
    public var runReopened: Bool
}

extension StateStore {
    /// Clears task instances of a run (Airflow's clear): each goes back to
    /// `none` with a fresh set of retries through the state machine's `clear`
    /// event. With `downstream`, every task downstream of them in the run's
    /// DAG version is cleared too; with `onlyFailed`, only instances that
    /// are `failed` or `upstream_failed`. Instances already `none` (or
    /// `removed`) are left alone. A finished run goes back to `running`.
    /// One transaction; an unknown task id is `notFound` and changes nothing.
    public func clearTasks(
        runID: Int64, taskIDs: [String], downstream: Bool = false, onlyFailed: Bool = false
    ) async throws(PostgresError) -> UserActionResult {
        try await pool.transaction { session in
            let (run, graph) = try Self.lockRun(session, runID)
            var chosen = Set<Int>()
            var pending: [Int] = []
            for taskID in taskIDs {
                guard let index = graph.index[taskID] else {
                    throw PostgresError(.notFound, "task '\(taskID)' is not in version \(run.dagVersion) of DAG '\(run.dagID)'")
                }
                if chosen.insert(index).inserted { pending.append(index) }
            }
            while downstream, let index = pending.popLast() {
                for next in graph.downstream[index] where chosen.insert(next).inserted { pending.append(next) }
            }
            let names = chosen.map { graph.taskIDs[$0] }
            let instances = try Self.lockInstances(session, runID, taskIDs: names)
            let eligible = instances.filter { instance in
                guard instance.state != .none, TaskInstanceTransitionRule.rule(from: instance.state, on: .clear) != nil else { return false }
                return !onlyFailed || instance.state == .failed || instance.state == .upstreamFailed
            }
            let requests = eligible.map { TransitionRequest(taskInstanceID: $0.id, event: .clear, expected: $0.state, detail: "cleared by a user") }
            return try Self.applyUserAction(session, run: run, instances: instances, batches: [requests], reopen: true)
        }
    }

    /// Marks one task instance of a run `success` or `failed` (events
    /// `mark_success` / `mark_failed`); an attempt in flight is ended. An
    /// instance already in that state is left as it is. A finished run goes
    /// back to `running`, so the scheduler recomputes its outcome.
    public func markTask(runID: Int64, taskID: String, state: TaskState) async throws(PostgresError) -> UserActionResult {
        let event: TaskInstanceEvent
        switch state {
        case .success: event = .markSuccess
        case .failed: event = .markFailed
        default: throw PostgresError(.invalidArgument, "a task instance is marked success or failed, not \(state.rawValue)")
        }
        return try await pool.transaction { session in
            let (run, _) = try Self.lockRun(session, runID)
            guard let instance = try Self.lockInstances(session, runID, taskIDs: [taskID]).first else {
                throw PostgresError(.notFound, "task '\(taskID)' is not in run '\(run.runID)' of DAG '\(run.dagID)'")
            }
            if instance.state == state {
                return UserActionResult(applied: [], changedTaskIDs: [], inFlight: [], runReopened: false)
            }
            guard TaskInstanceTransitionRule.rule(from: instance.state, on: event) != nil else {
                throw PostgresError(.illegalTransition, "task '\(taskID)' is \(instance.state.rawValue) and cannot be marked \(state.rawValue)")
            }
            let request = TransitionRequest(taskInstanceID: instance.id, event: event, expected: instance.state, detail: "marked by a user")
            return try Self.applyUserAction(session, run: run, instances: [instance], batches: [[request]], reopen: true)
        }
    }

    /// Cancels a run that has not finished, as Airflow marks a run failed:
    /// the run becomes `failed`; queued and running instances are marked
    /// failed (their attempts end); instances that never started (`none`,
    /// `scheduled`, `up_for_retry`) become `skipped` (a scheduled one is
    /// cleared first, as the state machine skips only undecided instances).
    /// A finished run is `failedPrecondition`.
    public func cancelRun(_ runID: Int64) async throws(PostgresError) -> (run: DagRunRecord, result: UserActionResult) {
        try await pool.transaction { session in
            let (run, _) = try Self.lockRun(session, runID)
            guard run.state == .queued || run.state == .running else {
                throw PostgresError(.failedPrecondition, "run '\(run.runID)' of DAG '\(run.dagID)' has already ended (\(run.state.rawValue))")
            }
            let instances = try Self.lockInstances(session, runID, taskIDs: nil)
            var first: [TransitionRequest] = []
            var second: [TransitionRequest] = []
            for instance in instances {
                switch instance.state {
                case .queued, .running:
                    first.append(TransitionRequest(taskInstanceID: instance.id, event: .markFailed, expected: instance.state, detail: "run cancelled"))
                case .none, .upForRetry:
                    first.append(TransitionRequest(taskInstanceID: instance.id, event: .propagateSkip, expected: instance.state, detail: "run cancelled"))
                case .scheduled:
                    first.append(TransitionRequest(taskInstanceID: instance.id, event: .clear, expected: .scheduled, detail: "run cancelled"))
                    second.append(TransitionRequest(taskInstanceID: instance.id, event: .propagateSkip, expected: .none, detail: "run cancelled"))
                default:
                    break
                }
            }
            let result = try Self.applyUserAction(session, run: run, instances: instances, batches: [first, second], reopen: false)
            let ended = try session.all(
                DagRunRecord.self,
                "UPDATE dag_run SET state = 'failed', end_date = now() WHERE id = $1 RETURNING \(DagRunRecord.columns)", [runID])
            return (ended[0], result)
        }
    }

    /// Queued and running task instances per executor name (as stored on the
    /// instance: empty means the default executor), across the deployment.
    public func activeTaskCounts() async throws(PostgresError) -> [String: (queued: Int, running: Int)] {
        let rows = try await pool.withSession { session in
            try session.query("SELECT executor, state, count(*) FROM task_instance WHERE state IN ('queued', 'running') GROUP BY 1, 2")
        }
        var counts: [String: (queued: Int, running: Int)] = [:]
        for row in rows {
            let executor = try row.decode(0, as: String.self)
            let count = try row.decode(2, as: Int.self)
            var entry = counts[executor] ?? (0, 0)
            if try row.decode(1, as: TaskState.self) == .queued { entry.queued = count } else { entry.running = count }
            counts[executor] = entry
        }
        return counts
    }

    /// Attempts running now per agent.
    public func runningAttemptsByAgent() async throws(PostgresError) -> [String: Int] {
        let rows = try await pool.withSession { session in
            try session.query("SELECT agent_name, count(*) FROM attempt WHERE state = 'running' AND agent_name IS NOT NULL GROUP BY 1")
        }
        var counts: [String: Int] = [:]
        for row in rows { counts[try row.decode(0, as: String.self)] = try row.decode(1, as: Int.self) }
        return counts
    }

    // MARK: Shared steps

    /// Locks the run's row and returns it with the graph of its DAG version.
    private static func lockRun(_ session: PostgresSession, _ runID: Int64) throws(PostgresError) -> (DagRunRecord, DagGraph) {
        guard let run = try session.all(DagRunRecord.self, "SELECT \(DagRunRecord.columns) FROM dag_run WHERE id = $1 FOR UPDATE", [runID]).first else {
            throw PostgresError(.notFound, "no run \(runID)")
        }
        let specRow = try session.query("SELECT spec FROM dag_version WHERE dag_id = $1 AND version = $2", [run.dagID, run.dagVersion])[0]
        let spec = try decodeSpec(try specRow.decode(0, as: PostgresBytes.self), dagID: run.dagID)
        do {
            return (run, try DagGraph(spec: spec))
        } catch {
            throw PostgresError(.decoding, "the stored graph of DAG '\(run.dagID)' version \(run.dagVersion) is invalid: \(error)")
        }
    }

    /// Locks the run's task instances (those named, or all), so neither a
    /// claim nor an attempt's report moves them under the action.
    private static func lockInstances(_ session: PostgresSession, _ runID: Int64, taskIDs: [String]?) throws(PostgresError) -> [TaskInstanceRecord] {
        try session.all(
            TaskInstanceRecord.self,
            """
            SELECT \(TaskInstanceRecord.columns) FROM task_instance
            WHERE dag_run_id = $1 AND ($2::text[] IS NULL OR task_id = ANY($2::text[])) ORDER BY id FOR UPDATE
            """, [runID, taskIDs.map { PostgresArray($0) }])
    }

    /// Applies the batches in order, collects the attempts they ended and
    /// reopens a finished run when asked and anything changed.
    private static func applyUserAction(
        _ session: PostgresSession, run: DagRunRecord, instances: [TaskInstanceRecord], batches: [[TransitionRequest]], reopen: Bool
    ) throws(PostgresError) -> UserActionResult {
        let touched = Array(Set(batches.joined().map(\.taskInstanceID)))
        let inFlight = touched.isEmpty ? [] : try session.all(
            AttemptInFlight.self,
            """
            SELECT \(AttemptInFlight.columns) FROM attempt a JOIN task_instance ti ON ti.id = a.task_instance_id
            WHERE a.task_instance_id = ANY($1::bigint[]) AND a.state <> 'ended' ORDER BY a.id
            """, [PostgresArray(touched)])
        var applied: [AppliedTransition] = []
        for batch in batches where !batch.isEmpty {
            applied += try applyTransitions(session, try transitionParameters(batch))
        }
        let changed = Set(applied.map(\.taskInstanceID))
        let names = instances.filter { changed.contains($0.id) }.map(\.taskID)
        var reopened = false
        if reopen, !changed.isEmpty, run.state == .success || run.state == .failed {
            try session.query("UPDATE dag_run SET state = 'running', end_date = NULL WHERE id = $1", [run.id])
            reopened = true
        }
        // Only attempts whose instance actually moved were ended.
        let ended = try session.query(
            "SELECT id FROM attempt WHERE id = ANY($1::bigint[]) AND state = 'ended'", [PostgresArray(inFlight.map(\.attemptID))])
        let endedIDs = Set(try ended.map { row throws(PostgresError) in try row.decode(0, as: Int64.self) })
        return UserActionResult(
            applied: applied, changedTaskIDs: names, inFlight: inFlight.filter { endedIDs.contains($0.attemptID) }, runReopened: reopened)
    }
}
