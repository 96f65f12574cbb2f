import CLibPQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Leader election among `trellisd` replicas: a session-level advisory lock
/// held on a dedicated connection. Whoever holds it schedules; the others
/// keep trying. The lock lives exactly as long as the session, so a crashed
/// leader or a dropped connection frees it for another replica.
///
/// While held, a thread of its own watches the connection's socket (poll(2))
/// and checks the session every `checkInterval`, so loss is noticed within
/// about that interval; `lost()` then returns and the holder must stop
/// acting as leader at once. For half-open network failures, bound the
/// detection time with libpq's `tcp_user_timeout` or keepalive settings in
/// the connection string.
public final class LeaderLock: @unchecked Sendable {
    /// The default lock key ("trellis" + 2).
    public static let defaultKey: Int64 = 0x7472_656c_6c69_7302

    public let key: Int64
    private let conninfo: String
    private let checkInterval: Duration
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopping = false
    // Touched only on the thread.
    private var handle: OpaquePointer?
    private var holding = false
    private var lastCheck = ContinuousClock.now
    // Guarded by `condition`.
    private var isHeldFlag = false
    private var heldPID: Int32?
    private var lossWaiters: [UInt64: CheckedContinuation<PostgresError, Never>] = [:]
    private var nextWaiter: UInt64 = 0

    /// A lock for `conninfo` under `key`; nothing happens until `tryAcquire`.
    public init(_ conninfo: String, key: Int64 = LeaderLock.defaultKey, checkInterval: Duration = .milliseconds(500)) {
        self.conninfo = conninfo
        self.key = key
        self.checkInterval = checkInterval
        let thread = Thread { [self] in loop() }
        thread.name = "libpq-leader"
        thread.start()
    }

    /// Whether this replica holds the lock right now.
    public var isHeld: Bool { condition.withLock { isHeldFlag } }

    /// The server process holding the session while the lock is held.
    public var backendPID: Int32? { condition.withLock { heldPID } }

    /// Tries once to take the lock; true if held now (also when already held).
    public func tryAcquire() async throws(PostgresError) -> Bool {
        let result: Result<Bool, PostgresError> = await withCheckedContinuation { continuation in
            let queued = submit { [self] in continuation.resume(returning: Result { () throws(PostgresError) in try acquireOnThread() }) }
            if !queued { continuation.resume(returning: .failure(PostgresError(.poolClosed, "this leader lock was released; create a new one"))) }
        }
        return try result.get()
    }

    /// Keeps trying every `retryInterval` until the lock is held. Connection
    /// errors count as "not now" and are retried; cancellation stops it.
    public func acquire(retryInterval: Duration = .seconds(1)) async throws {
        while true {
            try Task.checkCancellation()
            if (try? await tryAcquire()) == true { return }
            try await Task.sleep(for: retryInterval)
        }
    }

