public import TrellisProto

/// The state of one task instance, with Airflow's names.
///
/// The raw values are what the `task_instance.state` column stores and what
/// users see, so tools written for Airflow (the KEDA query among them) read
/// them unchanged.
public enum TaskState: String, CaseIterable, Sendable, Hashable, Codable {
    /// Not yet considered by the scheduler (Airflow's NULL).
    case none
    case scheduled
    case queued
    case running
    case success
    case failed
    case upForRetry = "up_for_retry"
    case upstreamFailed = "upstream_failed"
    case skipped
    /// The task no longer exists in the DAG version the run uses.
    case removed

    /// Terminal states: the task instance will not change again unless a
    /// user clears it.
    public var isFinished: Bool {
        switch self {
        case .success, .failed, .upstreamFailed, .skipped, .removed: true
        case .none, .scheduled, .queued, .running, .upForRetry: false
        }
    }

    /// A slot is taken: the task was handed to an executor.
    public var isActive: Bool { self == .queued || self == .running }
}

extension TaskState {
    public init(_ proto: Trellis_V1_TaskState) throws(CoreError) {
        switch proto {
        case .none: self = .none
        case .scheduled: self = .scheduled
        case .queued: self = .queued
        case .running: self = .running
        case .success: self = .success
        case .failed: self = .failed
        case .upForRetry: self = .upForRetry
        case .upstreamFailed: self = .upstreamFailed
        case .skipped: self = .skipped
        case .removed: self = .removed
        case .UNRECOGNIZED(let value):
            throw CoreError(.unknownEnumValue, "unknown task state \(value)")
        }
    }

    public var proto: Trellis_V1_TaskState {
        switch self {
        case .none: .none
        case .scheduled: .scheduled
        case .queued: .queued
        case .running: .running
        case .success: .success
        case .failed: .failed
        case .upForRetry: .upForRetry
        case .upstreamFailed: .upstreamFailed
        case .skipped: .skipped
        case .removed: .removed
        }
    }
}
