public import Foundation

/// One chunk of an attempt's log output, in order of arrival.
public struct LogChunk: Sendable, Hashable {
    public var attemptID: Int64
    public var sequence: Int
    public var data: [UInt8]
    public var createdAt: Date
}

/// Where a log chunk came from: the task's own output, or a message from
/// Trellis or its executor about the attempt.
public enum LogStream: String, Sendable, Hashable, PostgresEncodable {
    case stdout, stderr, system

    public var postgresText: String? { rawValue }
}

extension StateStore {
    /// Appends a chunk to an attempt's log and returns its sequence number
    /// (1, 2, …). Logs are kept in the database, so they outlive the pod or
    /// process that wrote them.
    @discardableResult
    public func appendLog(attemptID: Int64, stream: LogStream = .stdout, _ data: [UInt8]) async throws(PostgresError) -> Int {
        let rows = try await pool.withSession { session in
            // The counter on the attempt row orders concurrent appends.
            try session.query(
                """
                WITH a AS (UPDATE attempt SET log_chunks = log_chunks + 1 WHERE id = $1 RETURNING id, log_chunks)
                INSERT INTO task_log (attempt_id, seq, data, stream) SELECT id, log_chunks, $2, $3 FROM a RETURNING seq
                """, [attemptID, PostgresBytes(data), stream])
        }
        guard let row = rows.first else { throw PostgresError(.notFound, "no attempt \(attemptID)") }
        return try row.decode(0)
    }

    /// The bytes of output (stdout and stderr, not system messages) stored
    /// for each attempt, by attempt id (attempts with none are left out):
    /// where an executor that re-reads an attempt's whole output resumes.
    public func outputBytes(attemptIDs: [Int64]) async throws(PostgresError) -> [Int64: Int] {
        guard !attemptIDs.isEmpty else { return [:] }
        let rows = try await pool.withSession { session in
            try session.query(
                """
                SELECT attempt_id, sum(length(data)) FROM task_log
                WHERE attempt_id = ANY($1::bigint[]) AND stream <> 'system' GROUP BY attempt_id
                """, [PostgresArray(attemptIDs)])
        }
        var bytes: [Int64: Int] = [:]
        for row in rows { bytes[try row.decode(0, as: Int64.self)] = try row.decode(1, as: Int.self) }
        return bytes
    }

    /// An attempt's log chunks after `afterSequence` (0: from the start), for
    /// following a log as it grows.
    public func logChunks(attemptID: Int64, afterSequence: Int = 0, limit: Int = 1000) async throws(PostgresError) -> [LogChunk] {
        try await pool.withSession { session in
            try session.query(
                "SELECT attempt_id, seq, data, created_at FROM task_log WHERE attempt_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                [attemptID, afterSequence, limit]
            ).map { row throws(PostgresError) in
                LogChunk(attemptID: try row.decode(0), sequence: try row.decode(1),
                         data: try row.decode(2, as: PostgresBytes.self).bytes, createdAt: try row.decode(3))
            }
        }
    }

    /// The whole log of one try of a task instance (Airflow's "log per try").
    public func log(taskInstanceID: Int64, tryNumber: Int) async throws(PostgresError) -> [UInt8] {
        try await pool.withSession { session in
            try session.query(
                """
                SELECT l.data FROM task_log l JOIN attempt a ON a.id = l.attempt_id
                WHERE a.task_instance_id = $1 AND a.try_number = $2 ORDER BY a.id, l.seq
                """, [taskInstanceID, tryNumber]
            ).reduce(into: [UInt8]()) { bytes, row in
                bytes += try row.decode(0, as: PostgresBytes.self).bytes
            }
        }
    }
}
