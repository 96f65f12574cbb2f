public import TrellisProto

/// Who the peer on a connection is, once its `Hello` is accepted: what the
/// server's handlers use to authorize a call.
public struct WireIdentity: Sendable, Hashable {
    /// Agent or client.
    public var role: Trellis_V1_PeerRole
    /// The name the peer gave in its Hello (agent node name, client name).
    public var name: String
    /// What the credentials grant, as the authenticator sees it (for example an
    /// API role such as `admin`); empty for agents.
    public var subject: String

    public init(role: Trellis_V1_PeerRole, name: String, subject: String = "") {
        self.role = role
        self.name = name
        self.subject = subject
    }
}

/// Decides whether a `Hello` may open a session: maps credentials and role to
/// an identity, or nil to refuse with UNAUTHENTICATED.
public protocol WireAuthenticator: Sendable {
    func authenticate(_ hello: Trellis_V1_Hello) -> WireIdentity?
}

/// An authenticator with fixed tokens: one join token for agents and a table
/// of API tokens for clients, each granting a subject (a role such as
/// `admin`). Every token is compared in constant time, so response timing does
/// not reveal how much of a guess was right.
public struct StaticTokenAuthenticator: WireAuthenticator {
    public var agentToken: String?
    public var clientTokens: [(token: String, subject: String)]

    public init(agentToken: String?, clientTokens: [(token: String, subject: String)] = []) {
        self.agentToken = agentToken
        self.clientTokens = clientTokens
    }

    public func authenticate(_ hello: Trellis_V1_Hello) -> WireIdentity? {
        switch hello.role {
        case .agent:
            guard let agentToken, constantTimeEqual(hello.credentials, agentToken) else { return nil }
            return WireIdentity(role: .agent, name: hello.name)
        case .client:
            // Look at every token, whether or not an earlier one matched.
            var granted: String?
            for entry in clientTokens where constantTimeEqual(hello.credentials, entry.token) {
                granted = granted ?? entry.subject
            }
            return granted.map { WireIdentity(role: .client, name: hello.name, subject: $0) }
        default:
            return nil
        }
    }
}

/// Compares two secrets in time that depends only on their lengths, not on
/// where they first differ.
public func constantTimeEqual(_ lhs: String, _ rhs: String) -> Bool {
    let a = Array(lhs.utf8)
    let b = Array(rhs.utf8)
    var difference = UInt8(truncatingIfNeeded: a.count ^ b.count) | (a.count == b.count ? 0 : 1)
    let count = max(a.count, b.count)
    for index in 0..<count {
        let x = index < a.count ? a[index] : 0
        let y = index < b.count ? b[index] : 0
        difference |= x ^ y
    }
    return difference == 0
}

/// The constants of the handshake.
public enum WireProtocol {
    /// `Hello.magic`: "TRLS".
    public static let magic: UInt32 = 0x5452_4C53
    /// The protocol version this build speaks.
    public static let version: UInt32 = 1
}

/// The release every Trellis binary reports (`--version`, the handshake's
/// `Hello.version` and `Welcome.server_version`, an agent's registration).
public enum TrellisVersion {
    public static let current = "0.1.0-dev"
}
