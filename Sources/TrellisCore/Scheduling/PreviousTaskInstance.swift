/// What `depends_on_past` looks at: the same task's instance in the DAG's
/// previous run.
///
/// Which run is "previous" is the control plane's choice, as in Airflow's
/// `prev_dagrun_dep.py`: with catchup, the run of the previous schedule
/// point; without, the latest run with an earlier logical date.
public enum PreviousTaskInstance: Sendable, Hashable {
    /// No earlier instance of this task exists (the DAG's first run, or a task
    /// new since then): Airflow lets it run (`ignore_first_depends_on_past_by_default`
    /// is true since Airflow 2.3).
    case firstInstance
    /// The previous run has no instance of this task, but an earlier run had
    /// one: Airflow waits ("the previous task instance has not run yet").
    case missing
    /// The state of the task's instance in the previous run.
    case state(TaskState)

    /// Whether `depends_on_past` lets the task run: the previous instance is
    /// `success` or `skipped` (Airflow's `_SUCCESSFUL_STATES`), or there is
    /// none at all. Any other state, unfinished ones included, holds it back.
    public var allowsRun: Bool {
        switch self {
        case .firstInstance: true
        case .missing: false
        case .state(let state): state == .success || state == .skipped
        }
    }
}
