/// A pool of slots and how many are taken (Airflow's pools).
public struct PoolRecord: Sendable, Hashable, RowDecodable {
    public var name: String
    public var slots: Int
    public var description: String
    /// Slots held by queued task instances.
    public var queuedSlots: Int
    /// Slots held by running task instances.
    public var runningSlots: Int

    public var openSlots: Int { slots - queuedSlots - runningSlots }

    static let columns = """
        p.name, p.slots, p.description,
        coalesce((SELECT sum(pool_slots) FROM task_instance WHERE pool = p.name AND state = 'queued'), 0),
        coalesce((SELECT sum(pool_slots) FROM task_instance WHERE pool = p.name AND state = 'running'), 0)
        """
    init(row: PostgresRow) throws(PostgresError) {
        name = try row.decode(0)
        slots = try row.decode(1)
        description = try row.decode(2)
        queuedSlots = try row.decode(3)
        runningSlots = try row.decode(4)
    }
}

extension StateStore {
    /// Creates or resizes a pool.
    public func setPool(_ name: String, slots: Int, description: String = "") async throws(PostgresError) {
        guard slots >= 0 else { throw PostgresError(.invalidArgument, "pool '\(name)' cannot have \(slots) slots") }
        try await pool.withSession { session in
            try session.query(
                """
                INSERT INTO pool (name, slots, description) VALUES ($1, $2, $3)
                ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, description = excluded.description
                """, [name, slots, description])
        }
    }

    /// Deletes a pool; `default_pool` cannot be deleted.
    public func deletePool(_ name: String) async throws(PostgresError) {
        guard name != "default_pool" else { throw PostgresError(.invalidArgument, "default_pool cannot be deleted") }
        let rows = try await pool.withSession { session in
            try session.query("DELETE FROM pool WHERE name = $1", [name])
        }
        if rows.affectedRows == 0 { throw PostgresError(.notFound, "no pool '\(name)'") }
    }

    /// Every pool with its occupancy, by name.
    public func pools() async throws(PostgresError) -> [PoolRecord] {
        try await pool.withSession { session in
            try session.all(PoolRecord.self, "SELECT \(PoolRecord.columns) FROM pool p ORDER BY p.name")
        }
    }
}
