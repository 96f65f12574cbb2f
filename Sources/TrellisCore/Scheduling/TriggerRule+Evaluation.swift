/// What a task's trigger rule says, given the states of its direct upstream
/// task instances.
public enum TriggerDecision: String, CaseIterable, Sendable, Hashable {
    /// Not decidable yet: upstream tasks the rule needs have not finished.
    case wait
    /// The task may be scheduled (other dependencies permitting).
    case run
    /// The task will never run: mark it `skipped`.
    case skip
    /// The task will never run because of upstream failures: mark it
    /// `upstream_failed`.
    case upstreamFailed = "upstream_failed"
}

/// The states of one task's direct upstream task instances, counted the way
/// Airflow's trigger-rule dependency counts them
/// (`airflow/ti_deps/deps/trigger_rule_dep.py`, `_UpstreamTIStates`).
///
/// Upstream instances in state `removed` are left out altogether: in Airflow a
/// removed task is one missing from the DAG version the run now uses, so it is
/// nobody's upstream any more.
public struct UpstreamStates: Sendable, Hashable {
    /// Relevant (not removed) upstream instances.
    public private(set) var count = 0
    public private(set) var success = 0
    public private(set) var skipped = 0
    public private(set) var failed = 0
    public private(set) var upstreamFailed = 0
    /// Upstream instances in a finished state.
    public private(set) var finished = 0

    public init() {}

    public init(_ states: some Sequence<TaskState>) {
        for state in states { add(state) }
    }

    public mutating func add(_ state: TaskState) {
        switch state {
        case .removed: return
        case .success: success += 1
        case .skipped: skipped += 1
        case .failed: failed += 1
        case .upstreamFailed: upstreamFailed += 1
        case .none, .scheduled, .queued, .running, .upForRetry: break
        }
        count += 1
        if state.isFinished { finished += 1 }
    }

    /// Every relevant upstream instance has finished.
    public var allFinished: Bool { finished == count }
}

extension TriggerRule {
    /// Airflow's `TriggerRuleDep` as the scheduler runs it
    /// (`flag_upstream_failed=True`), transcribed from
    /// `airflow/ti_deps/deps/trigger_rule_dep.py` (`_evaluate_direct_relatives`):
    /// a terminal verdict (`skip`, `upstreamFailed`) is given as soon as the
    /// counts guarantee it, even while other upstream tasks still run, and wins
    /// over a passing status.
    ///
    /// A task without (relevant) upstream tasks, or with rule `always`, runs.
    public func evaluate(_ upstream: UpstreamStates) -> TriggerDecision {
        if upstream.count == 0 { return .run }
        let failures = upstream.failed + upstream.upstreamFailed
        switch self {
        case .always:
            return .run
        case .allSuccess:
            if failures > 0 { return .upstreamFailed }
            if upstream.skipped > 0 { return .skip }
            return upstream.success == upstream.count ? .run : .wait
        case .allFailed:
            if upstream.success + upstream.skipped > 0 { return .skip }
            return failures == upstream.count ? .run : .wait
        case .allDone:
            return upstream.allFinished ? .run : .wait
        case .oneSuccess:
            if upstream.success > 0 { return .run }
            guard upstream.allFinished else { return .wait }
            return upstream.skipped == upstream.count ? .skip : .upstreamFailed
        case .oneFailed:
            if failures > 0 { return .run }
            return upstream.allFinished ? .skip : .wait
        case .oneDone:
            // upstream_failed is not "done" for one_done: only success or failed.
            if upstream.success + upstream.failed > 0 { return .run }
            return upstream.allFinished ? .skip : .wait
        case .noneFailed:
            if failures > 0 { return .upstreamFailed }
            return upstream.success + upstream.skipped == upstream.count ? .run : .wait
        case .noneFailedMinOneSuccess:
            if failures > 0 { return .upstreamFailed }
            if upstream.skipped == upstream.count { return .skip }
            return upstream.success + upstream.skipped == upstream.count ? .run : .wait
        case .noneSkipped:
            if upstream.skipped > 0 { return .skip }
            return upstream.allFinished ? .run : .wait
        }
    }

    /// `evaluate(_:)` over the states of the direct upstream task instances.
    public func evaluate(upstream states: some Sequence<TaskState>) -> TriggerDecision {
        evaluate(UpstreamStates(states))
    }
}
