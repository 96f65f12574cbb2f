@testable import TrellisCore

/// A second, independently written reading of Airflow's trigger rules
/// (`airflow/ti_deps/deps/trigger_rule_dep.py`), phrased as "any upstream
/// in …" / "all upstream in …" over the list of states instead of counters.
/// The property tests and the exhaustive trigger-rule test compare the
/// production code against it.
enum ReferenceTriggerRule {
    static func decide(_ rule: TriggerRule, _ states: [TaskState]) -> TriggerDecision {
        // Removed tasks are not part of the DAG version any more.
        let upstream = states.filter { $0 != .removed }
        if upstream.isEmpty || rule == .always { return .run }

        func any(_ set: Set<TaskState>) -> Bool { upstream.contains { set.contains($0) } }
        func all(_ set: Set<TaskState>) -> Bool { upstream.allSatisfy { set.contains($0) } }
        let failedLike: Set<TaskState> = [.failed, .upstreamFailed]
        let finished: Set<TaskState> = [.success, .failed, .upstreamFailed, .skipped]

        switch rule {
        case .always:
            return .run
        case .allSuccess:
            if any(failedLike) { return .upstreamFailed }
            if any([.skipped]) { return .skip }
            return all([.success]) ? .run : .wait
        case .allFailed:
            if any([.success, .skipped]) { return .skip }
            return all(failedLike) ? .run : .wait
        case .allDone:
            return all(finished) ? .run : .wait
        case .oneSuccess:
            if any([.success]) { return .run }
            if !all(finished) { return .wait }
            return all([.skipped]) ? .skip : .upstreamFailed
        case .oneFailed:
            if any(failedLike) { return .run }
            return all(finished) ? .skip : .wait
        case .oneDone:
            if any([.success, .failed]) { return .run }
            return all(finished) ? .skip : .wait
        case .noneFailed:
            if any(failedLike) { return .upstreamFailed }
            return all([.success, .skipped]) ? .run : .wait
        case .noneFailedMinOneSuccess:
            if any(failedLike) { return .upstreamFailed }
            if all([.skipped]) { return .skip }
            return all([.success, .skipped]) ? .run : .wait
        case .noneSkipped:
            if any([.skipped]) { return .skip }
            return all(finished) ? .run : .wait
        }
    }
}
