public import TrellisKube

/// What a Pod's status means for its task: still starting, running, or
/// ended (and how). Pure: the executor feeds it every Pod the watch sends.
public enum PodAssessment: Sendable, Equatable {
    /// Not running yet; `waitingFor` says on what (ContainerCreating,
    /// Unschedulable, ...), for messages.
    case starting(waitingFor: String)
    case running(node: String)
    case ended(PodEnding)

    /// Waiting reasons that never resolve by themselves: the task fails at
    /// once instead of sitting Pending until a timeout (apache/airflow#12264).
    public static let fatalWaitingReasons: Set<String> = [
        "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
        "CreateContainerConfigError", "CreateContainerError",
    ]

    /// `startupExpired`: the task's startup_timeout_seconds have passed since
    /// the pod was created.
    public static func assess(_ pod: Pod, startupExpired: Bool, startupTimeoutSeconds: Int) -> PodAssessment {
        let status = pod.status
        let container = status?.containerStatuses?.first { $0.name == PodBuilder.containerName } ?? status?.containerStatuses?.first
        let phase = status?.phase ?? "Pending"

        if let terminated = container?.state?.terminated, phase != "Running" || terminated.finishedAt != nil {
            return .ended(ending(terminated, pod: pod))
        }
        switch phase {
        case "Succeeded":
            return .ended(PodEnding(succeeded: true, exitCode: 0, reason: "Completed", message: "pod \(pod.name) succeeded", finishedAt: nil))
        case "Failed":
            let reason = status?.reason ?? "Failed"
            return .ended(PodEnding(
                succeeded: false, exitCode: nil, reason: reason,
                message: "pod \(pod.name) failed (\(reason))\(status?.message.map { ": \($0)" } ?? "")", finishedAt: nil))
        case "Running":
            return .running(node: pod.spec?.nodeName ?? "")
        default:
            break
        }
        // Pending (or Unknown).
        if let waiting = container?.state?.waiting, let reason = waiting.reason, fatalWaitingReasons.contains(reason) {
            let image = container?.image ?? pod.spec?.containers.first?.image ?? ""
            return .ended(PodEnding(
                succeeded: false, exitCode: nil, reason: reason,
                message: "pod \(pod.name) cannot start: \(reason)\(image.isEmpty ? "" : " for image \(image)")\(waiting.message.map { ": \($0)" } ?? "")",
                finishedAt: nil))
        }
        let unschedulable = status?.conditions?.first { $0.type == "PodScheduled" && $0.status == "False" }
        let waitingFor = unschedulable?.reason ?? container?.state?.waiting?.reason ?? "Pending"
        if startupExpired {
            if let unschedulable {
                return .ended(PodEnding(
                    succeeded: false, exitCode: nil, reason: unschedulable.reason ?? "Unschedulable",
                    message: "pod \(pod.name) was not scheduled within \(startupTimeoutSeconds) s\(unschedulable.message.map { ": \($0)" } ?? "")",
                    finishedAt: nil))
            }
            return .ended(PodEnding(
                succeeded: false, exitCode: nil, reason: "StartupTimeout",
                message: "pod \(pod.name) did not start within \(startupTimeoutSeconds) s (still \(waitingFor))", finishedAt: nil))
        }
        return .starting(waitingFor: waitingFor)
    }

    private static func ending(_ terminated: ContainerStateTerminated, pod: Pod) -> PodEnding {
        let succeeded = terminated.exitCode == 0
        let reason = terminated.reason ?? (succeeded ? "Completed" : "Error")
        var message = succeeded
            ? "container \(PodBuilder.containerName) of pod \(pod.name) completed"
            : "container \(PodBuilder.containerName) of pod \(pod.name) exited with code \(terminated.exitCode) (\(reason))"
        if reason == "OOMKilled" { message += ": it used more memory than its limit" }
        if let detail = terminated.message, !detail.isEmpty { message += ": \(detail)" }
        return PodEnding(succeeded: succeeded, exitCode: terminated.exitCode, reason: reason, message: message, finishedAt: terminated.finishedAt)
    }
}

/// How a pod's task ended.
public struct PodEnding: Sendable, Equatable {
    public var succeeded: Bool
    /// The container's exit code, when it ran.
    public var exitCode: Int32?
    /// Completed, Error, OOMKilled, ErrImagePull, Unschedulable, ...
    public var reason: String
    public var message: String
    /// RFC 3339, from the container's state.
    public var finishedAt: String?

    public init(succeeded: Bool, exitCode: Int32?, reason: String, message: String, finishedAt: String?) {
        self.succeeded = succeeded
        self.exitCode = exitCode
        self.reason = reason
        self.message = message
        self.finishedAt = finishedAt
    }
}
