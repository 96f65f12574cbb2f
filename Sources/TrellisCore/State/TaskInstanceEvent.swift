/// Something that happens to one task instance: a scheduling decision, an
/// executor's report about an attempt, a user's action, or a change of the DAG
/// version the run uses.
///
/// Events are fed to `TaskInstanceMachine.apply(_:)`, which decides from
/// `TaskInstanceTransitionRule.table` whether the event is legal in the
/// instance's current state and what the state becomes. The raw values are
/// what the control plane records in a task instance's event log.
public enum TaskInstanceEvent: String, CaseIterable, Sendable, Hashable, Codable {
    /// The scheduler found the instance's dependencies met (`none → scheduled`).
    case schedule
    /// The dispatcher handed the instance to an executor (`scheduled → queued`).
    case enqueue
    /// The executor reports that the attempt's process started
    /// (`queued → running`); this starts a try.
    case start
    /// The attempt finished successfully.
    case succeed
    /// The attempt failed, or the executor could not start it at all.
    /// Becomes `up_for_retry` while tries remain, `failed` otherwise.
    case fail
    /// The attempt ran longer than the task's `execution_timeout`. Airflow
    /// treats this as an ordinary failure (retried while tries remain).
    case timeOut = "time_out"
    /// The attempt asked to be skipped (Airflow's `AirflowSkipException`).
    case skip
    /// The executor or agent lost the attempt: a queued instance goes back to
    /// `none` without using a try (Airflow resets orphaned queued tasks); a
    /// running one is a zombie and fails like `fail`.
    case lose
    /// The retry delay of an `up_for_retry` instance has elapsed and its
    /// dependencies still hold (`up_for_retry → scheduled`).
    case retry
    /// The trigger rule found upstream failures (`→ upstream_failed`).
    case propagateUpstreamFailed = "propagate_upstream_failed"
    /// The trigger rule says the instance will never run (`→ skipped`).
    case propagateSkip = "propagate_skip"
    /// A user cleared the instance: back to `none` with a fresh set of
    /// retries; an attempt in flight is cancelled.
    case clear
    /// A user marked the instance successful.
    case markSuccess = "mark_success"
    /// A user marked the instance failed.
    case markFailed = "mark_failed"
    /// The task is not in the DAG version the run now uses.
    case remove
    /// A removed task is back in the DAG version the run uses (`removed → none`).
    case restore
}
