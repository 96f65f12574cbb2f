public import TrellisWire

/// The roles an API token grants (Airflow's viewer, op and admin), ordered:
/// each role may do everything the one below it may.
public enum APIRole: String, Sendable, Hashable, CaseIterable, Comparable {
    case viewer, `operator`, admin

    private var rank: Int {
        switch self {
        case .viewer: 0
        case .operator: 1
        case .admin: 2
        }
    }

    public static func < (lhs: APIRole, rhs: APIRole) -> Bool { lhs.rank < rhs.rank }
}

/// Who may call which method of `trellis.v1.TrellisAPI`: the one table of
/// required roles, and the check every handler runs first.
public enum APIAuthorization {
    /// The service's full name, as in `/trellis.v1.TrellisAPI/<Method>`.
    public static let service = "trellis.v1.TrellisAPI"

    /// The least role each method needs, by method name (api.proto's
    /// comments say the same).
    public static let requiredRole: [String: APIRole] = [
        "Ping": .viewer,
        "ServerStatus": .viewer,
        "ListDags": .viewer,
        "GetDag": .viewer,
        "ListRuns": .viewer,
        "GetRun": .viewer,
        "WatchRun": .viewer,
        "GetTaskLog": .viewer,
        "ListAgents": .viewer,
        "ListExecutors": .viewer,
        "ListPools": .viewer,
        "GetPool": .viewer,

        "SetDagPaused": .operator,
        "TriggerRun": .operator,
        "CancelRun": .operator,
        "ClearTasks": .operator,
        "MarkTask": .operator,

        "SubmitDag": .admin,
        "DeleteDag": .admin,
        "CreateToken": .admin,
        "ListTokens": .admin,
        "RevokeToken": .admin,
        "SetPool": .admin,
        "DeletePool": .admin,
    ]

    /// `/trellis.v1.TrellisAPI/<method>`.
    public static func path(_ method: String) -> String { "/\(service)/\(method)" }

    /// The caller's role if it may call `method`; PERMISSION_DENIED naming
    /// the role needed and the role held otherwise.
    public static func authorize(_ peer: WireIdentity?, method: String) throws(WireError) -> APIRole {
        guard let needed = requiredRole[method] else {
            throw WireError(.unimplemented, "\(path(method)) is not a method of \(service)")
        }
        guard let peer, peer.role == .client, let held = APIRole(rawValue: peer.subject) else {
            throw WireError(.permissionDenied, "\(method) requires the \(needed.rawValue) role; this connection holds no API token role")
        }
        guard held >= needed else {
            throw WireError(.permissionDenied, "\(method) requires the \(needed.rawValue) role; this token is \(held.rawValue)")
        }
        return held
    }
}
