import Yams

/// The fields of one task (or of `default_args`) as written, before
/// defaults: every field optional and located, so a task's own value can be
/// merged over `default_args` and a problem still points at the line the
/// value came from.
struct TaskFields {
    // Airflow's BaseOperator arguments.
    var owner: Located<String>?
    var executor: Located<String>?
    var retries: Located<Int>?
    var retryDelay: Located<Int64>?
    var retryExponentialBackoff: Located<Bool>?
    var maxRetryDelay: Located<Int64>?
    var executionTimeout: Located<Int64>?
    var dependsOnPast: Located<Bool>?
    var triggerRule: Located<TriggerRule>?
    var priorityWeight: Located<Int>?
    var weightRule: Located<WeightRule>?
    var pool: Located<String>?
    var poolSlots: Located<Int>?
    var sla: Located<Int64>?
    var executorConfig: Located<String>?

    // Agent (process) tasks.
    var command: Located<[Located<String>]>?
    var env: Located<[(key: Located<String>, value: Located<String>)]>?
    var workingDir: Located<String>?
    var queue: Located<String>?

    // Pod tasks (KubernetesPodOperator's names).
    var image: Located<String>?
    var namespace: Located<String>?
    var cmds: Located<[Located<String>]>?
    var arguments: Located<[Located<String>]>?
    var envVars: Located<[(key: Located<String>, value: Located<String>)]>?
    var labels: Located<[(key: Located<String>, value: Located<String>)]>?
    var annotations: Located<[(key: Located<String>, value: Located<String>)]>?
    var name: Located<String>?
    var serviceAccountName: Located<String>?
    var imagePullPolicy: Located<String>?
    var containerResources: Located<ContainerResources>?
    var nodeSelector: Located<[(key: Located<String>, value: Located<String>)]>?
    var tolerations: Located<[Located<TolerationFields>]>?
    var onFinishAction: Located<OnFinish>?
    var startupTimeoutSeconds: Located<Int>?
    var getLogs: Located<Bool>?
    var inCluster: Located<Bool>?

    /// Keys that were written but unusable (already reported), so that a
    /// missing-field check does not report them a second time.
    var rejected: Set<String> = []

    /// The keys only pod tasks have.
    static let podKeys: [String] = [
        "image", "namespace", "cmds", "arguments", "env_vars", "labels", "annotations", "name",
        "service_account_name", "image_pull_policy", "container_resources", "node_selector",
        "tolerations", "on_finish_action", "is_delete_operator_pod", "startup_timeout_seconds",
        "get_logs", "in_cluster",
    ]
    /// The keys only agent (process) tasks have.
    static let processKeys: [String] = ["command", "env", "working_dir", "queue"]
    /// The keys every task may have.
    static let commonKeys: [String] = [
        "owner", "executor", "retries", "retry_delay", "retry_exponential_backoff", "max_retry_delay",
        "execution_timeout", "depends_on_past", "trigger_rule", "priority_weight", "weight_rule", "pool", "pool_slots",
        "sla", "executor_config",
    ]

    enum OnFinish {
        case deletePod, deleteSucceededPod, keepPod
    }

    struct ContainerResources {
        var requests: [(key: Located<String>, value: Located<String>)] = []
        var limits: [(key: Located<String>, value: Located<String>)] = []
    }

    struct TolerationFields {
        var key = ""
        var `operator` = ""
        var value = ""
        var effect = ""
        var seconds: Int?
    }

    /// Which spec kind the fields written here imply: pod keys, process keys,
    /// both (a mistake) or neither.
    var writtenKinds: (pod: Located<String>?, process: Located<String>?) {
        let pod: Located<String>? = image.map { _ in Located(value: "image", mark: image?.mark) }
            ?? firstPodField
        let process: Located<String>? = command.map { _ in Located(value: "command", mark: command?.mark) }
            ?? firstProcessField
        return (pod, process)
    }

