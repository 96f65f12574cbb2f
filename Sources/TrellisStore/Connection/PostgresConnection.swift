import CLibPQ
import Foundation

/// One PostgreSQL connection with a thread of its own for libpq's blocking
/// calls. Takes any libpq connection string or URI (multi-host lists with
/// `target_session_attrs`, `sslmode`, passfiles and service files work as
/// libpq documents them).
///
/// It connects on first use and, when the connection drops (a server
/// restart), reconnects with exponential backoff; until a reconnect succeeds,
/// requests fail at once with `PostgresError.Code.connectionLost` rather than
/// hanging or crashing.
public final class PostgresConnection: @unchecked Sendable {
    /// The backoff between reconnect attempts: doubles from `initial` up to `maximum`.
    public struct Backoff: Sendable {
        public var initial: Duration
        public var maximum: Duration
        public init(initial: Duration = .milliseconds(50), maximum: Duration = .seconds(2)) {
            self.initial = initial
            self.maximum = maximum
        }
    }

    private let conninfo: String
    private let backoff: Backoff
    private let thread: LibPQThread
    // Touched only on `thread`.
    private var handle: OpaquePointer?
    private var prepared: [String: String] = [:]
    private var nextAttempt: ContinuousClock.Instant?
    private var currentDelay: Duration
    private var closed = false

    /// A connection that will connect to `conninfo` on first use.
    public init(_ conninfo: String, backoff: Backoff = Backoff()) {
        self.conninfo = conninfo
        self.backoff = backoff
        self.currentDelay = backoff.initial
        self.thread = LibPQThread(name: "libpq")
    }

    /// Opens a connection now, throwing if the server cannot be reached.
    public static func connect(_ conninfo: String, backoff: Backoff = Backoff()) async throws(PostgresError) -> PostgresConnection {
        let connection = PostgresConnection(conninfo, backoff: backoff)
        try await connection.withSession { _ in }
        return connection
    }

    /// Runs `body` with the open connection on the connection's thread.
    /// Errors `body` throws come back unchanged; a dropped connection is
    /// reported as `connectionLost` and reopened on a later call.
    @discardableResult
    public func withSession<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) async throws(PostgresError) -> T {
        do {
            return try await thread.run { [self] in try runOnThread(body) }
        } catch let error as PostgresError {
            throw error
        } catch {
            throw PostgresError(.invalidArgument, "\(error)")
        }
    }

    /// Runs `body` in one transaction on the connection's thread.
    @discardableResult
    public func transaction<T: Sendable>(_ body: @escaping @Sendable (PostgresSession) throws -> T) async throws(PostgresError) -> T {
        try await withSession { session in try session.transaction(body) }
    }

    /// Closes the connection and ends its thread.
    public func close() async {
        _ = try? await thread.run { [self] in
            closed = true
            if let handle { PQfinish(handle) }
            handle = nil
        }
        thread.stop()
    }

    deinit {
        // The thread holds no reference to self once idle; finish the handle
        // if close() was never called.
        if let handle { PQfinish(handle) }
        thread.stop()
    }

    private func runOnThread<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        let handle = try openHandle()
        let session = PostgresSession(handle: handle, prepared: prepared)
        defer { prepared = session.prepared }
        do {
            return try body(session)
        } catch let error as PostgresError {
            if PQstatus(handle) != CONNECTION_OK || error.code == .connectionLost {
                dropHandle()
                var lost = error
                lost.code = .connectionLost
                throw lost
            }
            throw error
        }
    }

    private func openHandle() throws(PostgresError) -> OpaquePointer {
        if closed { throw PostgresError(.poolClosed, "the connection was closed") }
        if let handle, PQstatus(handle) == CONNECTION_OK { return handle }
        dropHandle()
        let now = ContinuousClock.now
        if let nextAttempt, now < nextAttempt {
            throw PostgresError(.connectionLost, "the database connection is lost; reconnecting (next attempt in \(nextAttempt - now))")
        }
        guard let fresh = PQconnectdb(conninfo) else {
            throw PostgresError(.connectionLost, "libpq could not allocate a connection")
        }
        guard PQstatus(fresh) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(fresh)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(fresh)
            nextAttempt = now + currentDelay
            currentDelay = min(currentDelay * 2, backoff.maximum)
            throw PostgresError(.connectionLost, "cannot connect to the database: \(message)")
        }
        // Dates are read in one fixed form whatever the server's defaults.
        let setup = PQexec(fresh, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET client_min_messages = warning")
        PQclear(setup)
        handle = fresh
        nextAttempt = nil
        currentDelay = backoff.initial
        return fresh
    }

    private func dropHandle() {
        if let handle { PQfinish(handle) }
        handle = nil
        prepared = [:]
    }
}
