#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import TrellisProto

/// What the scheduler knows about one task instance of a run when it decides.
public struct TaskInstanceSnapshot: Sendable, Hashable {
    public var state: TaskState
    /// For an `up_for_retry` instance: when it may be retried (computed with
    /// `RetryPolicy.nextRetry` when its try failed). Nil: at once.
    public var retryAt: Date?

    public init(_ state: TaskState, retryAt: Date? = nil) {
        self.state = state
        self.retryAt = retryAt
    }
}

/// Where a DAG run stands, decided from its task instances as Airflow's
/// `DagRun.update_state` does (`airflow/models/dagrun.py`).
public enum RunOutcome: String, CaseIterable, Sendable, Hashable {
    /// Some task instance is unfinished.
    case running
    /// Every instance finished and every leaf is `success` or `skipped`.
    case success
    /// Every instance finished and some leaf is `failed` or `upstream_failed`.
    case failed

    public var proto: Trellis_V1_DagRunState {
        switch self {
        case .running: .running
        case .success: .success
        case .failed: .failed
        }
    }
}

/// The result of one scheduling evaluation of a run: the state changes to
/// apply, when to look again, and the run's outcome once they are applied.
public struct SchedulingDecision: Sendable, Hashable {
    /// One state change, to be applied through `TaskInstanceMachine` and a
    /// guarded update.
    public struct Change: Sendable, Hashable {
        /// The task's position in the `DagGraph`.
        public var position: Int
        public var taskID: String
        public var event: TaskInstanceEvent
        public var from: TaskState
        public var to: TaskState

        public init(position: Int, taskID: String, event: TaskInstanceEvent, from: TaskState, to: TaskState) {
            self.position = position
            self.taskID = taskID
            self.event = event
            self.from = from
            self.to = to
        }
    }

    /// Every change, in topological order: an instance's change comes after
    /// those of its upstream tasks.
    public var changes: [Change]
    /// Every instance's state with the changes applied, by graph position.
    public var states: [TaskState]
    /// The earliest time an `up_for_retry` instance that is otherwise ready
    /// becomes due; evaluate again then. Nil when none is waiting on time.
    public var nextRetryAt: Date?
    /// Positions whose trigger rule lets them run but whose `depends_on_past`
    /// holds them back, ascending.
    public var heldByPreviousRun: [Int]
    /// The run's outcome after the changes.
    public var outcome: RunOutcome

    public init(
        changes: [Change], states: [TaskState], nextRetryAt: Date?, heldByPreviousRun: [Int], outcome: RunOutcome
    ) {
        self.changes = changes
        self.states = states
        self.nextRetryAt = nextRetryAt
        self.heldByPreviousRun = heldByPreviousRun
        self.outcome = outcome
    }

    /// Positions of the changes made by `event`, in topological order.
    public func positions(_ event: TaskInstanceEvent) -> [Int] {
        changes.filter { $0.event == event }.map(\.position)
    }

    /// `none → scheduled`.
    public var scheduled: [Int] { positions(.schedule) }
    /// `up_for_retry → scheduled`: retries now due.
    public var retried: [Int] { positions(.retry) }
    /// `→ skipped` by trigger rule.
    public var skipped: [Int] { positions(.propagateSkip) }
    /// `→ upstream_failed` by trigger rule.
    public var upstreamFailed: [Int] { positions(.propagateUpstreamFailed) }
}
