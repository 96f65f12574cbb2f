/// Whether this replica should receive traffic now, and if not, why.
///
/// The composition root computes it (database reachable, migrations
/// current, this replica leads) and the ops server answers `/readyz` with
/// it: Kubernetes sends Service traffic only to ready pods, so only the
/// leader receives it.
public struct Readiness: Sendable, Hashable {
    /// What keeps the replica from being ready, one short sentence each;
    /// empty when it is ready.
    public var reasons: [String]

    /// Ready when nothing stands in the way.
    public var isReady: Bool { reasons.isEmpty }

    public init(reasons: [String] = []) {
        self.reasons = reasons
    }

    /// Nothing stands in the way.
    public static let ready = Readiness()

    /// Not ready, for these reasons.
    public static func notReady(_ reasons: String...) -> Readiness {
        Readiness(reasons: reasons)
    }
}
