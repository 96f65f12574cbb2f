public import Foundation

/// An agent as registered: its labels (matched against task queues), slots
/// and liveness.
public struct AgentRecord: Sendable, Hashable, RowDecodable {
    public var name: String
    /// A JSON object of labels.
    public var labels: String
    public var slots: Int
    /// False once `markLostAgents` found its heartbeat too old.
    public var isConnected: Bool
    public var registeredAt: Date
    public var lastHeartbeatAt: Date
    /// The worker pool it serves.
    public var pool: String
    public var version: String
    public var node: String
    /// It takes no more work (shutting down).
    public var isDraining: Bool

    static let columns = "name, labels, slots, state = 'connected', registered_at, last_heartbeat_at, pool, version, node, draining"
    init(row: PostgresRow) throws(PostgresError) {
        name = try row.decode(0)
        labels = try row.decode(1)
        slots = try row.decode(2)
        isConnected = try row.decode(3)
        registeredAt = try row.decode(4)
        lastHeartbeatAt = try row.decode(5)
        pool = try row.decode(6)
        version = try row.decode(7)
        node = try row.decode(8)
        isDraining = try row.decode(9)
    }
}

extension StateStore {
    /// Records a heartbeat from `name` at `now` (the caller's clock, so tests
    /// need not sleep), registering the agent or reviving a lost one.
    public func agentHeartbeat(name: String, labels: String = "{}", slots: Int, now: Date) async throws(PostgresError) {
        try await pool.withSession { session in
            try session.query(
                """
                INSERT INTO agent (name, labels, slots, state, registered_at, last_heartbeat_at)
                VALUES ($1, $2::jsonb, $3, 'connected', $4, $4)
                ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, slots = excluded.slots,
                    state = 'connected', last_heartbeat_at = greatest(agent.last_heartbeat_at, excluded.last_heartbeat_at)
                """, [name, labels, slots, now])
        }
    }

    /// Records an agent's (re)registration: who it is, and that it is alive
    /// and taking work as of `now`.
    public func registerAgent(
        name: String, pool: String, labels: String, slots: Int, version: String, node: String, now: Date
    ) async throws(PostgresError) {
        try await self.pool.withSession { session in
            try session.query(
                """
                INSERT INTO agent (name, labels, slots, state, registered_at, last_heartbeat_at, pool, version, node, draining)
                VALUES ($1, $2::jsonb, $3, 'connected', $4, $4, $5, $6, $7, false)
                ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, slots = excluded.slots, state = 'connected',
                    registered_at = excluded.registered_at, pool = excluded.pool, version = excluded.version,
                    node = excluded.node, draining = false,
                    last_heartbeat_at = greatest(agent.last_heartbeat_at, excluded.last_heartbeat_at)
                """, [name, labels, slots, now, pool, version, node])
        }
    }

    /// A sign of life from a registered agent (and whether it drains now).
    public func agentSeen(name: String, draining: Bool, now: Date) async throws(PostgresError) {
        try await self.pool.withSession { session in
            try session.query(
                """
                UPDATE agent SET state = 'connected', draining = $2,
                    last_heartbeat_at = greatest(last_heartbeat_at, $3)
                WHERE name = $1
                """, [name, draining, now])
        }
    }

    /// Records that an agent accepted a queued attempt, before it reports
    /// the start: if the agent is lost in between, the attempt is found.
    public func assignAgent(attemptID: Int64, agentName: String) async throws(PostgresError) {
        try await self.pool.withSession { session in
            try session.query(
                "UPDATE attempt SET agent_name = $2 WHERE id = $1 AND state <> 'ended' AND agent_name IS NULL",
                [attemptID, agentName])
        }
    }

    /// Marks agents whose last heartbeat is older than `deadline` as lost and
    /// returns their names; their unfinished attempts are what the caller
    /// must now report lost (`attemptsInFlight(agentName:)`).
    public func markLostAgents(heartbeatBefore deadline: Date) async throws(PostgresError) -> [String] {
        try await pool.withSession { session in
            try session.query(
                "UPDATE agent SET state = 'lost' WHERE state = 'connected' AND last_heartbeat_at < $1 RETURNING name", [deadline]
            ).map { row throws(PostgresError) in try row.decode(0, as: String.self) }.sorted()
        }
    }

    /// The attempts an agent has not finished.
    public func attemptsInFlight(agentName: String) async throws(PostgresError) -> [AttemptRecord] {
        try await pool.withSession { session in
            try session.all(
                AttemptRecord.self,
                "SELECT \(AttemptRecord.columns) FROM attempt WHERE agent_name = $1 AND state <> 'ended' ORDER BY id", [agentName])
        }
    }

    /// Every agent, by name.
    public func agents() async throws(PostgresError) -> [AgentRecord] {
        try await pool.withSession { session in
            try session.all(AgentRecord.self, "SELECT \(AgentRecord.columns) FROM agent ORDER BY name")
        }
    }
}
