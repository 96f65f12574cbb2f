public import TrellisKube

/// Builds the Pod of one attempt from the task's KubernetesPodOperator
/// fields and the executor's defaults.
public enum PodBuilder {
    /// Labels Trellis puts on every pod it makes; the executor finds its pods
    /// by them (watch, adoption after a restart).
    public enum Label {
        public static let executor = "trellis.dev/executor"
        public static let attempt = "trellis.dev/attempt"
        public static let managedBy = "app.kubernetes.io/managed-by"
        // The labels Airflow's KubernetesExecutor sets, label-safe.
        public static let dagID = "dag_id"
        public static let taskID = "task_id"
        public static let runID = "run_id"
        public static let tryNumber = "try_number"
    }

    public enum Annotation {
        /// The ids unabridged (labels may be shortened to fit).
        public static let dagID = "trellis.dev/dag-id"
        public static let taskID = "trellis.dev/task-id"
        public static let runID = "trellis.dev/run-id"
        public static let fencingToken = "trellis.dev/fencing-token"
    }

    /// The one container's name, as KubernetesPodOperator names it.
    public static let containerName = "base"

    public static func namespace(of task: PodTask, settings: PodSettings, fallback: String?) -> String {
        if !task.namespace.isEmpty { return task.namespace }
        if !settings.namespace.isEmpty { return settings.namespace }
        return fallback ?? "default"
    }

    /// The label selector of every pod an executor made.
    public static func selector(executor: String) -> String { "\(Label.executor)=\(executor)" }

    public static func build(_ task: PodTask, settings: PodSettings, executor: String, namespace: String, suffix: String) -> Pod {
        var labels = settings.extraLabels
        labels.merge(task.labels) { _, task in task }
        labels.merge([
            Label.dagID: PodNames.safeLabelValue(task.dagID),
            Label.taskID: PodNames.safeLabelValue(task.taskID),
            Label.runID: PodNames.safeLabelValue(task.runID),
            Label.tryNumber: String(task.tryNumber),
            Label.attempt: PodNames.safeLabelValue(task.attemptID),
            Label.executor: PodNames.safeLabelValue(executor),
            Label.managedBy: "trellis",
        ]) { _, ours in ours }
        var annotations = task.annotations
        annotations.merge([
            Annotation.dagID: task.dagID, Annotation.taskID: task.taskID, Annotation.runID: task.runID,
            Annotation.fencingToken: String(task.fencingToken),
        ]) { _, ours in ours }

        var container = Container(name: containerName, image: task.image)
        if !task.cmds.isEmpty { container.command = task.cmds }
        if !task.arguments.isEmpty { container.args = task.arguments }
        var environment = [
            EnvVar(name: "TRELLIS_DAG_ID", value: task.dagID),
            EnvVar(name: "TRELLIS_RUN_ID", value: task.runID),
            EnvVar(name: "TRELLIS_TASK_ID", value: task.taskID),
            EnvVar(name: "TRELLIS_TRY_NUMBER", value: String(task.tryNumber)),
        ]
        if !task.logicalDate.isEmpty { environment.append(EnvVar(name: "TRELLIS_LOGICAL_DATE", value: task.logicalDate)) }
        environment += task.env.map { EnvVar(name: $0.name, value: $0.value) }
        container.env = environment
        let pullPolicy = task.imagePullPolicy.isEmpty ? settings.imagePullPolicy : task.imagePullPolicy
        if !pullPolicy.isEmpty { container.imagePullPolicy = pullPolicy }
        if !task.requests.isEmpty || !task.limits.isEmpty {
            container.resources = ResourceRequirements(
                requests: task.requests.isEmpty ? nil : task.requests, limits: task.limits.isEmpty ? nil : task.limits)
        }

        var spec = PodSpec(containers: [container])
        spec.restartPolicy = "Never"
        let account = task.serviceAccountName.isEmpty ? settings.serviceAccount : task.serviceAccountName
        if !account.isEmpty { spec.serviceAccountName = account }
        if !task.nodeSelector.isEmpty { spec.nodeSelector = task.nodeSelector }
        if !task.tolerations.isEmpty {
            spec.tolerations = task.tolerations.map {
                Toleration(
                    key: $0.key.isEmpty ? nil : $0.key, operator: $0.operator.isEmpty ? nil : $0.operator,
                    value: $0.value.isEmpty ? nil : $0.value, effect: $0.effect.isEmpty ? nil : $0.effect,
                    tolerationSeconds: $0.tolerationSeconds)
            }
        }
        if let user = settings.runAsUser { spec.securityContext = PodSecurityContext(runAsUser: user) }

        let name = PodNames.podName(prefix: task.name.isEmpty ? task.taskID : task.name, suffix: suffix)
        return Pod(metadata: ObjectMeta(name: name, namespace: namespace, labels: labels, annotations: annotations), spec: spec)
    }
}
