public import Foundation
public import TrellisCore
public import TrellisProto
import SwiftProtobuf

/// What `submitDag` stored: the version now current and whether it is new.
public struct SubmittedDagVersion: Sendable, Hashable {
    public var dagID: String
    public var version: Int
    /// False when the submission was identical to the current version.
    public var isNew: Bool

    public init(dagID: String, version: Int, isNew: Bool) {
        self.dagID = dagID
        self.version = version
        self.isNew = isNew
    }
}

/// A DAG as the client lists it.
public struct DagRecord: Sendable, Hashable, RowDecodable {
    public var dagID: String
    public var latestVersion: Int
    public var isPaused: Bool
    public var maxActiveRuns: Int
    public var maxActiveTasks: Int
    public var updatedAt: Date

    static let columns = "dag_id, latest_version, is_paused, max_active_runs, max_active_tasks, updated_at"
    init(row: PostgresRow) throws(PostgresError) {
        dagID = try row.decode(0)
        latestVersion = try row.decode(1)
        isPaused = try row.decode(2)
        maxActiveRuns = try row.decode(3)
        maxActiveTasks = try row.decode(4)
        updatedAt = try row.decode(5)
    }
}

/// A DAG as the client lists it: the row, its latest version's spec and its
/// newest run.
public struct DagSummaryRecord: Sendable, Hashable {
    public var dag: DagRecord
    public var spec: Trellis_V1_DagSpec
    /// The newest run (by logical date); nil with no run yet.
    public var lastRunState: DagRunState?
    public var lastRunLogicalDate: Date?
}

extension StateStore {
    /// Stores `dag` as the DAG's next version, or returns the current version
    /// if the spec is unchanged. Runs keep the version they started with.
    /// `pausedIfNew` creates a new DAG paused (Airflow's
    /// `is_paused_upon_creation`); an existing DAG keeps its flag.
    @discardableResult
    public func submitDag(_ dag: DagDefinition, sourceFile: String = "", pausedIfNew: Bool = false) async throws(PostgresError) -> SubmittedDagVersion {
        let spec = dag.spec
        let bytes: [UInt8]
        do {
            var options = BinaryEncodingOptions()
            options.useDeterministicOrdering = true
            bytes = try spec.serializedBytes(options: options)
        } catch {
            throw PostgresError(.invalidArgument, "cannot serialise DAG '\(spec.dagID)': \(error)")
        }
        let encoded = PostgresBytes(bytes)
        return try await pool.transaction { session in
            try session.query("INSERT INTO dag (dag_id, is_paused) VALUES ($1, $2) ON CONFLICT DO NOTHING", [spec.dagID, pausedIfNew])
            let current = try session.query(
                """
                SELECT d.latest_version, coalesce(v.spec_hash = sha256($2::bytea), false)
                FROM dag d LEFT JOIN dag_version v ON v.dag_id = d.dag_id AND v.version = d.latest_version
                WHERE d.dag_id = $1 FOR UPDATE OF d
                """, [spec.dagID, encoded])[0]
            let latest = try current.decode(0, as: Int.self)
            if try current.decode(1, as: Bool.self) {
                return SubmittedDagVersion(dagID: spec.dagID, version: latest, isNew: false)
            }
            try session.query(
                "INSERT INTO dag_version (dag_id, version, spec, spec_hash, source_file) VALUES ($1, $2, $3, sha256($3::bytea), $4)",
                [spec.dagID, latest + 1, encoded, sourceFile])
            try session.query(
                "UPDATE dag SET latest_version = $2, max_active_runs = $3, max_active_tasks = $4, updated_at = now() WHERE dag_id = $1",
                [spec.dagID, latest + 1, Int(spec.maxActiveRuns), Int(spec.maxActiveTasks)])
            return SubmittedDagVersion(dagID: spec.dagID, version: latest + 1, isNew: true)
        }
    }

    /// Every DAG, by id.
    public func dags() async throws(PostgresError) -> [DagRecord] {
        try await pool.withSession { session in
            try session.all(DagRecord.self, "SELECT \(DagRecord.columns) FROM dag ORDER BY dag_id")
        }
    }

    /// The spec of one version of a DAG (the latest when `version` is nil).
    public func dagSpec(_ dagID: String, version: Int? = nil) async throws(PostgresError) -> Trellis_V1_DagSpec {
        let rows = try await pool.withSession { session in
            try session.query(
                """
                SELECT v.spec FROM dag_version v JOIN dag d USING (dag_id)
                WHERE v.dag_id = $1 AND v.version = coalesce($2::integer, d.latest_version)
                """, [dagID, version])
        }
        guard let row = rows.first else { throw PostgresError(.notFound, "no DAG '\(dagID)'\(version.map { " version \($0)" } ?? "")") }
        return try Self.decodeSpec(try row.decode(0, as: PostgresBytes.self), dagID: dagID)
    }

