import CLibPQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A notification delivered by PostgreSQL's NOTIFY.
public struct PostgresNotification: Sendable, Hashable {
    public var channel: String
    public var payload: String
    /// The server process that sent it.
    public var senderPID: Int32
}

/// LISTEN/NOTIFY on a dedicated connection: a thread of its own waits on the
/// connection's socket with poll(2) and delivers notifications as they
/// arrive. After a server restart it reconnects with backoff and listens to
/// its channels again; notifications sent while it was away are lost (as
/// with any LISTEN), so consumers should re-read state after a reconnect,
/// which `reconnects` announces.
public final class PostgresListener: @unchecked Sendable {
    private let conninfo: String
    private let lock = NSLock()
    private var channels: Set<String> = []
    private var pendingListens: [String] = []
    private var stopped = false
    private let continuation: AsyncStream<PostgresNotification>.Continuation
    /// Every notification on the channels listened to, in arrival order.
    public let notifications: AsyncStream<PostgresNotification>
    private let reconnectContinuation: AsyncStream<Void>.Continuation
    /// Yields once each time the listener reconnected after losing its connection.
    public let reconnects: AsyncStream<Void>
    private let backoff: PostgresConnection.Backoff

    /// Starts a listener for `conninfo`; call `listen(_:)` to subscribe.
    public init(_ conninfo: String, backoff: PostgresConnection.Backoff = .init()) {
        self.conninfo = conninfo
        self.backoff = backoff
        (notifications, continuation) = AsyncStream.makeStream(of: PostgresNotification.self)
        (reconnects, reconnectContinuation) = AsyncStream.makeStream(of: Void.self)
        let thread = Thread { [self] in loop() }
        thread.name = "libpq-listen"
        thread.start()
    }

    /// Subscribes to `channel`; returns once the server confirmed the LISTEN.
    public func listen(_ channel: String) async throws(PostgresError) {
        let confirmation = Confirmation()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.withLock {
                channels.insert(channel)
                confirmations[channel, default: []].append((confirmation, continuation))
                pendingListens.append(channel)
            }
        }
        if let error = confirmation.error { throw error }
    }

    /// Stops listening and ends `notifications`.
    public func stop() {
        lock.withLock { stopped = true }
    }

    private final class Confirmation: @unchecked Sendable {
        var error: PostgresError?
    }

    private var confirmations: [String: [(Confirmation, CheckedContinuation<Void, Never>)]] = [:]

    private func loop() {
        var handle: OpaquePointer?
        var delay = backoff.initial
        var everConnected = false
        defer {
            if let handle { PQfinish(handle) }
            continuation.finish()
            reconnectContinuation.finish()
            failConfirmations(PostgresError(.poolClosed, "the listener was stopped"))
        }
        while !lock.withLock({ stopped }) {
            if handle == nil || PQstatus(handle) != CONNECTION_OK {
                if let stale = handle { PQfinish(stale) }
                handle = PQconnectdb(conninfo)
                guard let fresh = handle, PQstatus(fresh) == CONNECTION_OK else {
                    let message = handle.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
                    if let stale = handle { PQfinish(stale) }
                    handle = nil
                    failConfirmations(PostgresError(.connectionLost, "cannot connect to the database: \(message)"))
                    Thread.sleep(forTimeInterval: delay.seconds)
                    delay = min(delay * 2, backoff.maximum)
                    continue
                }
                delay = backoff.initial
                let all = lock.withLock { () -> Set<String> in
                    pendingListens = []
                    return channels
                }
                for channel in all { sendListen(fresh, channel) }
                if everConnected { reconnectContinuation.yield() }
                everConnected = true
            }
            guard let connection = handle else { continue }
            let pending = lock.withLock { () -> [String] in
                defer { pendingListens = [] }
                return pendingListens
            }
            for channel in pending { sendListen(connection, channel) }

            var descriptor = pollfd(fd: PQsocket(connection), events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, 50)
            if PQconsumeInput(connection) == 0 {
                PQfinish(connection)
                handle = nil
                continue
            }
            while let notify = PQnotifies(connection) {
                let value = notify.pointee
                continuation.yield(PostgresNotification(
                    channel: String(cString: value.relname),
                    payload: String(cString: value.extra),
                    senderPID: value.be_pid
                ))
                PQfreemem(notify)
            }
        }
    }

    private func sendListen(_ connection: OpaquePointer, _ channel: String) {
        var error: PostgresError?
        if let quoted = PQescapeIdentifier(connection, channel, channel.utf8.count) {
            let sql = "LISTEN " + String(cString: quoted)
            PQfreemem(quoted)
            let result = PQexec(connection, sql)
            if PQresultStatus(result) != PGRES_COMMAND_OK {
                error = PostgresSession.error(from: result, connection: connection)
            }
            PQclear(result)
        } else {
            error = PostgresError(.invalidArgument, "cannot quote channel name '\(channel)'")
        }
        let waiting = lock.withLock { confirmations.removeValue(forKey: channel) ?? [] }
        for (confirmation, continuation) in waiting {
            confirmation.error = error
            continuation.resume()
        }
    }

    private func failConfirmations(_ error: PostgresError) {
        let waiting = lock.withLock { () -> [(Confirmation, CheckedContinuation<Void, Never>)] in
            defer { confirmations = [:] }
            return confirmations.values.flatMap { $0 }
        }
        for (confirmation, continuation) in waiting {
            confirmation.error = error
            continuation.resume()
        }
    }
}

extension Duration {
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
