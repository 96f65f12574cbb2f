import TrellisProto
import Yams

/// Turns one task's merged fields into its stored `TaskSpec`: picks the spec
/// kind from the executor, applies Airflow's defaults, and checks what the
/// executor will need (an image, a command, names Kubernetes accepts).
struct TaskResolver {
    let problems: ProblemCollector
    let task: YAMLFieldReader
    let options: DagFile.Options

    /// The executor a task runs on: its own, else default_args', else the
    /// deployment's default.
    private func executorName(_ own: TaskFields, _ defaults: TaskFields?) -> Located<String>? {
        own.executor ?? defaults?.executor ?? options.defaultExecutor.map { Located(value: $0, mark: nil) }
    }

    /// The spec kind, decided before default_args are merged so that
    /// defaults of the other kind are not inherited. nil when nothing
    /// decides it (reported by `resolve`).
    func kind(own: TaskFields, defaults: TaskFields?) -> BuiltInExecutor.SpecKind? {
        if let name = executorName(own, defaults), let builtIn = BuiltInExecutor(rawValue: name.value) {
            return builtIn.specKind
        }
        let written = own.writtenKinds
        if written.pod != nil, written.process == nil { return .pod }
        if written.process != nil, written.pod == nil { return .process }
        if written.pod == nil, written.process == nil, let defaults {
            let inherited = defaults.writtenKinds
            if inherited.pod != nil, inherited.process == nil { return .pod }
            if inherited.process != nil, inherited.pod == nil { return .process }
        }
        return nil
    }

    /// Fills `spec` from `fields`; returns the task's templated strings, or
    /// nil when the spec is unusable (problems recorded).
    func resolve(_ fields: TaskFields, kind: BuiltInExecutor.SpecKind?, into spec: inout Trellis_V1_TaskSpec) -> [(field: String, text: Located<String>)]? {
        spec.owner = fields.owner?.value ?? AirflowDefaults.owner
        spec.retries = Int32(fields.retries?.value ?? AirflowDefaults.retries)
        spec.retryDelay = .with { $0.millis = fields.retryDelay?.value ?? AirflowDefaults.retryDelayMillis }
        spec.retryExponentialBackoff = fields.retryExponentialBackoff?.value ?? false
        if let cap = fields.maxRetryDelay {
            if cap.value == 0 { report(cap.mark, "max_retry_delay", "must be longer than 0s") }
            spec.maxRetryDelay = .with { $0.millis = cap.value }
        }
        if let timeout = fields.executionTimeout {
            if timeout.value == 0 { report(timeout.mark, "execution_timeout", "must be longer than 0s; leave it out for no timeout") }
            spec.executionTimeout = .with { $0.millis = timeout.value }
        }
        if let sla = fields.sla {
            if sla.value == 0 { report(sla.mark, "sla", "must be longer than 0s") }
            spec.sla = .with { $0.millis = sla.value }
        }
        spec.dependsOnPast = fields.dependsOnPast?.value ?? false
        spec.triggerRule = (fields.triggerRule?.value ?? AirflowDefaults.triggerRule).proto
        spec.priorityWeight = Int32(fields.priorityWeight?.value ?? AirflowDefaults.priorityWeight)
        spec.weightRule = (fields.weightRule?.value ?? AirflowDefaults.weightRule).proto
        if let pool = fields.pool, let problem = identifierProblem(pool.value, what: "pool") {
            report(pool.mark, "pool", problem)
        }
        spec.pool = fields.pool?.value ?? AirflowDefaults.pool
        spec.poolSlots = Int32(fields.poolSlots?.value ?? AirflowDefaults.poolSlots)
        spec.executorConfigJson = fields.executorConfig?.value ?? ""

        let executor = executorName(fields, nil)
        if let executor {
            if let problem = BuiltInExecutor.nameProblem(executor.value) {
                report(executor.mark, "executor", "is not a valid executor name: \(problem)")
            }
            spec.executor = executor.value
        }
        let builtIn = executor.flatMap { BuiltInExecutor(rawValue: $0.value) }

        // The task's own fields of the other kind are mistakes.
        let written = fields.writtenKinds
        switch kind {
        case .pod?:
            if let stray = written.process {
                report(stray.mark, stray.value, "is a field of agent tasks, but this task runs in a pod (\(builtIn?.rawValue ?? "its image decides")); pod tasks use cmds and arguments")
            }
            return resolvePod(fields, into: &spec)
        case .process?:
            if let stray = written.pod {
                report(stray.mark, stray.value, "is a field of pod-per-task tasks, but this task runs on an agent (\(builtIn?.rawValue ?? "its command decides"))")
            }
            return resolveProcess(fields, into: &spec)
        case nil:
            if let pod = written.pod, let process = written.process {
                report(pod.mark, pod.value, "the task mixes pod fields ('\(pod.value)') and agent fields ('\(process.value)'); name its executor and keep one kind")
                return nil
            }
            if executor != nil, fields.executorConfig != nil { return [] }
            report(task.mark, nil, executor == nil
                ? "names no executor and has neither 'command' (agent executors) nor 'image' (pod-per-task); say what to run"
                : "executor '\(executor!.value)' is not built in; give it 'executor_config', or 'command' or 'image'")
            return nil
        }
    }

