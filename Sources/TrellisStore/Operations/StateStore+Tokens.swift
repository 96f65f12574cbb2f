public import Foundation

/// What an API token allows (the handshake's roles).
public enum TokenRole: String, Sendable, Hashable, CaseIterable, PostgresEncodable, PostgresDecodable {
    case admin, `operator`, viewer

    public var postgresText: String? { rawValue }
    public init(postgresText text: String) throws(PostgresError) {
        guard let role = Self(rawValue: text) else { throw .decodingFailed(text, as: "TokenRole") }
        self = role
    }
}

/// An API token as listed: never the token itself, which is stored only as
/// its SHA-256.
public struct APITokenRecord: Sendable, Hashable, RowDecodable {
    public var name: String
    public var role: TokenRole
    public var createdAt: Date
    public var lastUsedAt: Date?
    public var revokedAt: Date?

    static let columns = "name, role, created_at, last_used_at, revoked_at"
    init(row: PostgresRow) throws(PostgresError) {
        name = try row.decode(0)
        role = try row.decode(1)
        createdAt = try row.decode(2)
        lastUsedAt = try row.decodeIfPresent(3)
        revokedAt = try row.decodeIfPresent(4)
    }
}

extension StateStore {
    /// Creates a token named `name` with `role` and returns it: the only time
    /// it is visible. 32 random bytes, so an unsalted SHA-256 is enough to
    /// keep it unrecoverable from the database.
    public func createToken(name: String, role: TokenRole) async throws(PostgresError) -> String {
        var generator = SystemRandomNumberGenerator()
        let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
        let token = "trellis_" + secret
        try await pool.withSession { session in
            try session.query(
                "INSERT INTO api_token (name, role, token_hash) VALUES ($1, $2, sha256(convert_to($3, 'UTF8')))",
                [name, role, token])
        }
        return token
    }

    /// What `registerToken` did.
    public enum TokenRegistration: Sendable, Hashable {
        /// No token had the name: this one now does.
        case created
        /// The name held another token, which stops working; this one
        /// replaces it (a rotated Secret).
        case replaced
        /// The name already holds this token, live.
        case unchanged
        /// The name holds this token, revoked: it stays revoked.
        case revoked
    }

    /// Registers a token someone else made (a deployment's Secret) under
    /// `name` with `role`, stored like every token as its SHA-256. Running it
    /// again with the same token changes nothing, so every replica may run it
    /// at every start; a token revoked under that name stays revoked; a
    /// different token replaces the one the name held.
    public func registerToken(name: String, role: TokenRole, token: String) async throws(PostgresError) -> TokenRegistration {
        try await pool.transaction { session in
            // Twice at most: an insert that lost a race to another replica's
            // finds that replica's row on the second pass.
            for _ in 0..<2 {
                let existing = try session.query(
                    "SELECT token_hash = sha256(convert_to($2, 'UTF8')), revoked_at IS NOT NULL FROM api_token WHERE name = $1 FOR UPDATE",
                    [name, token])
                if let row = existing.first {
                    if try row.decode(0, as: Bool.self) { return try row.decode(1, as: Bool.self) ? .revoked : .unchanged }
                    try session.query(
                        """
                        UPDATE api_token SET token_hash = sha256(convert_to($2, 'UTF8')), role = $3, revoked_at = NULL,
                            created_at = now(), last_used_at = NULL
                        WHERE name = $1
                        """, [name, token, role])
                    return .replaced
                }
                let inserted = try session.query(
                    "INSERT INTO api_token (name, role, token_hash) VALUES ($1, $2, sha256(convert_to($3, 'UTF8'))) ON CONFLICT (name) DO NOTHING",
                    [name, role, token])
                if inserted.affectedRows == 1 { return .created }
            }
            throw PostgresError(.invalidArgument, "token '\(name)' changed twice while it was being registered")
        }
    }

    /// The name and role of a valid (known, unrevoked) token, or nil.
    public func authenticate(token: String) async throws(PostgresError) -> (name: String, role: TokenRole)? {
        let rows = try await pool.withSession { session in
            try session.query(
                """
                UPDATE api_token SET last_used_at = now()
                WHERE token_hash = sha256(convert_to($1, 'UTF8')) AND revoked_at IS NULL RETURNING name, role
                """, [token])
        }
        guard let row = rows.first else { return nil }
        return (try row.decode(0), try row.decode(1))
    }

    /// Records when tokens were last used, by their SHA-256 (the handshake
    /// checks tokens in memory, so it reports uses in batches). A time never
    /// moves a token's `last_used_at` back; unknown hashes are ignored.
    public func recordTokenUses(_ uses: [(hash: [UInt8], at: Date)]) async throws(PostgresError) {
        guard !uses.isEmpty else { return }
        let hashes = uses.map { use in use.hash.map { byte in String(byte, radix: 16).leftPadded(to: 2) }.joined() }
        try await pool.withSession { session in
            try session.query(
                """
                UPDATE api_token t SET last_used_at = greatest(t.last_used_at, u.at)
                FROM unnest($1::text[], $2::timestamptz[]) AS u(hash, at)
                WHERE t.token_hash = decode(u.hash, 'hex')
                """, [PostgresArray(hashes), PostgresArray(uses.map(\.at))])
        }
    }

    /// Revokes a token by name; false if there was no such live token.
    @discardableResult
    public func revokeToken(name: String) async throws(PostgresError) -> Bool {
        try await pool.withSession { session in
            try session.query("UPDATE api_token SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL", [name]).affectedRows == 1
        }
    }

    /// Every token, without its secret.
    public func tokens() async throws(PostgresError) -> [APITokenRecord] {
        try await pool.withSession { session in
            try session.all(APITokenRecord.self, "SELECT \(APITokenRecord.columns) FROM api_token ORDER BY name")
        }
    }

    /// The SHA-256 and role of every token not revoked: what an in-memory
    /// authenticator needs to check tokens without a query per handshake.
    public func liveTokenHashes() async throws(PostgresError) -> [(hash: [UInt8], role: TokenRole)] {
        let rows = try await pool.withSession { session in
            try session.query("SELECT token_hash, role FROM api_token WHERE revoked_at IS NULL ORDER BY id")
        }
        return try rows.map { row throws(PostgresError) in
            (try row.decode(0, as: PostgresBytes.self).bytes, try row.decode(1, as: TokenRole.self))
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
