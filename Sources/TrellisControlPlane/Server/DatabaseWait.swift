public import Logging
public import TrellisStore

/// Connecting to a database that may still be starting (beside trellisd in
/// a Deployment, or the embedded one): retries with a growing pause for at
/// most a given time, saying each time why.
public enum DatabaseWait {
    /// Why the database was not reached in time.
    public struct Unreachable: Error, Sendable, CustomStringConvertible {
        public var reason: PostgresError
        public var description: String { "cannot reach the database: \(reason)" }
    }

    /// Connects, retrying while the server is unreachable, for at most `wait`
    /// (zero tries once); each failed try before the last is logged.
    public static func connect(_ url: String, within wait: Duration, logger: Logger) async throws -> PostgresConnection {
        try await connect(url, within: wait) { error in
            logger.warning("database not reachable yet; retrying", metadata: ["reason": "\(error.message)"])
        }
    }

    /// Connects, retrying while the server is unreachable, for at most `wait`
    /// (zero tries once); `retrying` hears of each failed try before the last.
    public static func connect(
        _ url: String, within wait: Duration, retrying: (PostgresError) -> Void
    ) async throws -> PostgresConnection {
        let deadline = ContinuousClock.now + wait
        var pause = Duration.milliseconds(250)
        while true {
            do {
                return try await PostgresConnection.connect(url)
            } catch {
                guard ContinuousClock.now + pause < deadline else { throw Unreachable(reason: error) }
                retrying(error)
                try await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(5))
            }
        }
    }
}
