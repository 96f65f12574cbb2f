public import TrellisProto

/// A validated DAG: the spec as Trellis stores it (Airflow's defaults filled
/// in, dependencies resolved to upstream lists) and its indexed graph.
public struct DagDefinition: Sendable {
    public let spec: Trellis_V1_DagSpec
    public let graph: DagGraph

    public init(spec: Trellis_V1_DagSpec, graph: DagGraph) {
        self.spec = spec
        self.graph = graph
    }
}

/// The executors Trellis ships, and the kind of task spec each runs.
public enum BuiltInExecutor: String, CaseIterable, Sendable {
    case podPerTask = "pod-per-task"
    case persistentPool = "persistent-pool"
    case scaledPool = "scaled-pool"

    /// What a task for this executor describes.
    public enum SpecKind: Sendable {
        /// A Kubernetes Pod (KubernetesPodOperator's fields).
        case pod
        /// A child process of an agent.
        case process
    }

    /// Why `name` cannot name an executor (DAG files and plugins share the
    /// rule: an RFC 1123 label), or nil.
    public static func nameProblem(_ name: String) -> String? {
        KubernetesNames.dns1123LabelProblem(name)
    }

    public var specKind: SpecKind {
        switch self {
        case .podPerTask: .pod
        case .persistentPool, .scaledPool: .process
        }
    }
}

/// Airflow's defaults for what a DAG file leaves out.
public enum AirflowDefaults {
    public static let owner = "airflow"
    public static let retries = 0
    public static let retryDelayMillis: Int64 = 300_000
    public static let triggerRule = TriggerRule.allSuccess
    public static let priorityWeight = 1
    public static let weightRule = WeightRule.downstream
    public static let pool = "default_pool"
    public static let poolSlots = 1
    public static let maxActiveRuns = 16
    public static let maxActiveTasks = 16
    public static let catchup = false
    public static let timezone = "UTC"
    public static let startupTimeoutSeconds = 120
}
