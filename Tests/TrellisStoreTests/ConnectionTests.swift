import Foundation
import Testing
import TrellisStore
import TrellisTestSupport

/// The libpq layer: parameters, typed decoding, errors, the pool, LISTEN/NOTIFY.
@Suite struct ConnectionTests {
    @Test func parametersNeverBecomeSQLAndValuesDecodeTyped() async throws {
        let connection = try await PostgresConnection.connect(try TestDatabase.url)
        defer { Task { await connection.close() } }
        let tricky = "O'Reilly'); DROP TABLE x; -- ünïcødé \"quoted\" \\"
        let date = Date(timeIntervalSince1970: 1_764_000_000.123456)
        let bytes = PostgresBytes([0, 1, 2, 0xfe, 0xff])
        let row = try await connection.withSession { session in
            try session.query(
                "SELECT $1::text, $2::bigint, $3::bool, $4::timestamptz, $5::bytea, $6::jsonb, $7::text IS NULL, array_length($8::text[], 1), ($8::text[])[2]",
                [tricky, Int64.max, true, date, bytes, PostgresJSON(#"{"a": [1, "x"]}"#), String?.none, PostgresArray(["a", tricky, "c"])]
            )[0]
        }
        #expect(try row.decode(0, as: String.self) == tricky)
        #expect(try row.decode(1, as: Int64.self) == Int64.max)
        #expect(try row.decode(2, as: Bool.self))
        #expect(abs(try row.decode(3, as: Date.self).timeIntervalSince(date)) < 0.000_001)
        #expect(try row.decode(4, as: PostgresBytes.self) == bytes)
        #expect(try row.decode(5, as: PostgresJSON.self).text == #"{"a": [1, "x"]}"#)
        #expect(try row.decode(6, as: Bool.self))
        #expect(try row.decode(7, as: Int.self) == 3)
        #expect(try row.decode(8, as: String.self) == tricky)
    }

    @Test func datesBeforeTheEpochAndWithOffsetsDecode() async throws {
        let connection = try await PostgresConnection.connect(try TestDatabase.url)
        defer { Task { await connection.close() } }
        let rows = try await connection.withSession { session in
            try session.query("SELECT '1969-12-31 23:59:59.5+00'::timestamptz, '2024-02-29T12:00:00+05:30'::timestamptz, NULL::timestamptz")
        }
        #expect(try rows[0].decode(0, as: Date.self) == Date(timeIntervalSince1970: -0.5))
        #expect(try rows[0].decode(1, as: Date.self) == Date(timeIntervalSince1970: 1_709_188_200))
        #expect(try rows[0].decodeIfPresent(2, as: Date.self) == nil)
        #expect(throws: PostgresError.self) { try rows[0].decode(2, as: Date.self) }
    }

    @Test func serverErrorsCarrySQLStateMessageAndDetail() async throws {
        try await FreshDatabase.with { url in
            let connection = try await PostgresConnection.connect(url)
            defer { Task { await connection.close() } }
            try await connection.withSession { session in
                try session.query("INSERT INTO pool (name, slots) VALUES ($1, $2)", ["p", 1])
            }
            do {
                try await connection.withSession { session in
                    try session.query("INSERT INTO pool (name, slots) VALUES ($1, $2)", ["p", 1])
                }
                Issue.record("a duplicate key was accepted")
            } catch let error as PostgresError {
                #expect(error.code == .server)
                #expect(error.sqlState == "23505")
                #expect(error.isConstraintViolation)
                #expect(error.message.contains("duplicate key"))
                #expect(error.detail?.contains("(name)=(p)") == true)
            }
            // The connection is still usable after an error.
            let count = try await connection.withSession { try $0.query("SELECT count(*) FROM pool")[0].decode(0, as: Int.self) }
            #expect(count == 2)
        }
    }

    @Test func aFailedTransactionLeavesNothingBehind() async throws {
        try await FreshDatabase.with { url in
            let connection = try await PostgresConnection.connect(url)
            defer { Task { await connection.close() } }
            await #expect(throws: PostgresError.self) {
                try await connection.transaction { session in
                    try session.query("INSERT INTO pool (name, slots) VALUES ($1, $2)", ["a", 1])
                    try session.query("INSERT INTO pool (name, slots) VALUES ($1, $2)", ["b", -2])  // violates the check
                }
            }
            let count = try await connection.withSession { try $0.query("SELECT count(*) FROM pool WHERE name IN ('a', 'b')")[0].decode(0, as: Int.self) }
            #expect(count == 0)
        }
    }

    @Test func unreachableServerIsAClearErrorNotACrash() async throws {
        do {
            _ = try await PostgresConnection.connect("postgresql://127.0.0.1:1/none?connect_timeout=2")
            Issue.record("connected to port 1")
        } catch {
            #expect(error.code == .connectionLost)
            #expect(error.message.contains("cannot connect"))
        }
    }

    @Test func keyValueConnectionStringsWork() async throws {
        var components = URLComponents(string: try TestDatabase.url)!
        let conninfo = "host=\(components.host!) port=\(components.port!) user=\(components.user!) dbname=postgres application_name=trellis_test target_session_attrs=read-write"
        components.path = "/postgres"
        let connection = try await PostgresConnection.connect(conninfo)
        defer { Task { await connection.close() } }
        let name = try await connection.withSession { try $0.query("SELECT current_setting('application_name')")[0].decode(0, as: String.self) }
        #expect(name == "trellis_test")
        await connection.close()
        await #expect(throws: PostgresError.self) { try await connection.withSession { _ in } }
    }

    @Test func multiHostURIsFallThroughToAWritableServer() async throws {
        let components = URLComponents(string: try TestDatabase.url)!
        // The first host refuses connections; libpq moves on to the second.
        let uri = "postgresql://\(components.user!)@127.0.0.1:1,\(components.host!):\(components.port!)/postgres?target_session_attrs=read-write&connect_timeout=5"
        let connection = try await PostgresConnection.connect(uri)
        defer { Task { await connection.close() } }
        let readOnly = try await connection.withSession { try $0.query("SELECT pg_is_in_recovery()")[0].decode(0, as: Bool.self) }
        #expect(!readOnly)
    }

    @Test func thePoolNeverOpensMoreThanItsBound() async throws {
        let pool = PostgresPool(try TestDatabase.url, maximumConnections: 3)
        let pids = try await withThrowingTaskGroup(of: Int32.self) { group in
            for _ in 0..<24 {
                group.addTask {
                    try await pool.withSession { session in
                        try session.query("SELECT pg_sleep(0.01)")
                        return session.backendPID
                    }
                }
            }
            var pids = Set<Int32>()
            for try await pid in group { pids.insert(pid) }
            return pids
        }
        #expect(pids.count <= 3)
        #expect(pids.count >= 1)
        await pool.close()
        await #expect(throws: PostgresError.self) { try await pool.withSession { _ in } }
    }

    @Test func aWaiterForAConnectionCanBeCancelled() async throws {
        let pool = PostgresPool(try TestDatabase.url, maximumConnections: 1)
        let (gate, open) = AsyncStream.makeStream(of: Void.self)
        let (held, announceHeld) = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await pool.withConnection { _ in
                announceHeld.yield()
                for await _ in gate { break }
            }
        }
        for await _ in held { break }
        let waiter = Task { try await pool.withSession { _ in 1 } }
        waiter.cancel()
        do {
            _ = try await waiter.value
            Issue.record("the cancelled waiter got a connection")
        } catch {
            #expect((error as? PostgresError)?.code == .cancelled)
        }
        open.yield()
        try await holder.value
        // The pool still works: the connection went back.
        #expect(try await pool.withSession { _ in 2 } == 2)
        await pool.close()
    }

    @Test func notificationsArriveOnTheirChannel() async throws {
        let url = try TestDatabase.url
        let listener = PostgresListener(url)
        defer { listener.stop() }
        let channel = "trellis test \(UInt32.random(in: 0...UInt32.max))"
        try await listener.listen(channel)
        let sender = try await PostgresConnection.connect(url)
        defer { Task { await sender.close() } }
        try await sender.withSession { session in
            try session.query("SELECT pg_notify($1, $2)", [channel, "it's here"])
        }
        var iterator = listener.notifications.makeAsyncIterator()
        let notification = await iterator.next()
        #expect(notification?.channel == channel)
        #expect(notification?.payload == "it's here")
    }
}
