import Foundation
import Testing
import TrellisCore
import TrellisStore

/// Agents, pools and API tokens.
@Suite struct RegistryTests {
    @Test func agentsWithoutARecentHeartbeatAreFoundLost() async throws {
        try await StoreFixture.with { store in
            let t0 = Date(timeIntervalSince1970: 1_800_000_000)
            try await store.agentHeartbeat(name: "a1", labels: #"{"zone": "eu"}"#, slots: 8, now: t0)
            try await store.agentHeartbeat(name: "a2", slots: 4, now: t0)
            try await store.agentHeartbeat(name: "a2", slots: 4, now: t0 + 20)
            #expect(try await store.markLostAgents(heartbeatBefore: t0 + 10) == ["a1"])
            #expect(try await store.markLostAgents(heartbeatBefore: t0 + 10).isEmpty)
            let agents = try await store.agents()
            #expect(agents.map(\.isConnected) == [false, true])
            #expect(agents[0].slots == 8)
            // A heartbeat revives it.
            try await store.agentHeartbeat(name: "a1", slots: 8, now: t0 + 30)
            #expect(try await store.agents().allSatisfy(\.isConnected))

            // The attempts it was running are listed for the caller to report lost.
            let (_, instances) = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("g", taskCount: 1))
            let claim = try #require(try await store.claimReady(limit: 1).first)
            _ = try await store.startAttempt(taskInstanceID: claim.taskInstanceID, fencingToken: claim.fencingToken, agentName: "a1")
            #expect(try await store.attemptsInFlight(agentName: "a1").map(\.id) == [claim.attemptID])
            let lost = try await store.endAttempt(taskInstanceID: instances[0].id, fencingToken: claim.fencingToken, outcome: .lost)
            #expect(lost?.to == .failed)
            #expect(try await store.attemptsInFlight(agentName: "a1").isEmpty)
        }
    }

    @Test func poolsCanBeCreatedResizedAndDeleted() async throws {
        try await StoreFixture.with { store in
            try await store.setPool("gpu", slots: 2, description: "GPUs")
            try await store.setPool("gpu", slots: 3, description: "GPUs")
            let pools = try await store.pools()
            #expect(pools.map(\.name) == ["default_pool", "gpu"])
            #expect(pools[1].slots == 3)
            #expect(pools[1].openSlots == 3)
            try await store.deletePool("gpu")
            await #expect(throws: PostgresError.self) { try await store.deletePool("gpu") }
            await #expect(throws: PostgresError.self) { try await store.deletePool("default_pool") }
            await #expect(throws: PostgresError.self) { try await store.setPool("bad", slots: -2) }
        }
    }

    @Test func tokensAreStoredHashedAndCanBeRevoked() async throws {
        try await StoreFixture.with { store in
            let token = try await store.createToken(name: "ci", role: .operator)
            #expect(token.hasPrefix("trellis_"))
            let identity = try await store.authenticate(token: token)
            #expect(identity?.name == "ci")
            #expect(identity?.role == .operator)
            #expect(try await store.authenticate(token: token + "x") == nil)
            // The token itself appears nowhere in the table.
            let leaked = try await store.pool.withSession { session in
                try session.query("SELECT count(*) FROM api_token WHERE position(convert_to($1, 'UTF8') IN token_hash) > 0 OR name = $1", [token])[0].decode(0, as: Int.self)
            }
            #expect(leaked == 0)
            #expect(try await store.tokens().first?.lastUsedAt != nil)
            #expect(try await store.revokeToken(name: "ci"))
            #expect(try await store.authenticate(token: token) == nil)
        }
    }

    @Test func aTokenMadeElsewhereIsRegisteredOnceRevocationSticksAndANewOneReplacesIt() async throws {
        try await StoreFixture.with { store in
            let first = "trellis_" + String(repeating: "a1", count: 32)
            #expect(try await store.registerToken(name: "deploy-admin", role: .admin, token: first) == .created)
            #expect(try await store.authenticate(token: first)?.role == .admin)
            // Every start registers it again: nothing changes.
            #expect(try await store.registerToken(name: "deploy-admin", role: .admin, token: first) == .unchanged)
            #expect(try await store.tokens().map(\.name) == ["deploy-admin"])
            // Revoked: it stays so however often it is registered.
            #expect(try await store.revokeToken(name: "deploy-admin"))
            #expect(try await store.registerToken(name: "deploy-admin", role: .admin, token: first) == .revoked)
            #expect(try await store.authenticate(token: first) == nil)
            // A new token (a rotated Secret) replaces the old one, live again.
            let second = "trellis_" + String(repeating: "b2", count: 32)
            #expect(try await store.registerToken(name: "deploy-admin", role: .admin, token: second) == .replaced)
            #expect(try await store.authenticate(token: second)?.role == .admin)
            #expect(try await store.authenticate(token: first) == nil)
            #expect(try await store.tokens().map(\.name) == ["deploy-admin"])
            // Replicas registering at the same time agree.
            let third = "trellis_" + String(repeating: "c3", count: 32)
            async let one = store.registerToken(name: "other-admin", role: .admin, token: third)
            async let two = store.registerToken(name: "other-admin", role: .admin, token: third)
            let outcomes = try await [one, two]
            #expect(outcomes.sorted { "\($0)" < "\($1)" } == [.created, .unchanged])
            #expect(try await store.authenticate(token: third)?.name == "other-admin")
        }
    }
}

/// The seed document's KEDA scaler query, run verbatim.
@Suite struct KEDAQueryTests {
    static let kedaQuery = "SELECT ceil(COUNT(*)::decimal / 4) FROM task_instance WHERE state='running' OR state='queued'"

    @Test(arguments: [(0, 0), (1, 0), (3, 2), (4, 4), (5, 6)])
    func theKEDAQueryCountsQueuedAndRunning(queued: Int, running: Int) async throws {
        try await StoreFixture.with { store in
            let total = queued + running + 7
            let (_, instances) = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("k", taskCount: total))
            let claimed = try await store.claimReady(limit: queued + running)
            #expect(claimed.count == queued + running)
            for claim in claimed.prefix(running) {
                _ = try await store.startAttempt(taskInstanceID: claim.taskInstanceID, fencingToken: claim.fencingToken)
            }
            // Others in other states: success, failed, skipped, none, scheduled.
            let rest = instances.filter { instance in !claimed.contains { $0.taskInstanceID == instance.id } }
            _ = try await store.transition([
                TransitionRequest(taskInstanceID: rest[0].id, event: .markSuccess, expected: .scheduled),
                TransitionRequest(taskInstanceID: rest[1].id, event: .markFailed, expected: .scheduled),
                TransitionRequest(taskInstanceID: rest[2].id, event: .clear, expected: .scheduled),
                TransitionRequest(taskInstanceID: rest[3].id, event: .remove, expected: .scheduled),
            ])
            let result = try await store.pool.withSession { session in
                try session.query(Self.kedaQuery)[0].decode(0, as: Int.self)
            }
            #expect(result == (queued + running + 3) / 4)
        }
    }
}