    /// Pauses or unpauses a DAG: a paused DAG's queued runs do not start.
    /// Returns whether the flag changed; an unknown DAG is `notFound`.
    @discardableResult
    public func setPaused(_ dagID: String, _ paused: Bool) async throws(PostgresError) -> Bool {
        let changed: Bool? = try await pool.transaction { session in
            let current = try session.query("SELECT is_paused FROM dag WHERE dag_id = $1 FOR UPDATE", [dagID])
            guard let row = current.first else { return nil }
            if try row.decode(0, as: Bool.self) == paused { return false }
            try session.query("UPDATE dag SET is_paused = $2, updated_at = now() WHERE dag_id = $1", [dagID, paused])
            return true
        }
        guard let changed else { throw PostgresError(.notFound, "no DAG '\(dagID)'") }
        return changed
    }

    /// One DAG, or nil if there is none with that id.
    public func dag(_ dagID: String) async throws(PostgresError) -> DagRecord? {
        try await pool.withSession { session in
            try session.all(DagRecord.self, "SELECT \(DagRecord.columns) FROM dag WHERE dag_id = $1", [dagID])
        }.first
    }

    /// Every DAG with its latest spec and newest run (one query), by id;
    /// only `dagID` when given.
    public func dagSummaries(dagID: String? = nil) async throws(PostgresError) -> [DagSummaryRecord] {
        let rows = try await pool.withSession { session in
            try session.query(
                """
                SELECT \(DagRecord.columns.split(separator: ",").map { "d." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")),
                       v.spec, r.state, r.logical_date
                FROM dag d
                JOIN dag_version v ON v.dag_id = d.dag_id AND v.version = d.latest_version
                LEFT JOIN LATERAL (
                    SELECT state, logical_date FROM dag_run WHERE dag_id = d.dag_id ORDER BY logical_date DESC, id DESC LIMIT 1
                ) r ON true
                WHERE $1::text IS NULL OR d.dag_id = $1
                ORDER BY d.dag_id
                """, [dagID])
        }
        return try rows.map { row throws(PostgresError) in
            let record = try DagRecord(row: row)
            return DagSummaryRecord(
                dag: record,
                spec: try Self.decodeSpec(try row.decode(6, as: PostgresBytes.self), dagID: record.dagID),
                lastRunState: try row.decodeIfPresent(7),
                lastRunLogicalDate: try row.decodeIfPresent(8))
        }
    }

    /// Deletes a DAG with its versions, runs, task instances, attempts, logs
    /// and events, in one transaction. Returns how many runs went with it and
    /// the attempts that were in flight (the caller cancels them on their
    /// executors). An unknown DAG is `notFound`.
    public func deleteDag(_ dagID: String) async throws(PostgresError) -> (deletedRuns: Int, inFlight: [AttemptInFlight]) {
        let result: (Int, [AttemptInFlight])? = try await pool.transaction { session in
            guard !(try session.query("SELECT 1 FROM dag WHERE dag_id = $1 FOR UPDATE", [dagID])).isEmpty else { return nil }
            let inFlight = try session.all(
                AttemptInFlight.self,
                """
                SELECT \(AttemptInFlight.columns) FROM attempt a JOIN task_instance ti ON ti.id = a.task_instance_id
                WHERE ti.dag_id = $1 AND a.state <> 'ended' ORDER BY a.id
                """, [dagID])
            let runs = try session.query("SELECT count(*) FROM dag_run WHERE dag_id = $1", [dagID])[0].decode(0, as: Int.self)
            // dag_version cascades to dag_run, task_instance, attempt,
            // task_log and event_log.
            try session.query("DELETE FROM dag WHERE dag_id = $1", [dagID])
            return (runs, inFlight)
        }
        guard let result else { throw PostgresError(.notFound, "no DAG '\(dagID)'") }
        return (result.0, result.1)
    }

    static func decodeSpec(_ bytes: PostgresBytes, dagID: String) throws(PostgresError) -> Trellis_V1_DagSpec {
        do {
            return try Trellis_V1_DagSpec(serializedBytes: bytes.bytes)
        } catch {
            throw PostgresError(.decoding, "the stored spec of DAG '\(dagID)' is unreadable: \(error)")
        }
    }
}
