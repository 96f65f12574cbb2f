import Foundation
import Testing
import TrellisCore
import TrellisStore
import TrellisTestSupport

/// Stopping PostgreSQL mid-use and starting it again: callers see
/// `connectionLost` meanwhile, nothing crashes, nothing is half-written, and
/// the same pool, listener and leader lock work again afterwards.
@Suite(.timeLimit(.minutes(2))) struct RestartTests {
    @Test func aServerRestartLeadsToAReconnectWithoutPartialWrites() async throws {
        let cluster = try await OwnCluster.create()
        defer { Task { await cluster.remove() } }
        let migrator = try await PostgresConnection.connect(cluster.url)
        try await Migrator.migrate(migrator)
        await migrator.close()

        let pool = PostgresPool(cluster.url, maximumConnections: 3, backoff: .init(initial: .milliseconds(20), maximum: .milliseconds(200)))
        let store = StateStore(pool: pool)
        try await store.setPool("default_pool", slots: 100_000)
        let (run, _) = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("r", taskCount: 400, maxActiveTasks: 100_000))

        // A transaction in flight when the server stops is rolled back.
        async let interrupted: Void = store.pool.transaction { session in
            try session.query("INSERT INTO pool (name, slots) VALUES ($1, $2)", ["half-written", 1])
            try session.query("SELECT pg_sleep(30)")
        }
        // A claimer keeps working through the restart, one instance at a
        // time, reporting its progress so the server stops mid-way.
        let (progress, reportProgress) = AsyncStream.makeStream(of: Int.self)
        let claimer = Task {
            var claimed = 0
            var lost = 0
            while claimed < 400 {
                do {
                    claimed += try await store.claimReady(limit: 1).count
                    reportProgress.yield(claimed)
                } catch let error as PostgresError where error.code == .connectionLost {
                    lost += 1
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            reportProgress.finish()
            return (claimed, lost)
        }
        for await claimed in progress where claimed >= 50 { break }
        try await cluster.stop()
        do {
            try await interrupted
            Issue.record("the interrupted transaction committed")
        } catch {
            #expect((error as? PostgresError)?.code == .connectionLost)
        }
        // While the server is down, callers get a clear error, not a hang or a crash.
        do {
            _ = try await store.pools()
            Issue.record("a query succeeded with the server down")
        } catch {
            #expect(error.code == .connectionLost)
        }
        try await Task.sleep(for: .milliseconds(300))
        try await cluster.start()

        let (claimed, lostCount) = try await claimer.value
        #expect(claimed == 400)
        #expect(lostCount > 0)
        #expect(try await store.pools().map(\.name) == ["default_pool"])

        // Every claim happened whole: each queued instance has exactly one
        // open attempt and one enqueue event, and nothing else is left over.
        let invariants = try await pool.withSession { session in
            try session.query(
                """
                SELECT
                  (SELECT count(*) FROM task_instance WHERE dag_run_id = $1 AND state = 'queued'),
                  (SELECT count(*) FROM attempt),
                  (SELECT count(*) FROM event_log WHERE event = 'enqueue'),
                  (SELECT count(*) FROM task_instance ti WHERE state = 'queued'
                     AND (SELECT count(*) FROM attempt a WHERE a.task_instance_id = ti.id AND a.state = 'queued') <> 1)
                """, [run.id])[0]
        }
        #expect(try invariants.decode(0, as: Int.self) == 400)
        #expect(try invariants.decode(1, as: Int.self) == 400)
        #expect(try invariants.decode(2, as: Int.self) == 400)
        #expect(try invariants.decode(3, as: Int.self) == 0)
        await pool.close()
    }

    @Test func theListenerAndTheLeaderNoticeARestart() async throws {
        let cluster = try await OwnCluster.create()
        defer { Task { await cluster.remove() } }
        let backoff = PostgresConnection.Backoff(initial: .milliseconds(20), maximum: .milliseconds(200))
        let listener = PostgresListener(cluster.url, backoff: backoff)
        defer { listener.stop() }
        try await listener.listen("wake")
        let leader = LeaderLock(cluster.url, checkInterval: .milliseconds(100))
        #expect(try await leader.tryAcquire())

        async let lossReason = leader.lost()
        try await cluster.stop()
        #expect(await lossReason.code == .connectionLost)
        #expect(!leader.isHeld)
        try await cluster.start()

        var reconnects = listener.reconnects.makeAsyncIterator()
        _ = await reconnects.next()
        let sender = PostgresConnection(cluster.url)
        try await sender.withSession { try $0.query("SELECT pg_notify($1, $2)", ["wake", "after restart"]) }
        var notifications = listener.notifications.makeAsyncIterator()
        #expect(await notifications.next()?.payload == "after restart")
        try await leader.acquire(retryInterval: .milliseconds(50))
        #expect(leader.isHeld)
        await leader.release()
        await sender.close()
    }
}
