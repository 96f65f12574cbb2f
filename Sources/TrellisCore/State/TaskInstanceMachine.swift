/// One task instance's lifecycle as a value: its state, how many tries it has
/// started and how many it may start, advanced only through legal events.
///
/// Like postgres-nio's connection state machine, it does no I/O: the control
/// plane feeds it an event, persists the returned `TaskInstanceTransition`
/// with a guarded `UPDATE … WHERE state = $from`, and carries out what it asks
/// for (cancel an attempt, compute a retry time when the result is
/// `up_for_retry`).
///
/// Try accounting follows Airflow: `tryNumber` counts tries started (Airflow's
/// `try_number` while an attempt runs), `maxTries` is Airflow's `max_tries` —
/// initially the task's `retries` — and a failed try may be retried while
/// `tryNumber <= maxTries`, so a task gets `retries + 1` tries.
public struct TaskInstanceMachine: Sendable, Hashable {
    /// The task this instance belongs to; named in errors.
    public let taskID: String
    /// The task's `retries` setting; clearing grants this many again.
    public let retries: Int
    public private(set) var state: TaskState
    public private(set) var tryNumber: Int
    public private(set) var maxTries: Int

    /// An instance as stored: `maxTries` defaults to `retries` (a fresh
    /// instance).
    public init(taskID: String, retries: Int, state: TaskState = .none, tryNumber: Int = 0, maxTries: Int? = nil) {
        self.taskID = taskID
        self.retries = max(0, retries)
        self.state = state
        self.tryNumber = max(0, tryNumber)
        self.maxTries = maxTries ?? max(0, retries)
    }

    /// Whether the try numbered `tryNumber` may be followed by another one if
    /// it fails (Airflow's `is_eligible_to_retry`).
    public var mayRetry: Bool { tryNumber <= maxTries }

    /// Applies `event`, or throws `CoreError.Code.illegalTransition` naming the
    /// task, its state and the event, leaving the instance unchanged.
    @discardableResult
    public mutating func apply(_ event: TaskInstanceEvent) throws(CoreError) -> TaskInstanceTransition {
        guard let rule = TaskInstanceTransitionRule.rule(from: state, on: event) else {
            throw CoreError(
                .illegalTransition,
                "task '\(taskID)' cannot take event '\(event.rawValue)' in state '\(state.rawValue)'"
            )
        }
        let from = state
        if rule.startsTry { tryNumber += 1 }
        if rule.renewsTries { maxTries = tryNumber + retries }
        switch rule.target {
        case .state(let next): state = next
        case .retryOrFail: state = mayRetry ? .upForRetry : .failed
        }
        return TaskInstanceTransition(
            taskID: taskID, event: event, from: from, to: state,
            tryNumber: tryNumber, maxTries: maxTries,
            startedTry: rule.startsTry, cancelsAttempt: rule.cancelsAttempt
        )
    }
}

/// The record of one applied event: what the control plane persists (a
/// guarded update from `from` to `to`, plus an event row) and acts on.
public struct TaskInstanceTransition: Sendable, Hashable {
    public var taskID: String
    public var event: TaskInstanceEvent
    public var from: TaskState
    public var to: TaskState
    /// The try number after the event.
    public var tryNumber: Int
    /// Airflow's `max_tries` after the event.
    public var maxTries: Int
    /// A new try began with this event (its number is `tryNumber`).
    public var startedTry: Bool
    /// The attempt in flight must be stopped and its fencing token retired.
    public var cancelsAttempt: Bool

    public init(
        taskID: String, event: TaskInstanceEvent, from: TaskState, to: TaskState,
        tryNumber: Int, maxTries: Int, startedTry: Bool, cancelsAttempt: Bool
    ) {
        self.taskID = taskID
        self.event = event
        self.from = from
        self.to = to
        self.tryNumber = tryNumber
        self.maxTries = maxTries
        self.startedTry = startedTry
        self.cancelsAttempt = cancelsAttempt
    }
}
