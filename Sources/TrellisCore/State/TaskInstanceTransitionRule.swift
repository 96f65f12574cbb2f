/// One legal cell of the task-instance state machine: what an event does to an
/// instance in a given state.
///
/// The whole machine is `TaskInstanceTransitionRule.table`, plain data that
/// tests enumerate: a (state, event) pair absent from it is illegal. Semantics
/// follow Airflow (`airflow/models/taskinstance.py` `handle_failure`,
/// `clear_task_instances`; `airflow/jobs/scheduler_job_runner.py` for orphan
/// resets), adapted where Trellis has no `restarting`/`shutdown` state:
/// clearing or marking an active instance cancels its attempt, whose fencing
/// token then stops a late report from applying.
public struct TaskInstanceTransitionRule: Sendable, Hashable {
    /// Where the instance goes.
    public enum Target: Sendable, Hashable {
        /// Always this state.
        case state(TaskState)
        /// `up_for_retry` if the instance still has tries left after this
        /// attempt (Airflow's `is_eligible_to_retry`), `failed` otherwise.
        case retryOrFail
    }

    public var target: Target
    /// The event begins a try: the instance's try number goes up by one.
    public var startsTry: Bool
    /// An attempt is in flight and must be stopped; its reports are stale from
    /// now on.
    public var cancelsAttempt: Bool
    /// The instance gets its task's full number of retries again, counted from
    /// its current try number (Airflow's `clear_task_instances`:
    /// `max_tries = try_number + retries`).
    public var renewsTries: Bool

    public init(target: Target, startsTry: Bool = false, cancelsAttempt: Bool = false, renewsTries: Bool = false) {
        self.target = target
        self.startsTry = startsTry
        self.cancelsAttempt = cancelsAttempt
        self.renewsTries = renewsTries
    }

    static func to(_ state: TaskState, cancelsAttempt: Bool = false) -> Self {
        Self(target: .state(state), cancelsAttempt: cancelsAttempt)
    }

    static func cleared(cancelsAttempt: Bool = false) -> Self {
        Self(target: .state(.none), cancelsAttempt: cancelsAttempt, renewsTries: true)
    }

    /// The rule for `event` in `state`, or nil when the event is illegal there.
    public static func rule(from state: TaskState, on event: TaskInstanceEvent) -> Self? {
        table[state]?[event]
    }

    /// Every legal transition, by current state and event. Finished states
    /// only change through a user (`clear`, `mark_*`) or a DAG-version change.
    public static let table: [TaskState: [TaskInstanceEvent: TaskInstanceTransitionRule]] = [
        .none: [
            .schedule: .to(.scheduled),
            .propagateUpstreamFailed: .to(.upstreamFailed),
            .propagateSkip: .to(.skipped),
            .clear: .cleared(),
            .markSuccess: .to(.success),
            .markFailed: .to(.failed),
            .remove: .to(.removed),
        ],
        .scheduled: [
            .enqueue: .to(.queued),
            .clear: .cleared(),
            .markSuccess: .to(.success),
            .markFailed: .to(.failed),
            .remove: .to(.removed),
        ],
        .queued: [
            .start: Self(target: .state(.running), startsTry: true),
            // The executor could not start it (image pull error, refused
            // submission): counts as a try, or such a task would loop for ever.
            .fail: Self(target: .retryOrFail, startsTry: true),
            .lose: .to(.none),
            .clear: .cleared(cancelsAttempt: true),
            .markSuccess: .to(.success, cancelsAttempt: true),
            .markFailed: .to(.failed, cancelsAttempt: true),
            .remove: .to(.removed, cancelsAttempt: true),
        ],
        .running: [
            .succeed: .to(.success),
            .fail: Self(target: .retryOrFail),
            .timeOut: Self(target: .retryOrFail),
            .lose: Self(target: .retryOrFail),
            .skip: .to(.skipped),
            .clear: .cleared(cancelsAttempt: true),
            .markSuccess: .to(.success, cancelsAttempt: true),
            .markFailed: .to(.failed, cancelsAttempt: true),
            .remove: .to(.removed, cancelsAttempt: true),
        ],
        .success: [
            .clear: .cleared(),
            .markFailed: .to(.failed),
            .remove: .to(.removed),
        ],
        .failed: [
            .clear: .cleared(),
            .markSuccess: .to(.success),
            .remove: .to(.removed),
        ],
        .upForRetry: [
            .retry: .to(.scheduled),
            .propagateUpstreamFailed: .to(.upstreamFailed),
            .propagateSkip: .to(.skipped),
            .clear: .cleared(),
            .markSuccess: .to(.success),
            .markFailed: .to(.failed),
            .remove: .to(.removed),
        ],
        .upstreamFailed: [
            .clear: .cleared(),
            .markSuccess: .to(.success),
            .markFailed: .to(.failed),
            .remove: .to(.removed),
        ],
        .skipped: [
            .clear: .cleared(),
            .markSuccess: .to(.success),
            .markFailed: .to(.failed),
            .remove: .to(.removed),
        ],
        .removed: [
            .restore: .to(.none),
        ],
    ]
}
