import Foundation
import Testing
import TrellisStore
import TrellisTestSupport

@Suite(.timeLimit(.minutes(1))) struct LeaderTests {
    @Test func oneHolderAtATimeAndLossIsDetectedPromptly() async throws {
        try await FreshDatabase.with(migrated: false) { url in
            let key = Int64.random(in: 1...Int64.max)
            let first = LeaderLock(url, key: key, checkInterval: .milliseconds(100))
            let second = LeaderLock(url, key: key, checkInterval: .milliseconds(100))
            #expect(try await first.tryAcquire())
            #expect(try await first.tryAcquire())
            #expect(try await !second.tryAcquire())
            #expect(first.isHeld && !second.isHeld)

            // The leader's session is killed (as by a failover or an admin).
            let pid = try #require(first.backendPID)
            async let loss = first.lost()
            let started = ContinuousClock.now
            let admin = try await PostgresConnection.connect(url)
            try await admin.withSession { try $0.query("SELECT pg_terminate_backend($1)", [Int(pid)]) }
            #expect(await loss.code == .connectionLost)
            // Noticed by the 100 ms check, not by a TCP timeout (minutes); the
            // bound is loose because two loaded cores are slow.
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(!first.isHeld)

            try await second.acquire(retryInterval: .milliseconds(20))
            #expect(second.isHeld)
            #expect(try await !first.tryAcquire())
            await second.release()
            #expect(!second.isHeld)
            await #expect(throws: PostgresError.self) { try await second.tryAcquire() }
            #expect(try await first.tryAcquire())
            await first.release()
            await admin.close()
        }
    }
}
