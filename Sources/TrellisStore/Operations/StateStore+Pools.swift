/// A pool of slots and how many are taken (Airflow's pools).
public struct PoolRecord: Sendable, Hashable, RowDecodable {
    /// The slots of an unlimited pool (Airflow's -1).
    public static let unlimited = -1

    public var name: String
    /// `PoolRecord.unlimited` (-1) for a pool that never holds a task back.
    public var slots: Int
    public var description: String
    /// Slots held by queued task instances.
    public var queuedSlots: Int
    /// Slots held by running task instances.
    public var runningSlots: Int
    /// Slots wanted by scheduled task instances of running runs: ready,
    /// waiting for a slot.
    public var scheduledSlots: Int

    public var isUnlimited: Bool { slots == Self.unlimited }

    /// Negative when the pool was made smaller than what it has in use; -1
    /// for an unlimited pool, as Airflow's API reports it (`isUnlimited`
    /// tells it from a pool one slot over).
    public var openSlots: Int { isUnlimited ? Self.unlimited : slots - queuedSlots - runningSlots }

    static let columns = """
        p.name, p.slots, p.description,
        coalesce((SELECT sum(pool_slots) FROM task_instance WHERE pool = p.name AND state = 'queued'), 0),
        coalesce((SELECT sum(pool_slots) FROM task_instance WHERE pool = p.name AND state = 'running'), 0),
        coalesce((SELECT sum(ti.pool_slots) FROM task_instance ti JOIN dag_run r ON r.id = ti.dag_run_id
                  WHERE ti.pool = p.name AND ti.state = 'scheduled' AND r.state = 'running'), 0)
        """
    init(row: PostgresRow) throws(PostgresError) {
        name = try row.decode(0)
        slots = try row.decode(1)
        description = try row.decode(2)
        queuedSlots = try row.decode(3)
        runningSlots = try row.decode(4)
        scheduledSlots = try row.decode(5)
    }
}

/// A pool that ready task instances wait for in vain: it does not exist, or
/// it has fewer slots than they each need. `claimReady` passes them over
/// until someone creates or grows the pool.
public struct BlockedPool: Sendable, Hashable {
    public var name: String
    /// The pool's slots; nil when it does not exist.
    public var slots: Int?
    /// Scheduled task instances (of running runs) waiting for it.
    public var waiting: Int
    /// The most slots one of them needs.
    public var largestNeed: Int
    /// The DAGs of those instances, by id.
    public var dagIDs: [String]
}

extension StateStore {
    /// Creates a pool or changes its slots (`PoolRecord.unlimited`, -1: no
    /// limit); a nil `description` keeps the current one (none for a new
    /// pool). Returns whether it was created.
    @discardableResult
    public func setPool(_ name: String, slots: Int, description: String? = nil) async throws(PostgresError) -> Bool {
        guard slots >= PoolRecord.unlimited else {
            throw PostgresError(.invalidArgument, "pool '\(name)' cannot have \(slots) slots (-1 is unlimited)")
        }
        return try await pool.withSession { session in
            try session.query(
                """
                INSERT INTO pool (name, slots, description) VALUES ($1, $2, coalesce($3, ''))
                ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, description = coalesce($3, pool.description)
                RETURNING xmax = 0
                """, [name, slots, description])[0].decode(0, as: Bool.self)
        }
    }

