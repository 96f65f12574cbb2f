#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
public import TrellisProto

/// How a task is retried: how many tries it gets and how long to wait before
/// each retry. Read from a task's `retries`, `retry_delay`,
/// `retry_exponential_backoff` and `max_retry_delay`.
///
/// The delay follows Airflow's `TaskInstance.next_retry_datetime`
/// (`airflow/models/taskinstance.py`): a fixed `retry_delay`, or with
/// exponential backoff a base of `retry_delay · 2^(try − 1)` plus a
/// deterministic jitter in `[0, base)` derived from a hash of the task
/// instance and try number, capped first at `exponentialBackoffCeiling`
/// (Airflow's `MAX_RETRY_DELAY`, `[core] max_task_retry_delay`, 24 h by
/// default) and then at `max_retry_delay` when the task sets one. As in
/// Airflow, the caps apply only to exponential backoff. Trellis computes in
/// milliseconds where Airflow rounds up to whole seconds.
public struct RetryPolicy: Sendable, Hashable {
    /// Retries after the first try; the task gets `retries + 1` tries.
    public var retries: Int
    public var retryDelay: Duration
    public var exponentialBackoff: Bool
    /// The task's own cap on an exponential delay; nil for none.
    public var maxRetryDelay: Duration?

    /// The largest exponential delay regardless of the task's settings
    /// (Airflow's `MAX_RETRY_DELAY`, 24 hours).
    public static let exponentialBackoffCeiling: Duration = .seconds(24 * 60 * 60)
    /// Airflow's default `retry_delay` (`[core] default_task_retry_delay`, 300 s),
    /// used when a task spec carries none.
    public static let defaultRetryDelay: Duration = .seconds(300)

    public init(
        retries: Int = 0,
        retryDelay: Duration = RetryPolicy.defaultRetryDelay,
        exponentialBackoff: Bool = false,
        maxRetryDelay: Duration? = nil
    ) {
        self.retries = max(0, retries)
        self.retryDelay = retryDelay
        self.exponentialBackoff = exponentialBackoff
        self.maxRetryDelay = maxRetryDelay
    }

    /// The policy a task spec describes.
    public init(spec: Trellis_V1_TaskSpec) {
        self.init(
            retries: Int(spec.retries),
            retryDelay: spec.hasRetryDelay ? .milliseconds(spec.retryDelay.millis) : Self.defaultRetryDelay,
            exponentialBackoff: spec.retryExponentialBackoff,
            maxRetryDelay: spec.hasMaxRetryDelay ? .milliseconds(spec.maxRetryDelay.millis) : nil
        )
    }

    /// Tries a task instance gets before it fails for good (until cleared).
    public var maxAttempts: Int { retries + 1 }

    /// How long to wait after try `tryNumber` (1 for the first try) failed.
    public func delay(afterTry tryNumber: Int, of instance: RetryJitterKey) -> Duration {
        guard exponentialBackoff else { return retryDelay }
        let ceiling = Self.milliseconds(Self.exponentialBackoffCeiling)
        let exponent = max(tryNumber, 1) - 1
        let delay = Self.milliseconds(retryDelay)
        // Airflow: min_backoff = max(1, ceil(delay · 2^(try−1))), saturating
        // here at the ceiling, which the jittered value could not undercut.
        var base: Int64
        if delay == 0 {
            base = 1
        } else if exponent >= 62 || delay > ceiling >> Int64(exponent) {
            base = ceiling
        } else {
            base = max(1, delay << Int64(exponent))
        }
        base = min(base, ceiling)
        // Airflow: modded_hash = min_backoff + hash % min_backoff, then capped.
        let jitter = Int64(instance.hash(tryNumber: tryNumber) % UInt64(base))
        var result = Duration.milliseconds(min(base + jitter, ceiling))
        if let cap = maxRetryDelay { result = min(result, cap) }
        return result
    }

    /// When try `tryNumber`, which ended at `endedAt`, may be retried
    /// (Airflow: `end_date + delay`).
    public func nextRetry(afterTry tryNumber: Int, endedAt: Date, of instance: RetryJitterKey) -> Date {
        endedAt.addingTimeInterval(Self.seconds(delay(afterTry: tryNumber, of: instance)))
    }

    /// Whole milliseconds in `duration`, negative durations as zero.
    static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0 else { return 0 }
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        return overflow ? .max : product + attoseconds / 1_000_000_000_000_000
    }

    static func seconds(_ duration: Duration) -> TimeInterval {
        let (seconds, attoseconds) = duration.components
        return TimeInterval(seconds) + TimeInterval(attoseconds) * 1e-18
    }
}

/// Identifies one task instance for the deterministic jitter of exponential
/// retry delays, as Airflow hashes `dag_id#task_id#logical_date#try_number`
/// with SHA-1. Trellis uses 64-bit FNV-1a over the same UTF-8 text: stable
/// across processes and releases, unlike Swift's seeded `Hasher`, so every
/// control-plane replica computes the same retry time.
public struct RetryJitterKey: Sendable, Hashable {
    public var dagID: String
    public var taskID: String
    /// What identifies the run: its logical date (as Airflow) or run id;
    /// whatever the control plane passes, it must pass the same every time.
    public var runKey: String

    public init(dagID: String, taskID: String, runKey: String) {
        self.dagID = dagID
        self.taskID = taskID
        self.runKey = runKey
    }

    /// The jitter hash of try `tryNumber`.
    public func hash(tryNumber: Int) -> UInt64 {
        FNV1a.hash("\(dagID)#\(taskID)#\(runKey)#\(tryNumber)")
    }
}

/// 64-bit FNV-1a (Fowler–Noll–Vo), a fixed, unseeded hash.
enum FNV1a {
    static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325
    static let prime: UInt64 = 0x0000_0100_0000_01b3

    static func hash(_ text: String) -> UInt64 {
        var hash = offsetBasis
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= prime
        }
        return hash
    }
}
