#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import TrellisProto

/// A task's `execution_timeout`: how long one attempt may run before it is
/// failed with `TaskInstanceEvent.timeOut` (and retried like any failure, as
/// Airflow does with `AirflowTaskTimeout`). Each attempt gets the full limit,
/// counted from the moment it started running.
public struct ExecutionTimeout: Sendable, Hashable {
    public var limit: Duration

    public init(_ limit: Duration) {
        self.limit = limit
    }

    /// The task's timeout, or nil when the spec sets none (the task may run
    /// for ever).
    public init?(spec: Trellis_V1_TaskSpec) {
        guard spec.hasExecutionTimeout else { return nil }
        self.init(.milliseconds(spec.executionTimeout.millis))
    }

    /// When an attempt that started running at `startedAt` times out.
    public func deadline(startedAt: Date) -> Date {
        startedAt.addingTimeInterval(RetryPolicy.seconds(limit))
    }

    /// Whether an attempt that started running at `startedAt` has used up its
    /// time at `now`.
    public func hasExpired(startedAt: Date, now: Date) -> Bool {
        now >= deadline(startedAt: startedAt)
    }
}
