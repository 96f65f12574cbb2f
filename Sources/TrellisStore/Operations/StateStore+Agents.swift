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

    static let columns = "name, labels, slots, state = 'connected', registered_at, last_heartbeat_at"
    init(row: PostgresRow) throws(PostgresError) {
        name = try row.decode(0)
        labels = try row.decode(1)
        slots = try row.decode(2)
        isConnected = try row.decode(3)
        registeredAt = try row.decode(4)
        lastHeartbeatAt = try row.decode(5)
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
