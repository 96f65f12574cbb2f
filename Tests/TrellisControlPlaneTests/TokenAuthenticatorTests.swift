import Foundation
import Testing
import TrellisProto
import TrellisStore
import TrellisTestSupport
import TrellisWire

@testable import TrellisControlPlane

/// SHA-256 against FIPS 180-4's and NIST's vectors, and the authenticator
/// against tokens in a real database.
@Suite struct TokenAuthenticatorTests {
    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    @Test func sha256MatchesKnownVectors() {
        #expect(Self.hex(SHA256.hash(Array("".utf8))) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Self.hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Self.hex(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(Self.hex(SHA256.hash(Array(
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8)))
                == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        // One block boundary each side: 55, 56 and 64 bytes.
        #expect(Self.hex(SHA256.hash([UInt8](repeating: 0x61, count: 55))) == "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318")
        #expect(Self.hex(SHA256.hash([UInt8](repeating: 0x61, count: 56))) == "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a")
        #expect(Self.hex(SHA256.hash([UInt8](repeating: 0x61, count: 64))) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb")
    }

    @Test func sha256AgreesWithPostgreSQL() async throws {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 1)
            let text = "trellis_0123456789abcdef ☃"
            let digest = try await pool.withSession { session in
                try session.query("SELECT sha256(convert_to($1, 'UTF8'))", [text])[0].decode(0, as: PostgresBytes.self).bytes
            }
            await pool.close()
            #expect(SHA256.hash(Array(text.utf8)) == digest)
        }
    }

    static func hello(_ credentials: String, role: Trellis_V1_PeerRole = .client) -> Trellis_V1_Hello {
        var hello = Trellis_V1_Hello()
        hello.role = role
        hello.credentials = credentials
        hello.name = "tester"
        return hello
    }

    @Test func tokensFromTheDatabaseAuthenticateUntilRevokedAndRefreshed() async throws {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 2)
            let store = StateStore(pool: pool)
            let operatorToken = try await store.createToken(name: "ops", role: .operator)
            let authenticator = TokenAuthenticator(store: store, agentToken: "join-me", refreshInterval: .milliseconds(20))
            // Nothing is known before the first refresh.
            #expect(authenticator.authenticate(Self.hello(operatorToken)) == nil)
            try await authenticator.refresh()
            #expect(authenticator.authenticate(Self.hello(operatorToken))?.subject == "operator")
            #expect(authenticator.authenticate(Self.hello(operatorToken))?.role == .client)
            #expect(authenticator.authenticate(Self.hello(operatorToken + "x")) == nil)
            #expect(authenticator.authenticate(Self.hello("")) == nil)
            // A client token is not a join token, and the other way round.
            #expect(authenticator.authenticate(Self.hello(operatorToken, role: .agent)) == nil)
            #expect(authenticator.authenticate(Self.hello("join-me", role: .agent))?.role == .agent)
            #expect(authenticator.authenticate(Self.hello("join-me")) == nil)

            // The periodic refresh picks up a revocation made elsewhere.
            let refresher = Task { await authenticator.run() }
            try await store.revokeToken(name: "ops")
            try await eventually("the revoked token stops working") { authenticator.authenticate(Self.hello(operatorToken)) == nil }
            let viewerToken = try await store.createToken(name: "view", role: .viewer)
            try await eventually("a new token starts working") { authenticator.authenticate(Self.hello(viewerToken))?.subject == "viewer" }
            refresher.cancel()
            await refresher.value
            #expect(authenticator.tokenCount == 1)
            await pool.close()
        }
    }

    @Test func aTokensLastUseIsWrittenAtTheNextRefreshAndNeverMovesBack() async throws {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 2)
            let store = StateStore(pool: pool)
            let used = try await store.createToken(name: "used", role: .viewer)
            _ = try await store.createToken(name: "idle", role: .viewer)
            let authenticator = TokenAuthenticator(store: store, agentToken: nil, refreshInterval: .seconds(3_600))
            try await authenticator.refresh()
            func lastUsed(_ name: String) async throws -> Date? {
                try await store.tokens().first { $0.name == name }?.lastUsedAt
            }

            let before = Date()
            #expect(authenticator.authenticate(Self.hello(used)) != nil)
            #expect(authenticator.authenticate(Self.hello(used + "x")) == nil)  // a wrong token notes nothing
            #expect(try await lastUsed("used") == nil)  // noted in memory only
            try await authenticator.recordUses()
            let first = try #require(try await lastUsed("used"))
            #expect(first >= before.addingTimeInterval(-1))
            #expect(try await lastUsed("idle") == nil)

            // An older use reported late (another replica) does not move it back.
            try await store.recordTokenUses([(hash: SHA256.hash(Array(used.utf8)), at: first.addingTimeInterval(-3_600))])
            #expect(try await lastUsed("used") == first)
            // Nothing pending: no write.
            try await authenticator.recordUses()
            #expect(try await lastUsed("used") == first)

            // run() writes what is pending when it is cancelled.
            try await Task.sleep(for: .milliseconds(20))
            #expect(authenticator.authenticate(Self.hello(used)) != nil)
            let refresher = Task { await authenticator.run() }
            refresher.cancel()
            await refresher.value
            #expect(try #require(try await lastUsed("used")) > first)
            await pool.close()
        }
    }

    @Test func noJoinTokenRefusesEveryAgent() async throws {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 1)
            let authenticator = TokenAuthenticator(store: StateStore(pool: pool), agentToken: nil)
            #expect(authenticator.authenticate(Self.hello("", role: .agent)) == nil)
            #expect(authenticator.authenticate(Self.hello("anything", role: .agent)) == nil)
            await pool.close()
        }
    }
}