    private func resolveProcess(_ fields: TaskFields, into spec: inout Trellis_V1_TaskSpec) -> [(field: String, text: Located<String>)] {
        var templated: [(field: String, text: Located<String>)] = []
        var process = Trellis_V1_ProcessTaskSpec()
        if let command = fields.command {
            if command.value.isEmpty { report(command.mark, "command", "must not be empty; it is the argv of the task's process") }
            process.command = command.value.map(\.value)
            for (position, argument) in command.value.enumerated() { templated.append(("command[\(position)]", argument)) }
        } else if !fields.rejected.contains("command") {
            report(task.mark, "command", "is required: the argv the agent runs, e.g. [python, etl.py, \"{{ ds }}\"]")
        }
        for (name, value) in fields.env?.value ?? [] {
            if let problem = posixEnvNameProblem(name.value) { report(name.mark, "env.\(name.value)", problem) }
            process.env.append(.with { $0.name = name.value; $0.value = value.value })
            templated.append(("env.\(name.value)", value))
        }
        if let directory = fields.workingDir {
            if directory.value.isEmpty { report(directory.mark, "working_dir", "must not be empty") }
            process.workingDir = directory.value
        }
        if let queue = fields.queue {
            do {
                process.queue = try QueueSelector.normalized(queue.value)
            } catch {
                report(queue.mark, "queue", error.message)
            }
        }
        spec.process = process
        return templated
    }

    private func resolvePod(_ fields: TaskFields, into spec: inout Trellis_V1_TaskSpec) -> [(field: String, text: Located<String>)] {
        var templated: [(field: String, text: Located<String>)] = []
        var pod = Trellis_V1_PodTaskSpec()
        if let image = fields.image {
            if image.value.isEmpty || image.value.contains(where: \.isWhitespace) {
                report(image.mark, "image", "'\(image.value)' is not an image reference (example: ubuntu:22.04)")
            }
            pod.image = image.value
        } else if !fields.rejected.contains("image") {
            report(task.mark, "image", "is required for pod-per-task tasks (example: image: ubuntu:22.04)")
        }
        if let namespace = fields.namespace {
            check(namespace, "namespace", KubernetesNames.dns1123LabelProblem)
            pod.namespace = namespace.value
        }
        pod.cmds = fields.cmds?.value.map(\.value) ?? []
        for (position, item) in (fields.cmds?.value ?? []).enumerated() { templated.append(("cmds[\(position)]", item)) }
        pod.arguments = fields.arguments?.value.map(\.value) ?? []
        for (position, item) in (fields.arguments?.value ?? []).enumerated() { templated.append(("arguments[\(position)]", item)) }
        for (name, value) in fields.envVars?.value ?? [] {
            if let problem = KubernetesNames.envVarNameProblem(name.value) { report(name.mark, "env_vars.\(name.value)", problem) }
            pod.envVars.append(.with { $0.name = name.value; $0.value = value.value })
            templated.append(("env_vars.\(name.value)", value))
        }
        pod.labels = labelMap(fields.labels, "labels", valueCheck: KubernetesNames.labelValueProblem)
        pod.annotations = labelMap(fields.annotations, "annotations", valueCheck: { _ in nil })
        pod.nodeSelector = labelMap(fields.nodeSelector, "node_selector", valueCheck: KubernetesNames.labelValueProblem)
        if let name = fields.name {
            // Room for the "-" and 8-character suffix added at run time.
            check(name, "name") { KubernetesNames.dns1123SubdomainProblem($0, maxLength: 253 - 9) }
            pod.name = name.value
        }
        if let account = fields.serviceAccountName {
            check(account, "service_account_name") { KubernetesNames.dns1123SubdomainProblem($0) }
            pod.serviceAccountName = account.value
        }
        pod.imagePullPolicy = fields.imagePullPolicy?.value ?? ""
        if let resources = fields.containerResources {
            var requirements = Trellis_V1_ResourceRequirements()
            requirements.requests = quantities(resources.value.requests, "container_resources.requests")
            requirements.limits = quantities(resources.value.limits, "container_resources.limits")
            pod.containerResources = requirements
        }
        pod.tolerations = (fields.tolerations?.value ?? []).map { toleration in
            .with {
                $0.key = toleration.value.key
                $0.operator = toleration.value.operator
                $0.value = toleration.value.value
                $0.effect = toleration.value.effect
                if let seconds = toleration.value.seconds { $0.tolerationSeconds = Int64(seconds) }
            }
        }
        pod.onFinishAction = switch fields.onFinishAction?.value ?? .deletePod {
        case .deletePod: .deletePod
        case .deleteSucceededPod: .deleteSucceededPod
        case .keepPod: .keepPod
        }
        pod.startupTimeoutSeconds = Int32(fields.startupTimeoutSeconds?.value ?? AirflowDefaults.startupTimeoutSeconds)
        pod.getLogs = fields.getLogs?.value ?? true
        pod.inCluster = fields.inCluster?.value ?? false
        spec.pod = pod
        return templated
    }

