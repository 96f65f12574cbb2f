/// The control plane's PostgreSQL state: every operation it needs (submit a
/// DAG version, create runs, guarded task-instance transitions, claims,
/// attempts with fencing tokens, logs, agents, pools, tokens) runs in one
/// transaction on a pooled connection. The operations live in one file per
/// concern (`StateStore+Dags.swift`, …).
public struct StateStore: Sendable {
    /// The connections the operations use.
    public let pool: PostgresPool

    /// A store over `pool`; the database must be migrated (`Migrator.migrate`).
    public init(pool: PostgresPool) {
        self.pool = pool
    }
}

/// Rows of a `SELECT` mapped to Swift values, one mapping per record type,
/// next to the column list it reads.
protocol RowDecodable {
    /// The columns `init(row:)` reads, in order, for a SELECT list.
    static var columns: String { get }
    init(row: PostgresRow) throws(PostgresError)
}

extension PostgresSession {
    func all<T: RowDecodable>(_ type: T.Type, _ sql: String, _ parameters: [any PostgresEncodable] = []) throws(PostgresError) -> [T] {
        var records: [T] = []
        for row in try query(sql, parameters) { records.append(try T(row: row)) }
        return records
    }
}

extension StateStore {
    /// One round trip to the database (`SELECT 1`): whether it answers now.
    public func ping() async throws(PostgresError) {
        try await pool.withSession { session in _ = try session.query("SELECT 1") }
    }
}