    private var firstPodField: Located<String>? {
        let candidates: [(String, Mark?)] = [
            ("namespace", namespace?.mark), ("cmds", cmds?.mark), ("arguments", arguments?.mark),
            ("env_vars", envVars?.mark), ("labels", labels?.mark), ("annotations", annotations?.mark),
            ("name", name?.mark), ("service_account_name", serviceAccountName?.mark),
            ("image_pull_policy", imagePullPolicy?.mark), ("container_resources", containerResources?.mark),
            ("node_selector", nodeSelector?.mark), ("tolerations", tolerations?.mark),
            ("on_finish_action", onFinishAction?.mark), ("startup_timeout_seconds", startupTimeoutSeconds?.mark),
            ("get_logs", getLogs?.mark), ("in_cluster", inCluster?.mark),
        ]
        return candidates.first { $0.1 != nil }.map { Located(value: $0.0, mark: $0.1) }
    }

    private var firstProcessField: Located<String>? {
        let candidates: [(String, Mark?)] = [("env", env?.mark), ("working_dir", workingDir?.mark), ("queue", queue?.mark)]
        return candidates.first { $0.1 != nil }.map { Located(value: $0.0, mark: $0.1) }
    }

    /// Reads every task field from `reader`, reporting type problems.
    init(reading reader: YAMLFieldReader, problems: ProblemCollector) {
        defer { rejected = reader.rejected }
        owner = reader.string("owner")
        executor = reader.string("executor")
        retries = reader.int("retries", in: 0...1_000)
        retryDelay = reader.duration("retry_delay")
        retryExponentialBackoff = reader.bool("retry_exponential_backoff")
        maxRetryDelay = reader.duration("max_retry_delay")
        executionTimeout = reader.duration("execution_timeout")
        dependsOnPast = reader.bool("depends_on_past")
        triggerRule = reader.oneOf("trigger_rule", TriggerRule.allCases.map { ($0.rawValue, $0) })
        priorityWeight = reader.int("priority_weight", in: -1_000_000...1_000_000)
        weightRule = reader.oneOf("weight_rule", WeightRule.allCases.map { ($0.rawValue, $0) })
        pool = reader.string("pool")
        poolSlots = reader.int("pool_slots", in: 1...10_000)
        sla = reader.duration("sla")
        if let node = reader.node("executor_config") {
            if case .mapping = node {
                do {
                    executorConfig = Located(value: try YAMLJSON.json(node), mark: node.mark)
                } catch {
                    problems.add(at: error.mark ?? node.mark, task: reader.task, field: reader.fieldName("executor_config"), error.message)
                }
            } else {
                reader.report(node, "executor_config", "must be a mapping, not \(node.kindDescription)")
            }
        }

        command = reader.stringList("command")
        env = reader.stringMap("env")
        workingDir = reader.string("working_dir")
        queue = reader.string("queue")

        image = reader.string("image")
        namespace = reader.string("namespace")
        cmds = reader.stringList("cmds")
        arguments = reader.stringList("arguments")
        envVars = reader.stringMap("env_vars")
        labels = reader.stringMap("labels")
        annotations = reader.stringMap("annotations")
        name = reader.string("name")
        serviceAccountName = reader.string("service_account_name")
        imagePullPolicy = reader.oneOf("image_pull_policy", [("Always", "Always"), ("IfNotPresent", "IfNotPresent"), ("Never", "Never")])
        nodeSelector = reader.stringMap("node_selector")
        startupTimeoutSeconds = reader.int("startup_timeout_seconds", in: 1...86_400)
        getLogs = reader.bool("get_logs")
        inCluster = reader.bool("in_cluster")

        let action = reader.oneOf("on_finish_action", [
            ("delete_pod", OnFinish.deletePod), ("delete_succeeded_pod", .deleteSucceededPod), ("keep_pod", .keepPod),
        ])
        // Airflow's older spelling: is_delete_operator_pod: false keeps the pod.
        let legacy = reader.bool("is_delete_operator_pod")
        if let legacy {
            let implied: OnFinish = legacy.value ? .deletePod : .keepPod
            if let action, action.value != implied {
                reader.report(reader.node("is_delete_operator_pod"), "is_delete_operator_pod",
                              "contradicts on_finish_action; keep only on_finish_action (is_delete_operator_pod is its older spelling)")
            }
            onFinishAction = action ?? Located(value: implied, mark: legacy.mark)
        } else {
            onFinishAction = action
        }

        if let node = reader.node("container_resources") {
            let resources = YAMLFieldReader(node, what: "container_resources", problems: problems, task: reader.task, prefix: reader.fieldName("container_resources") + ".")
            var value = ContainerResources()
            value.requests = resources.stringMap("requests")?.value ?? []
            value.limits = resources.stringMap("limits")?.value ?? []
            resources.reportUnknownKeys()
            if resources.mapping != nil { containerResources = Located(value: value, mark: node.mark) }
        }

        if let node = reader.node("tolerations") {
            if case .sequence(let sequence) = node {
                var items: [Located<TolerationFields>] = []
                for (position, item) in sequence.enumerated() {
                    let fields = YAMLFieldReader(item, what: "a toleration", problems: problems, task: reader.task, prefix: "\(reader.fieldName("tolerations"))[\(position)].")
                    var toleration = TolerationFields()
                    toleration.key = fields.string("key")?.value ?? ""
                    toleration.operator = fields.oneOf("operator", [("Exists", "Exists"), ("Equal", "Equal")])?.value ?? "Equal"
                    toleration.value = fields.string("value")?.value ?? ""
                    toleration.effect = fields.oneOf("effect", [("NoSchedule", "NoSchedule"), ("PreferNoSchedule", "PreferNoSchedule"), ("NoExecute", "NoExecute")])?.value ?? ""
                    toleration.seconds = fields.int("toleration_seconds", in: 0...Int(Int32.max))?.value
                    if toleration.seconds != nil, toleration.effect != "NoExecute" {
                        fields.report(fields.node("toleration_seconds"), "toleration_seconds", "only applies to effect NoExecute")
                    }
                    if toleration.operator == "Exists", !toleration.value.isEmpty {
                        fields.report(fields.node("value"), "value", "must be empty when operator is Exists")
                    }
                    if toleration.key.isEmpty, toleration.operator != "Exists" {
                        fields.report(item, "key", "an empty key needs operator Exists (it then tolerates every taint)")
                    }
                    fields.reportUnknownKeys()
                    if fields.mapping != nil { items.append(Located(value: toleration, mark: item.mark)) }
                }
                tolerations = Located(value: items, mark: node.mark)
            } else {
                reader.report(node, "tolerations", "must be a list of tolerations, not \(node.kindDescription)")
            }
        }
    }

