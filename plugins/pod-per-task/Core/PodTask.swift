/// One attempt of a pod task, as the executor needs it: the assignment's
/// identity and its KubernetesPodOperator fields (decoded from the C SDK's
/// TaskAssignment by the plugin, built directly by tests).
public struct PodTask: Sendable, Equatable {
    public enum OnFinish: String, Sendable, Equatable {
        case deletePod = "delete_pod"
        case deleteSucceededPod = "delete_succeeded_pod"
        case keepPod = "keep_pod"
    }

    public struct Toleration: Sendable, Equatable {
        public var key = "", `operator` = "", value = "", effect = ""
        public var tolerationSeconds: Int?
        public init() {}
    }

    public var attemptID: String
    public var fencingToken: Int64
    public var dagID: String
    public var runID: String
    public var taskID: String
    public var tryNumber: Int
    /// RFC 3339, UTC; empty when the run has none.
    public var logicalDate = ""

    public var image = ""
    /// Empty: the executor's namespace.
    public var namespace = ""
    public var cmds: [String] = []
    public var arguments: [String] = []
    public var env: [(name: String, value: String)] = []
    public var labels: [String: String] = [:]
    public var annotations: [String: String] = [:]
    /// The Pod name's prefix; empty: the task id.
    public var name = ""
    public var serviceAccountName = ""
    public var imagePullPolicy = ""
    public var requests: [String: String] = [:]
    public var limits: [String: String] = [:]
    public var nodeSelector: [String: String] = [:]
    public var tolerations: [Toleration] = []
    public var onFinish: OnFinish = .deletePod
    /// 0: the executor's default.
    public var startupTimeoutSeconds = 0
    public var getLogs = true

    public init(attemptID: String, fencingToken: Int64, dagID: String, runID: String, taskID: String, tryNumber: Int) {
        self.attemptID = attemptID
        self.fencingToken = fencingToken
        self.dagID = dagID
        self.runID = runID
        self.taskID = taskID
        self.tryNumber = tryNumber
    }

    /// "task 'x' of DAG 'y'", for messages.
    public var described: String { "task '\(taskID)' of DAG '\(dagID)'" }

    public static func == (lhs: PodTask, rhs: PodTask) -> Bool {
        lhs.attemptID == rhs.attemptID && lhs.fencingToken == rhs.fencingToken && lhs.dagID == rhs.dagID
            && lhs.runID == rhs.runID && lhs.taskID == rhs.taskID && lhs.tryNumber == rhs.tryNumber
            && lhs.image == rhs.image && lhs.namespace == rhs.namespace && lhs.cmds == rhs.cmds
            && lhs.arguments == rhs.arguments && lhs.env.map { [$0.name, $0.value] } == rhs.env.map { [$0.name, $0.value] }
            && lhs.labels == rhs.labels && lhs.annotations == rhs.annotations && lhs.name == rhs.name
            && lhs.onFinish == rhs.onFinish && lhs.startupTimeoutSeconds == rhs.startupTimeoutSeconds
    }
}