    /// Returns once the lock is lost, with the reason; at once if it is not
    /// held. Cancelling the waiting task ends the wait (with a `cancelled`
    /// error; the lock itself is untouched).
    public func lost() async -> PostgresError {
        let id: UInt64 = condition.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                condition.lock()
                if isHeldFlag && !Task.isCancelled {
                    lossWaiters[id] = continuation
                    condition.unlock()
                } else {
                    let held = isHeldFlag
                    condition.unlock()
                    continuation.resume(returning: held
                        ? PostgresError(.cancelled, "stopped waiting for the leader lock's loss")
                        : PostgresError(.connectionLost, "the leader lock is not held"))
                }
            }
        } onCancel: {
            let waiter: CheckedContinuation<PostgresError, Never>? = condition.withLock { lossWaiters.removeValue(forKey: id) }
            waiter?.resume(returning: PostgresError(.cancelled, "stopped waiting for the leader lock's loss"))
        }
    }

    /// Gives the lock up and closes the connection; the thread ends and the
    /// lock cannot be taken again through this object.
    public func release() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let queued = submit { [self] in
                if let handle {
                    let result = PQexec(handle, "SELECT pg_advisory_unlock_all()")
                    PQclear(result)
                }
                lose(PostgresError(.connectionLost, "the leader lock was released"))
                continuation.resume()
            }
            if !queued { continuation.resume() }
        }
        condition.withLock {
            stopping = true
            condition.signal()
        }
    }

    /// Queues `job` for the thread; false once the lock was released.
    private func submit(_ job: @escaping () -> Void) -> Bool {
        condition.withLock {
            guard !stopping else { return false }
            jobs.append(job)
            condition.signal()
            return true
        }
    }

    private func acquireOnThread() throws(PostgresError) -> Bool {
        if holding { return true }
        if handle == nil || PQstatus(handle) != CONNECTION_OK {
            if let handle { PQfinish(handle) }
            handle = PQconnectdb(conninfo)
            guard let fresh = handle, PQstatus(fresh) == CONNECTION_OK else {
                let message = handle.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
                if let handle { PQfinish(handle) }
                handle = nil
                throw PostgresError(.connectionLost, "cannot connect to the database: \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        }
        guard let connection = handle else { return false }
        let result = withCStringArray([String(key)]) { values in
            PQexecParams(connection, "SELECT pg_try_advisory_lock($1::bigint)", 1, nil, values, nil, nil, 0)
        }
        defer { PQclear(result) }
        guard PQresultStatus(result) == PGRES_TUPLES_OK else {
            let error = PostgresSession.error(from: result, connection: connection)
            if PQstatus(connection) != CONNECTION_OK {
                PQfinish(connection)
                handle = nil
            }
            throw error
        }
        let acquired = String(cString: PQgetvalue(result, 0, 0)) == "t"
        if acquired {
            holding = true
            lastCheck = .now
            let pid = PQbackendPID(connection)
            condition.withLock {
                isHeldFlag = true
                heldPID = pid
            }
        }
        return acquired
    }

    private func lose(_ reason: PostgresError) {
        let hadLock = holding
        holding = false
        if let handle { PQfinish(handle) }
        handle = nil
        let waiters = condition.withLock { () -> [CheckedContinuation<PostgresError, Never>] in
            isHeldFlag = false
            heldPID = nil
            defer { lossWaiters = [:] }
            return Array(lossWaiters.values)
        }
        if hadLock || !waiters.isEmpty {
            for waiter in waiters { waiter.resume(returning: reason) }
        }
    }

    /// Whether the held session is still alive: the socket has no EOF or
    /// error pending and, every `checkInterval`, a round trip succeeds.
    private func watch() {
        guard holding, let connection = handle else { return }
        var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
        if poll(&descriptor, 1, 0) != 0 {
            if PQconsumeInput(connection) == 0 || PQstatus(connection) != CONNECTION_OK {
                lose(PostgresError(.connectionLost, "the leader's database session ended: \(String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines))"))
                return
            }
        }
        if ContinuousClock.now - lastCheck >= checkInterval {
            lastCheck = .now
            let result = PQexec(connection, "SELECT 1")
            let ok = PQresultStatus(result) == PGRES_TUPLES_OK
            PQclear(result)
            if !ok || PQstatus(connection) != CONNECTION_OK {
                lose(PostgresError(.connectionLost, "the leader's database session ended"))
            }
        }
    }

    private func loop() {
        while true {
            condition.lock()
            if jobs.isEmpty && !stopping {
                if holding {
                    _ = condition.wait(until: Date(timeIntervalSinceNow: 0.05))
                } else {
                    condition.wait()
                }
            }
            if jobs.isEmpty && stopping {
                condition.unlock()
                if let handle { PQfinish(handle) }
                handle = nil
                return
            }
            let batch = jobs
            jobs.removeAll()
            condition.unlock()
            for job in batch { job() }
            watch()
        }
    }
}