    /// Deletes a pool. `default_pool` cannot be deleted, nor a pool that
    /// unfinished task instances still need (queued or running ones, and
    /// those of queued or running runs yet to start): they would wait
    /// forever. Checked and deleted in one transaction, with the pool's row
    /// locked as `claimReady` locks it.
    public func deletePool(_ name: String) async throws(PostgresError) {
        guard name != "default_pool" else { throw PostgresError(.invalidArgument, "default_pool cannot be deleted") }
        try await pool.transaction { session in
            guard !(try session.query("SELECT 1 FROM pool WHERE name = $1 FOR UPDATE", [name])).isEmpty else {
                throw PostgresError(.notFound, "no pool '\(name)'")
            }
            let users = try session.query(
                """
                SELECT ti.dag_id, ti.state, count(*) FROM task_instance ti JOIN dag_run r ON r.id = ti.dag_run_id
                WHERE ti.pool = $1 AND (ti.state IN ('queued', 'running')
                    OR (ti.state IN ('none', 'scheduled', 'up_for_retry') AND r.state IN ('queued', 'running')))
                GROUP BY ti.dag_id, ti.state
                """, [name])
            if !users.isEmpty {
                var dags = Set<String>()
                var byState: [String: Int] = [:]
                for row in users {
                    dags.insert(try row.decode(0, as: String.self))
                    byState[try row.decode(1, as: String.self), default: 0] += try row.decode(2, as: Int.self)
                }
                let total = byState.values.reduce(0, +)
                let states = [("running", "running"), ("queued", "queued"), ("scheduled", "scheduled"),
                              ("up_for_retry", "up_for_retry"), ("none", "not yet scheduled")].compactMap { state, shown in
                    byState[state].map { "\($0) \(shown)" }
                }
                let sorted = dags.sorted()
                let shown = sorted.prefix(10).joined(separator: ", ") + (sorted.count > 10 ? ", … \(sorted.count - 10) more" : "")
                throw PostgresError(.failedPrecondition, """
                    pool '\(name)' is still needed by \(total) unfinished task instance\(total == 1 ? "" : "s") \
                    (\(states.joined(separator: ", "))) of DAG\(sorted.count == 1 ? "" : "s") \(shown); \
                    deleting it would leave them waiting forever: let their runs finish, or cancel them, then delete it
                    """)
            }
            try session.query("DELETE FROM pool WHERE name = $1", [name])
        }
    }

    /// Every pool with its occupancy, by name.
    public func pools() async throws(PostgresError) -> [PoolRecord] {
        try await pool.withSession { session in
            try session.all(PoolRecord.self, "SELECT \(PoolRecord.columns) FROM pool p ORDER BY p.name")
        }
    }

    /// One pool with its occupancy, or nil if there is no such pool.
    public func pool(named name: String) async throws(PostgresError) -> PoolRecord? {
        try await pool.withSession { session in
            try session.all(PoolRecord.self, "SELECT \(PoolRecord.columns) FROM pool p WHERE p.name = $1", [name]).first
        }
    }

    /// The pools that scheduled task instances of running runs wait for in
    /// vain (missing, or smaller than an instance's `pool_slots`), by name.
    /// Reads only scheduled instances (a partial index), so a scheduler
    /// pass can afford it.
    public func blockedPools() async throws(PostgresError) -> [BlockedPool] {
        let rows = try await pool.withSession { session in
            try session.query(
                """
                SELECT ti.pool, p.slots, ti.dag_id, count(*), max(ti.pool_slots)
                FROM task_instance ti
                JOIN dag_run r ON r.id = ti.dag_run_id AND r.state = 'running'
                LEFT JOIN pool p ON p.name = ti.pool
                WHERE ti.state = 'scheduled' AND (p.name IS NULL OR (p.slots <> -1 AND ti.pool_slots > p.slots))
                GROUP BY ti.pool, p.slots, ti.dag_id
                ORDER BY ti.pool, ti.dag_id
                """)
        }
        var blocked: [BlockedPool] = []
        for row in rows {
            let name = try row.decode(0, as: String.self)
            let waiting = try row.decode(3, as: Int.self)
            let need = try row.decode(4, as: Int.self)
            let dag = try row.decode(2, as: String.self)
            if blocked.last?.name == name {
                blocked[blocked.count - 1].waiting += waiting
                blocked[blocked.count - 1].largestNeed = max(blocked[blocked.count - 1].largestNeed, need)
                blocked[blocked.count - 1].dagIDs.append(dag)
            } else {
                blocked.append(BlockedPool(name: name, slots: try row.decodeIfPresent(1), waiting: waiting, largestNeed: need, dagIDs: [dag]))
            }
        }
        return blocked
    }
}