    /// Fills every field the task leaves out from `defaults` (`default_args`).
    /// Fields of the other spec kind are not inherited: a `namespace` in
    /// `default_args` does not turn an agent task into a pod task.
    mutating func inherit(from defaults: TaskFields, kind: BuiltInExecutor.SpecKind?) {
        func take<Value>(_ path: WritableKeyPath<TaskFields, Value?>) {
            if self[keyPath: path] == nil { self[keyPath: path] = defaults[keyPath: path] }
        }
        take(\.owner); take(\.executor); take(\.retries); take(\.retryDelay); take(\.retryExponentialBackoff)
        take(\.maxRetryDelay); take(\.executionTimeout); take(\.dependsOnPast); take(\.triggerRule)
        take(\.priorityWeight); take(\.weightRule); take(\.pool); take(\.poolSlots); take(\.sla); take(\.executorConfig)
        if kind != .pod {
            take(\.command); take(\.env); take(\.workingDir); take(\.queue)
        }
        if kind != .process {
            take(\.image); take(\.namespace); take(\.cmds); take(\.arguments); take(\.envVars); take(\.labels)
            take(\.annotations); take(\.name); take(\.serviceAccountName); take(\.imagePullPolicy)
            take(\.containerResources); take(\.nodeSelector); take(\.tolerations); take(\.onFinishAction)
            take(\.startupTimeoutSeconds); take(\.getLogs); take(\.inCluster)
        }
        rejected.formUnion(defaults.rejected)
    }
}
