import Foundation
import Testing
import TrellisCore
import TrellisStore

@Suite struct AttemptTests {
    @Test func aStaleFencingTokenCanNeitherEndNorRestartAnAttempt() async throws {
        try await StoreFixture.with { store in
            let (_, instances) = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("f", taskCount: 1))
            let id = instances[0].id
            let old = try #require(try await store.claimReady(limit: 1).first)
            #expect(try await store.startAttempt(taskInstanceID: id, fencingToken: old.fencingToken, agentName: "a1") != nil)
            // A user clears the running instance: its attempt is cancelled.
            #expect(try await store.transition(TransitionRequest(taskInstanceID: id, event: .clear, expected: .running))?.to == TaskState.none)
            #expect(try await store.endAttempt(taskInstanceID: id, fencingToken: old.fencingToken, outcome: .success) == nil)
            _ = try await store.transition(TransitionRequest(taskInstanceID: id, event: .schedule, expected: .none))
            let new = try #require(try await store.claimReady(limit: 1).first)
            #expect(new.fencingToken != old.fencingToken)

            // A report without the token does not apply either.
            #expect(try await store.transition(TransitionRequest(taskInstanceID: id, event: .start, expected: .queued)) == nil)

            // The stale agent tries to restart and to end: neither applies.
            #expect(try await store.startAttempt(taskInstanceID: id, fencingToken: old.fencingToken) == nil)
            #expect(try await store.failToStart(taskInstanceID: id, fencingToken: old.fencingToken, reason: "late") == nil)
            #expect(try await store.startAttempt(taskInstanceID: id, fencingToken: new.fencingToken, agentName: "a2") != nil)
            #expect(try await store.endAttempt(taskInstanceID: id, fencingToken: old.fencingToken, outcome: .failure) == nil)
            #expect(try await store.transition(TransitionRequest(taskInstanceID: id, event: .succeed, expected: .running)) == nil)
            #expect(try await store.startAttempt(taskInstanceID: id, fencingToken: old.fencingToken) == nil)
            #expect(try await store.taskInstance(id).state == .running)

            // The current token ends it, once.
            #expect(try await store.endAttempt(taskInstanceID: id, fencingToken: new.fencingToken, outcome: .success, exitCode: 0)?.to == .success)
            #expect(try await store.endAttempt(taskInstanceID: id, fencingToken: new.fencingToken, outcome: .failure) == nil)

            let attempts = try await store.attempts(taskInstanceID: id)
            #expect(attempts.count == 2)
            #expect(attempts.map(\.state) == [.ended, .ended])
            #expect(attempts[0].outcome?.hasPrefix("none") == true)
            #expect(attempts[1].outcome?.hasPrefix("success") == true)
            #expect(attempts[1].agentName == "a2")
            #expect(attempts[1].exitCode == 0)
        }
    }

    /// A successful try's JSON result is kept for downstream templates; a
    /// failed try's is not, and running the instance again clears it.
    @Test func theResultOfASuccessIsKeptUntilTheInstanceRunsAgain() async throws {
        try await StoreFixture.with { store in
            let (run, instances) = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("x", taskCount: 1, retries: 1))
            let id = instances[0].id
            let first = try #require(try await store.claimReady(limit: 1).first)
            _ = try await store.startAttempt(taskInstanceID: id, fencingToken: first.fencingToken)
            _ = try await store.transition(TransitionRequest(
                taskInstanceID: id, event: .fail, expected: .running, fencingToken: first.fencingToken, xcom: #"{"partial": true}"#))
            #expect(try await store.xcoms(runID: run.id).isEmpty)

            _ = try await store.transition(TransitionRequest(taskInstanceID: id, event: .retry, expected: .upForRetry))
            let second = try #require(try await store.claimReady(limit: 1).first)
            _ = try await store.startAttempt(taskInstanceID: id, fencingToken: second.fencingToken)
            _ = try await store.transition(TransitionRequest(
                taskInstanceID: id, event: .succeed, expected: .running, fencingToken: second.fencingToken, xcom: #"{"rows": 42}"#))
            #expect(try await store.xcoms(runID: run.id) == [instances[0].taskID: #"{"rows": 42}"#])

            // Cleared by a user: the old result must not feed the next try's downstream.
            _ = try await store.transition(TransitionRequest(taskInstanceID: id, event: .clear, expected: .success))
            #expect(try await store.xcoms(runID: run.id).isEmpty)
        }
    }

    /// The executor's own times (a process's spawn and exit) are the
    /// attempt's start and end; without them, the time the report arrived.
    @Test func anAttemptKeepsTheTimesTheExecutorReported() async throws {
        try await StoreFixture.with { store in
            let (_, instances) = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("t", taskCount: 2))
            let claims = try await store.claimReady(limit: 2)
            try #require(claims.count == 2)
            let spawned = Date(timeIntervalSince1970: 1_800_000_000.125)
            let exited = Date(timeIntervalSince1970: 1_800_000_003.5)
            let timed = claims[0], untimed = claims[1]
            _ = try await store.transition([
                TransitionRequest(taskInstanceID: timed.taskInstanceID, event: .start, expected: .queued, fencingToken: timed.fencingToken, at: spawned),
                TransitionRequest(taskInstanceID: untimed.taskInstanceID, event: .start, expected: .queued, fencingToken: untimed.fencingToken),
            ])
            _ = try await store.transition([
                TransitionRequest(taskInstanceID: timed.taskInstanceID, event: .succeed, expected: .running, fencingToken: timed.fencingToken, at: exited),
                TransitionRequest(taskInstanceID: untimed.taskInstanceID, event: .succeed, expected: .running, fencingToken: untimed.fencingToken),
            ])
            let attempt = try #require(try await store.attempts(taskInstanceID: timed.taskInstanceID).first)
            #expect(attempt.startedAt == spawned)
            #expect(attempt.endedAt == exited)
            let other = try #require(try await store.attempts(taskInstanceID: untimed.taskInstanceID).first)
            #expect(try #require(other.startedAt).timeIntervalSinceNow > -60)
            #expect(try #require(other.endedAt).timeIntervalSinceNow > -60)
            #expect(instances.count == 2)
        }
    }

    @Test func aFailureWithTriesLeftKeepsItsRetryTimeAndOnlyThen() async throws {
        try await StoreFixture.with { store in
            let (_, instances) = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("r", taskCount: 1, retries: 1))
            let id = instances[0].id
            let retryAt = Date(timeIntervalSince1970: 1_900_000_000.25)

            let first = try #require(try await store.claimReady(limit: 1).first)
            _ = try await store.startAttempt(taskInstanceID: id, fencingToken: first.fencingToken)
            let failed = try await store.endAttempt(
                taskInstanceID: id, fencingToken: first.fencingToken, outcome: .failure, exitCode: 2, retryAt: retryAt)
            #expect(failed?.to == .upForRetry)
            #expect(try await store.taskInstance(id).nextRetryAt == retryAt)

            // The retry runs; its own failure is the last try: failed, and no retry time.
            _ = try await store.transition(TransitionRequest(taskInstanceID: id, event: .retry, expected: .upForRetry))
            #expect(try await store.taskInstance(id).nextRetryAt == nil)
            let second = try #require(try await store.claimReady(limit: 1).first)
            _ = try await store.startAttempt(taskInstanceID: id, fencingToken: second.fencingToken)
            let final = try await store.endAttempt(
                taskInstanceID: id, fencingToken: second.fencingToken, outcome: .failure, retryAt: retryAt)
            #expect(final?.to == .failed)
            #expect(try await store.taskInstance(id).nextRetryAt == nil)
        }
    }

    @Test func logsAreKeptInChunksPerTry() async throws {
        try await StoreFixture.with { store in
            let (_, instances) = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("l", taskCount: 1, retries: 1))
            let id = instances[0].id
            let first = try #require(try await store.claimReady(limit: 1).first)
            _ = try await store.startAttempt(taskInstanceID: id, fencingToken: first.fencingToken)
            #expect(try await store.appendLog(attemptID: first.attemptID, Array("hello ".utf8)) == 1)
            #expect(try await store.appendLog(attemptID: first.attemptID, [0, 0xff, 10]) == 2)
            _ = try await store.endAttempt(taskInstanceID: id, fencingToken: first.fencingToken, outcome: .failure)
            _ = try await store.transition(TransitionRequest(taskInstanceID: id, event: .retry, expected: .upForRetry))
            let second = try #require(try await store.claimReady(limit: 1).first)
            _ = try await store.startAttempt(taskInstanceID: id, fencingToken: second.fencingToken)
            try await store.appendLog(attemptID: second.attemptID, Array("try two".utf8))

            #expect(try await store.log(taskInstanceID: id, tryNumber: 1) == Array("hello ".utf8) + [0, 0xff, 10])
            #expect(try await store.log(taskInstanceID: id, tryNumber: 2) == Array("try two".utf8))
            #expect(try await store.logChunks(attemptID: first.attemptID, afterSequence: 1).map(\.sequence) == [2])
            await #expect(throws: PostgresError.self) { try await store.appendLog(attemptID: 999_999, [1]) }
        }
    }

    @Test func anAttemptsOutputBytesLeaveOutSystemMessages() async throws {
        try await StoreFixture.with { store in
            let (_, instances) = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("o", taskCount: 2))
            let claimed = try await store.claimReady(limit: 2)
            #expect(claimed.count == 2)
            for claim in claimed { _ = try await store.startAttempt(taskInstanceID: claim.taskInstanceID, fencingToken: claim.fencingToken) }
            let (a, b) = (claimed[0].attemptID, claimed[1].attemptID)
            try await store.appendLog(attemptID: a, stream: .stdout, Array("12345".utf8))
            try await store.appendLog(attemptID: a, stream: .system, Array("trellisd restarted\n".utf8))
            try await store.appendLog(attemptID: a, stream: .stderr, Array("678".utf8))
            // The log shows everything in order; the output count skips the message.
            #expect(try await store.log(taskInstanceID: claimed[0].taskInstanceID, tryNumber: 1) == Array("12345trellisd restarted\n678".utf8))
            #expect(try await store.outputBytes(attemptIDs: [a, b, 999_999]) == [a: 8])
            #expect(try await store.outputBytes(attemptIDs: []) == [:])
            _ = instances
        }
    }
}
