public import TrellisProto

/// When a task may run, given the states of its direct upstream tasks.
/// The raw values are Airflow's spellings, as written in DAG files.
public enum TriggerRule: String, CaseIterable, Sendable, Hashable, Codable {
    case allSuccess = "all_success"
    case allFailed = "all_failed"
    case allDone = "all_done"
    case oneSuccess = "one_success"
    case oneFailed = "one_failed"
    case oneDone = "one_done"
    case noneFailed = "none_failed"
    case noneSkipped = "none_skipped"
    case noneFailedMinOneSuccess = "none_failed_min_one_success"
    case always
}

extension TriggerRule {
    public init(_ proto: Trellis_V1_TriggerRule) throws(CoreError) {
        switch proto {
        case .allSuccess: self = .allSuccess
        case .allFailed: self = .allFailed
        case .allDone: self = .allDone
        case .oneSuccess: self = .oneSuccess
        case .oneFailed: self = .oneFailed
        case .oneDone: self = .oneDone
        case .noneFailed: self = .noneFailed
        case .noneSkipped: self = .noneSkipped
        case .noneFailedMinOneSuccess: self = .noneFailedMinOneSuccess
        case .always: self = .always
        case .UNRECOGNIZED(let value):
            throw CoreError(.unknownEnumValue, "unknown trigger rule \(value)")
        }
    }

    public var proto: Trellis_V1_TriggerRule {
        switch self {
        case .allSuccess: .allSuccess
        case .allFailed: .allFailed
        case .allDone: .allDone
        case .oneSuccess: .oneSuccess
        case .oneFailed: .oneFailed
        case .oneDone: .oneDone
        case .noneFailed: .noneFailed
        case .noneSkipped: .noneSkipped
        case .noneFailedMinOneSuccess: .noneFailedMinOneSuccess
        case .always: .always
        }
    }
}
