import Foundation
import Testing
import TrellisProto

@testable import TrellisCore

/// Retry delays against Airflow's `TaskInstance.next_retry_datetime`
/// (airflow/models/taskinstance.py) and `MAX_RETRY_DELAY`
/// (airflow/models/abstractoperator.py, 24 h by default).
@Suite struct RetryPolicyTests {
    let key = RetryJitterKey(dagID: "etl", taskID: "load", runKey: "2025-01-01T00:00:00+00:00")

    @Test func fixedDelayIsTheSameForEveryTryAndUncapped() {
        let policy = RetryPolicy(retries: 3, retryDelay: .seconds(90), maxRetryDelay: .seconds(10))
        for tryNumber in 1...5 {
            // Airflow applies max_retry_delay only to exponential backoff.
            #expect(policy.delay(afterTry: tryNumber, of: key) == .seconds(90))
        }
        #expect(policy.maxAttempts == 4)
    }

    @Test func exponentialDelayDoublesWithJitterBelowTheNextStep() {
        let policy = RetryPolicy(retries: 10, retryDelay: .seconds(10), exponentialBackoff: true)
        for tryNumber in 1...12 {
            let base = Duration.seconds(10 * (1 << (tryNumber - 1)))
            let delay = policy.delay(afterTry: tryNumber, of: key)
            if base >= RetryPolicy.exponentialBackoffCeiling {
                #expect(delay == RetryPolicy.exponentialBackoffCeiling)
            } else {
                // Airflow: min_backoff + hash % min_backoff, in [base, 2·base).
                #expect(delay >= base && delay < base * 2, "try \(tryNumber): \(delay)")
                #expect(delay <= RetryPolicy.exponentialBackoffCeiling)
            }
        }
    }

    @Test func exponentialDelayIsCappedByTheTaskAndTheCeiling() {
        let capped = RetryPolicy(retries: 5, retryDelay: .seconds(60), exponentialBackoff: true, maxRetryDelay: .seconds(100))
        #expect(capped.delay(afterTry: 1, of: key) >= .seconds(60))
        #expect(capped.delay(afterTry: 1, of: key) <= .seconds(100))
        #expect(capped.delay(afterTry: 2, of: key) == .seconds(100))
        let huge = RetryPolicy(retries: 5, retryDelay: .seconds(3600), exponentialBackoff: true)
        #expect(huge.delay(afterTry: 6, of: key) == .seconds(86_400))
        #expect(huge.delay(afterTry: 10_000, of: key) == .seconds(86_400))
        #expect(RetryPolicy.exponentialBackoffCeiling == .seconds(24 * 60 * 60))
        // A delay beyond the ceiling is capped even on the first try.
        let beyond = RetryPolicy(retries: 1, retryDelay: .seconds(200_000), exponentialBackoff: true)
        #expect(beyond.delay(afterTry: 1, of: key) == .seconds(86_400))
    }

    @Test func zeroDelayWithBackoffWaitsTheMinimum() {
        // Airflow raises min_backoff to at least one unit (a second there, a
        // millisecond here) so the modulo is defined.
        let policy = RetryPolicy(retries: 1, retryDelay: .zero, exponentialBackoff: true)
        #expect(policy.delay(afterTry: 1, of: key) == .milliseconds(1))
        #expect(RetryPolicy(retries: 1, retryDelay: .zero).delay(afterTry: 1, of: key) == .zero)
    }

    @Test func jitterIsDeterministicPerInstanceAndTry() {
        let policy = RetryPolicy(retries: 3, retryDelay: .seconds(100), exponentialBackoff: true)
        #expect(policy.delay(afterTry: 2, of: key) == policy.delay(afterTry: 2, of: key))
        let delays = Set((0..<20).map {
            policy.delay(afterTry: 1, of: RetryJitterKey(dagID: "etl", taskID: "t\($0)", runKey: key.runKey))
        })
        #expect(delays.count > 10, "jitter should spread instances: \(delays)")
        #expect(key.hash(tryNumber: 1) != key.hash(tryNumber: 2))
        #expect(key.hash(tryNumber: 1) == FNV1a.hash("etl#load#2025-01-01T00:00:00+00:00#1"))
    }

    @Test func fnv1aMatchesPublishedVectors() {
        #expect(FNV1a.hash("") == 0xcbf2_9ce4_8422_2325)
        #expect(FNV1a.hash("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(FNV1a.hash("foobar") == 0x8594_4171_f739_67e8)
    }

    @Test func nextRetryIsEndPlusDelay() {
        let policy = RetryPolicy(retries: 1, retryDelay: .milliseconds(1500))
        let ended = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(policy.nextRetry(afterTry: 1, endedAt: ended, of: key) == ended.addingTimeInterval(1.5))
    }

    @Test func policyFromSpec() {
        var spec = Trellis_V1_TaskSpec()
        spec.retries = 2
        #expect(RetryPolicy(spec: spec) == RetryPolicy(retries: 2, retryDelay: .seconds(300)))
        spec.retryDelay = .with { $0.millis = 2500 }
        spec.retryExponentialBackoff = true
        spec.maxRetryDelay = .with { $0.millis = 60_000 }
        #expect(RetryPolicy(spec: spec) == RetryPolicy(
            retries: 2, retryDelay: .milliseconds(2500), exponentialBackoff: true, maxRetryDelay: .seconds(60)
        ))
    }

    @Test func executionTimeout() {
        var spec = Trellis_V1_TaskSpec()
        #expect(ExecutionTimeout(spec: spec) == nil)
        spec.executionTimeout = .with { $0.millis = 30_000 }
        let timeout = ExecutionTimeout(spec: spec)
        #expect(timeout == ExecutionTimeout(.seconds(30)))
        let started = Date(timeIntervalSince1970: 1_700_000_000)
        #expect(timeout?.deadline(startedAt: started) == started.addingTimeInterval(30))
        #expect(timeout?.hasExpired(startedAt: started, now: started.addingTimeInterval(29.999)) == false)
        #expect(timeout?.hasExpired(startedAt: started, now: started.addingTimeInterval(30)) == true)
        #expect(timeout?.hasExpired(startedAt: started, now: started.addingTimeInterval(3600)) == true)
    }
}
