import Foundation
import Testing
import TrellisCore
import TrellisStore

@Suite struct TransitionTests {
    @Test func aGuardedTransitionAppliesOnceAndIsRecorded() async throws {
        try await StoreFixture.with(connections: 8) { store in
            try await store.submitDag(try StoreFixture.simpleDag("d", taskCount: 1))
            let (run, _) = try await store.createRun(dagID: "d", logicalDate: Date(timeIntervalSince1970: 0))
            let instance = try #require(try await store.taskInstances(runID: run.id).first)
            let request = TransitionRequest(taskInstanceID: instance.id, event: .schedule, expected: .none, detail: "deps met")
            let results = try await withThrowingTaskGroup(of: AppliedTransition?.self) { group in
                for _ in 0..<10 { group.addTask { try await store.transition(request) } }
                var all: [AppliedTransition?] = []
                for try await result in group { all.append(result) }
                return all
            }
            #expect(results.compactMap { $0 }.count == 1)
            #expect(try await store.taskInstance(instance.id).state == .scheduled)
            let events = try await store.events(taskInstanceID: instance.id)
            #expect(events.count == 1)
            let event = try #require(events.first)
            #expect(event.event == "schedule" && event.from == .none && event.to == .scheduled && event.detail == "deps met")
            #expect(try await store.events(runID: run.id).count == 1)
        }
    }

    @Test func illegalTransitionsAreRefusedBeforeTheDatabase() async throws {
        try await StoreFixture.with { store in
            try await store.submitDag(try StoreFixture.simpleDag("d", taskCount: 1))
            let (run, _) = try await store.createRun(dagID: "d", logicalDate: Date(timeIntervalSince1970: 0))
            let instance = try #require(try await store.taskInstances(runID: run.id).first)
            do {
                _ = try await store.transition(TransitionRequest(taskInstanceID: instance.id, event: .succeed, expected: .none))
                Issue.record("none → success by 'succeed' was accepted")
            } catch {
                #expect((error as? PostgresError)?.code == .illegalTransition)
            }
            #expect(try await store.events(taskInstanceID: instance.id).isEmpty)
            // A legal event with a wrong expectation simply does not apply.
            #expect(try await store.transition(TransitionRequest(taskInstanceID: instance.id, event: .enqueue, expected: .scheduled)) == nil)
            #expect(try await store.taskInstance(instance.id).state == .none)
        }
    }

    @Test func failuresRetryWhileTriesRemainThenFail() async throws {
        try await StoreFixture.with { store in
            let (_, instances) = try await StoreFixture.scheduledRun(store, try StoreFixture.simpleDag("r", taskCount: 1, retries: 1))
            let id = instances[0].id
            for (try_, expected) in [(1, TaskState.upForRetry), (2, TaskState.failed)] {
                let claimed = try await store.claimReady(limit: 1)
                #expect(claimed.map(\.taskInstanceID) == [id])
                let token = claimed[0].fencingToken
                #expect(try await store.startAttempt(taskInstanceID: id, fencingToken: token, agentName: "agent-1")?.tryNumber == try_)
                let ended = try await store.endAttempt(taskInstanceID: id, fencingToken: token, outcome: .failure, exitCode: 3, failureReason: "exit 3")
                #expect(ended?.to == expected)
                if expected == .upForRetry {
                    #expect(try await store.transition(TransitionRequest(taskInstanceID: id, event: .retry, expected: .upForRetry))?.to == .scheduled)
                }
            }
            let attempts = try await store.attempts(taskInstanceID: id)
            #expect(attempts.map(\.tryNumber) == [1, 2])
            #expect(attempts.allSatisfy { $0.state == .ended && $0.exitCode == 3 && $0.agentName == "agent-1" && $0.endedAt != nil })
            let record = try await store.taskInstance(id)
            #expect(record.tryNumber == 2)
            #expect(record.fencingToken == nil)
        }
    }

    @Test func aBatchAppliesOnlyTheRequestsWhoseGuardHolds() async throws {
        try await StoreFixture.with { store in
            try await store.submitDag(try StoreFixture.simpleDag("b", taskCount: 5))
            let (run, _) = try await store.createRun(dagID: "b", logicalDate: Date(timeIntervalSince1970: 0))
            let instances = try await store.taskInstances(runID: run.id)
            _ = try await store.transition(TransitionRequest(taskInstanceID: instances[0].id, event: .schedule, expected: .none))
            let applied = try await store.transition(instances.map {
                TransitionRequest(taskInstanceID: $0.id, event: .schedule, expected: .none)
            })
            #expect(Set(applied.map(\.taskInstanceID)) == Set(instances.dropFirst().map(\.id)))
            #expect(try await store.taskInstances(runID: run.id).allSatisfy { $0.state == .scheduled })
            await #expect(throws: PostgresError.self) {
                _ = try await store.transition([instances[0], instances[0]].map {
                    TransitionRequest(taskInstanceID: $0.id, event: .enqueue, expected: .scheduled)
                })
            }
        }
    }
}
