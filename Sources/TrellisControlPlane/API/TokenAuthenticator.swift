import Foundation
import Synchronization
public import TrellisProto
public import TrellisStore
public import TrellisWire

/// The handshake's authenticator for trellisd: clients present an API token
/// from the `api_token` table, agents the deployment's join token.
///
/// `WireAuthenticator` is synchronous (it runs on the event loop), so API
/// tokens are checked against an in-memory snapshot of (SHA-256 → role) for
/// the live tokens, loaded from the database by `refresh()`: call it once
/// before serving, let `run()` refresh it every `refreshInterval`, and the
/// API refreshes it at once after it creates or revokes a token. A token
/// revoked elsewhere (another replica) stops working at this replica's next
/// refresh. Only hashes are held, as in the database; the join token is
/// compared in constant time. Each successful handshake notes the token's
/// use in memory; `run()` writes the notes to `api_token.last_used_at` at
/// each refresh, so `trellis tokens list` shows when a token was last used
/// (to within `refreshInterval`) without a database write per connection.
public final class TokenAuthenticator: WireAuthenticator {
    private struct Snapshot {
        var roles: [[UInt8]: TokenRole] = [:]
        /// The generation of the refresh that produced it: a slow refresh
        /// that started earlier never replaces a newer snapshot.
        var generation: UInt64 = 0
        var started: UInt64 = 0
    }

    private let store: StateStore
    private let agentToken: String?
    /// How often `run()` reloads the tokens.
    public let refreshInterval: Duration
    private let snapshot = Mutex(Snapshot())
    /// Uses not yet written: token hash → latest use.
    private let uses = Mutex<[[UInt8]: Date]>([:])

    /// `agentToken` nil refuses every agent.
    public init(store: StateStore, agentToken: String?, refreshInterval: Duration = .seconds(10)) {
        self.store = store
        self.agentToken = agentToken
        self.refreshInterval = refreshInterval
    }

    /// Reloads the live tokens from the database.
    public func refresh() async throws {
        let generation = snapshot.withLock { state in
            state.started += 1
            return state.started
        }
        let live = try await store.liveTokenHashes()
        var roles: [[UInt8]: TokenRole] = [:]
        for token in live { roles[token.hash] = token.role }
        snapshot.withLock { state in
            guard generation > state.generation else { return }
            state.roles = roles
            state.generation = generation
        }
    }

    /// Writes the uses noted since the last call to the database. Uses that
    /// could not be written (database restarting) are kept for next time.
    public func recordUses() async throws {
        let pending = uses.withLock { uses in
            defer { uses = [:] }
            return uses
        }
        guard !pending.isEmpty else { return }
        do {
            try await store.recordTokenUses(pending.map { (hash: $0.key, at: $0.value) })
        } catch {
            uses.withLock { uses in uses.merge(pending) { Swift.max($0, $1) } }
            throw error
        }
    }

    /// Refreshes every `refreshInterval` until cancelled, writing the noted
    /// uses first; a failed refresh (database restarting) keeps the last
    /// snapshot and tries again next time. When cancelled, writes the uses
    /// still pending once more.
    public func run() async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: refreshInterval)
            } catch {
                break
            }
            try? await recordUses()
            try? await refresh()
        }
        try? await recordUses()
    }

    /// How many live API tokens the snapshot holds.
    public var tokenCount: Int { snapshot.withLock { $0.roles.count } }

    public func authenticate(_ hello: Trellis_V1_Hello) -> WireIdentity? {
        switch hello.role {
        case .agent:
            guard let agentToken, !agentToken.isEmpty, constantTimeEqual(hello.credentials, agentToken) else { return nil }
            return WireIdentity(role: .agent, name: hello.name)
        case .client:
            guard !hello.credentials.isEmpty else { return nil }
            // Looked up by hash: timing reveals nothing usable about the token.
            let digest = SHA256.hash(Array(hello.credentials.utf8))
            guard let role = snapshot.withLock({ $0.roles[digest] }) else { return nil }
            let now = Date()
            uses.withLock { $0[digest] = now }
            return WireIdentity(role: .client, name: hello.name, subject: role.rawValue)
        default:
            return nil
        }
    }
}
