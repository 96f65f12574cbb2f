/// A bounded set of `PostgresConnection`s shared by many tasks: at most
/// `maximumConnections` are open; a request when all are busy waits in line
/// (first come, first served) until one is returned, or until its task is
/// cancelled (`PostgresError.Code.cancelled`).
///
/// Connections open lazily and reconnect by themselves after a server
/// restart, so a pool outlives PostgreSQL restarts; requests made while the
/// server is away fail with `connectionLost`.
public actor PostgresPool {
    public let conninfo: String
    public let maximumConnections: Int
    private let backoff: PostgresConnection.Backoff
    private var idle: [PostgresConnection] = []
    private var all: [PostgresConnection] = []
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<PostgresConnection, any Error>)] = []
    private var nextWaiterID: UInt64 = 0
    private var closed = false

    /// A pool for `conninfo` (a libpq connection string or URI).
    public init(_ conninfo: String, maximumConnections: Int = 8, backoff: PostgresConnection.Backoff = .init()) {
        precondition(maximumConnections > 0, "a pool needs at least one connection")
        self.conninfo = conninfo
        self.maximumConnections = maximumConnections
        self.backoff = backoff
    }

    /// Runs `body` with a connection of the pool, returning it afterwards.
    public func withConnection<T: Sendable>(
        _ body: (PostgresConnection) async throws(PostgresError) -> T
    ) async throws(PostgresError) -> T {
        let connection = try await lease()
        defer { release(connection) }
        return try await body(connection)
    }

    /// Runs `body` on the thread of a pooled connection (see
    /// `PostgresConnection.withSession`).
    @discardableResult
    public func withSession<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) async throws(PostgresError) -> T {
        try await withConnection { connection throws(PostgresError) in try await connection.withSession(body) }
    }

    /// Runs `body` in one transaction on a pooled connection.
    @discardableResult
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) async throws(PostgresError) -> T {
        try await withConnection { connection throws(PostgresError) in try await connection.transaction(body) }
    }

    /// Closes every connection; later requests fail with `poolClosed`.
    public func close() async {
        closed = true
        for waiter in waiters { waiter.continuation.resume(throwing: PostgresError(.poolClosed, "the connection pool was closed")) }
        waiters.removeAll()
        for connection in all { await connection.close() }
        all.removeAll()
        idle.removeAll()
    }

    private func lease() async throws(PostgresError) -> PostgresConnection {
        if closed { throw PostgresError(.poolClosed, "the connection pool was closed") }
        if let connection = idle.popLast() { return connection }
        if all.count < maximumConnections {
            let connection = PostgresConnection(conninfo, backoff: backoff)
            all.append(connection)
            return connection
        }
        let id = nextWaiterID
        nextWaiterID += 1
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    if Task.isCancelled {
                        continuation.resume(throwing: PostgresError(.cancelled, "cancelled while waiting for a database connection"))
                    } else {
                        waiters.append((id, continuation))
                    }
                }
            } onCancel: {
                Task { await self.cancelWaiter(id) }
            }
        } catch let error as PostgresError {
            throw error
        } catch {
            throw PostgresError(.poolClosed, "\(error)")
        }
    }

    private func cancelWaiter(_ id: UInt64) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(
            throwing: PostgresError(.cancelled, "cancelled while waiting for a database connection"))
    }

    private func release(_ connection: PostgresConnection) {
        if !waiters.isEmpty {
            waiters.removeFirst().continuation.resume(returning: connection)
        } else {
            idle.append(connection)
        }
    }
}