    // MARK: Helpers

    private func report(_ mark: Mark?, _ field: String?, _ message: String) {
        problems.add(at: mark ?? task.mark, task: taskLabel, field: field, message)
    }

    private var taskLabel: String? {
        if case .scalar(let scalar)? = task["task_id"] { return scalar.string }
        return nil
    }

    private func check(_ value: Located<String>, _ field: String, _ rule: (String) -> String?) {
        if let problem = rule(value.value) { report(value.mark, field, problem) }
    }

    private func labelMap(
        _ pairs: Located<[(key: Located<String>, value: Located<String>)]>?, _ field: String,
        valueCheck: (String) -> String?
    ) -> [String: String] {
        var map: [String: String] = [:]
        for (key, value) in pairs?.value ?? [] {
            if let problem = KubernetesNames.qualifiedNameProblem(key.value) { report(key.mark, "\(field).\(key.value)", problem) }
            if let problem = valueCheck(value.value) { report(value.mark, "\(field).\(key.value)", problem) }
            map[key.value] = value.value
        }
        return map
    }

    private func quantities(_ pairs: [(key: Located<String>, value: Located<String>)], _ field: String) -> [String: String] {
        var map: [String: String] = [:]
        for (key, value) in pairs {
            if let problem = KubernetesNames.qualifiedNameProblem(key.value) { report(key.mark, "\(field).\(key.value)", problem) }
            if let problem = KubernetesNames.quantityProblem(value.value) { report(value.mark, "\(field).\(key.value)", problem) }
            map[key.value] = value.value
        }
        return map
    }

    private func posixEnvNameProblem(_ name: String) -> String? {
        let scalars = Array(name.unicodeScalars)
        let valid = !scalars.isEmpty && !("0"..."9").contains(scalars[0]) && scalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_")
        }
        return valid ? nil : "'\(name)' is not a valid environment variable name: use letters, digits and '_', not starting with a digit"
    }
}

/// A task's `queue`: which agents may run it. Either a bare name (`gpu`,
/// meaning agents labelled `queue=gpu`, as Celery users expect) or a
/// Kubernetes-style equality selector (`zone=eu,gpu=true`).
public enum QueueSelector {
    /// The selector in its stored form, `k=v` pairs joined by commas.
    public static func normalized(_ text: String) throws(CoreError) -> String {
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw CoreError(.invalidDag, "must not be empty") }
        if !trimmed.contains("=") && !trimmed.contains(",") {
            if let problem = KubernetesNames.labelValueProblem(trimmed) { throw CoreError(.invalidDag, problem) }
            return "queue=\(trimmed)"
        }
        var pairs: [String] = []
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
            guard pieces.count == 2 else {
                throw CoreError(.invalidDag, "'\(part)' in \"\(text)\" is not key=value (write a queue name, or k=v pairs separated by commas)")
            }
            if let problem = KubernetesNames.qualifiedNameProblem(pieces[0]) ?? KubernetesNames.labelValueProblem(pieces[1]) {
                throw CoreError(.invalidDag, "'\(part)' in \"\(text)\": \(problem)")
            }
            pairs.append("\(pieces[0])=\(pieces[1])")
        }
        return pairs.joined(separator: ",")
    }
}
