import Foundation
import PodPerTask
import TrellisPluginKit
import TrellisPluginSDK

/// Reading TaskAssignments (C SDK) into PodTasks.
enum Messages {
    static let string = PluginMessages.string

    /// A pod task from an assignment, or why the assignment cannot run here.
    static func podTask(_ assignment: UnsafePointer<Trellis__V1__TaskAssignment>, executor: String) -> Result<PodTask, SettingsError> {
        let value = assignment.pointee
        guard let attempt = value.attempt, !string(attempt.pointee.attempt_id).isEmpty else {
            return .failure(SettingsError("\(executor): the assignment names no attempt (TaskAssignment.attempt.attempt_id is empty)"))
        }
        var task = PodTask(
            attemptID: string(attempt.pointee.attempt_id), fencingToken: attempt.pointee.fencing_token,
            dagID: string(value.dag_id), runID: string(value.run_id), taskID: string(value.task_id), tryNumber: Int(value.try_number))
        if let logical = value.logical_date?.pointee.unix_micros, logical != 0 {
            task.logicalDate = rfc3339(micros: logical)
        }
        guard let spec = value.task?.pointee else {
            return .failure(SettingsError("\(executor): the assignment of \(task.described) carries no task spec"))
        }
        if spec.spec_case == TRELLIS__V1__TASK_SPEC__SPEC_PROCESS {
            return .failure(SettingsError("\(executor) runs pod tasks only: \(task.described) is a process task (give it an image, or run it with executor persistent-pool)"))
        }
        guard spec.spec_case == TRELLIS__V1__TASK_SPEC__SPEC_POD, let pod = spec.pod?.pointee else {
            return .failure(SettingsError("\(executor) runs pod tasks only: \(task.described) has no pod spec (no image)"))
        }
        task.image = string(pod.image)
        guard !task.image.isEmpty else {
            return .failure(SettingsError("\(executor): \(task.described) has no image"))
        }
        task.namespace = string(pod.namespace_)
        task.cmds = strings(pod.cmds, pod.n_cmds)
        task.arguments = strings(pod.arguments, pod.n_arguments)
        for index in 0..<pod.n_env_vars {
            guard let variable = pod.env_vars?[index]?.pointee else { continue }
            task.env.append((string(variable.name), string(variable.value)))
        }
        task.labels = entries(pod.labels, pod.n_labels) { ($0.key, $0.value) }
        task.annotations = entries(pod.annotations, pod.n_annotations) { ($0.key, $0.value) }
        task.nodeSelector = entries(pod.node_selector, pod.n_node_selector) { ($0.key, $0.value) }
        task.name = string(pod.name)
        task.serviceAccountName = string(pod.service_account_name)
        task.imagePullPolicy = string(pod.image_pull_policy)
        if let resources = pod.container_resources?.pointee {
            task.requests = entries(resources.requests, resources.n_requests) { ($0.key, $0.value) }
            task.limits = entries(resources.limits, resources.n_limits) { ($0.key, $0.value) }
        }
        for index in 0..<pod.n_tolerations {
            guard let toleration = pod.tolerations?[index]?.pointee else { continue }
            var made = PodTask.Toleration()
            made.key = string(toleration.key)
            made.operator = string(toleration.operator_)
            made.value = string(toleration.value)
            made.effect = string(toleration.effect)
            if toleration.toleration_seconds_presence_case == TRELLIS__V1__TOLERATION__TOLERATION_SECONDS_PRESENCE_TOLERATION_SECONDS {
                made.tolerationSeconds = Int(toleration.toleration_seconds)
            }
            task.tolerations.append(made)
        }
        task.onFinish = switch pod.on_finish_action {
        case TRELLIS__V1__ON_FINISH_ACTION__ON_FINISH_ACTION_KEEP_POD: .keepPod
        case TRELLIS__V1__ON_FINISH_ACTION__ON_FINISH_ACTION_DELETE_SUCCEEDED_POD: .deleteSucceededPod
        default: .deletePod
        }
        task.startupTimeoutSeconds = Int(pod.startup_timeout_seconds)
        task.getLogs = pod.get_logs != 0
        return .success(task)
    }

    private static func strings(_ pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ count: Int) -> [String] {
        (0..<count).map { string(pointer?[$0]) }
    }

    private static func entries<Entry>(
        _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<Entry>?>?, _ count: Int,
        _ pair: (Entry) -> (UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<CChar>?)
    ) -> [String: String] {
        var result: [String: String] = [:]
        for index in 0..<count {
            guard let entry = pointer?[index]?.pointee else { continue }
            let (key, value) = pair(entry)
            result[string(key)] = string(value)
        }
        return result
    }

    static func rfc3339(micros: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: Double(micros) / 1_000_000))
    }

    /// Microseconds since the epoch of an RFC 3339 time from the API.
    static func micros(rfc3339 text: String?) -> Int64? {
        guard let text else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970 * 1_000_000) }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text).map { Int64($0.timeIntervalSince1970 * 1_000_000) }
    }
}
