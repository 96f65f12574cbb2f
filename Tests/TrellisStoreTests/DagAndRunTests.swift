import Foundation
import Testing
import TrellisCore
import TrellisStore

@Suite struct DagAndRunTests {
    @Test func aChangedSubmissionIsANewVersionAndRunsKeepTheirs() async throws {
        try await StoreFixture.with { store in
            let v1 = try StoreFixture.simpleDag("etl", taskCount: 2)
            let first = try await store.submitDag(v1)
            #expect(first == SubmittedDagVersion(dagID: "etl", version: 1, isNew: true))
            #expect(try await store.submitDag(v1) == SubmittedDagVersion(dagID: "etl", version: 1, isNew: false))
            let (oldRun, created) = try await store.createRun(dagID: "etl", logicalDate: Date(timeIntervalSince1970: 0))
            #expect(created)

            let v2 = try StoreFixture.simpleDag("etl", taskCount: 3)
            #expect(try await store.submitDag(v2) == SubmittedDagVersion(dagID: "etl", version: 2, isNew: true))
            let (newRun, _) = try await store.createRun(dagID: "etl", logicalDate: Date(timeIntervalSince1970: 86_400))

            #expect(try await store.run(oldRun.id).dagVersion == 1)
            #expect(newRun.dagVersion == 2)
            #expect(try await store.taskInstances(runID: oldRun.id).count == 2)
            #expect(try await store.taskInstances(runID: newRun.id).count == 3)
            #expect(try await store.dagSpec("etl", version: 1).tasks.count == 2)
            #expect(try await store.dagSpec("etl").tasks.count == 3)
            let dags = try await store.dags()
            #expect(dags.map(\.dagID) == ["etl"])
            #expect(dags.first?.latestVersion == 2)
        }
    }

    @Test func createRunIsIdempotentPerDagAndLogicalDateEvenConcurrently() async throws {
        try await StoreFixture.with(connections: 8) { store in
            try await store.submitDag(try StoreFixture.simpleDag("daily", taskCount: 4))
            let date = Date(timeIntervalSince1970: 1_767_225_600)
            let results = try await withThrowingTaskGroup(of: (DagRunRecord, Bool).self) { group in
                for _ in 0..<8 {
                    group.addTask { try await store.createRun(dagID: "daily", logicalDate: date) }
                }
                var all: [(DagRunRecord, Bool)] = []
                for try await result in group { all.append(result) }
                return all
            }
            #expect(results.filter(\.1).count == 1)
            #expect(Set(results.map(\.0.id)).count == 1)
            let instances = try await store.taskInstances(runID: results[0].0.id)
            #expect(instances.count == 4)
            #expect(instances.allSatisfy { $0.state == .none })
            #expect(try await store.runs(dagID: "daily").count == 1)
        }
    }

    @Test func queuedRunsStartWithinMaxActiveRunsAndNotWhilePaused() async throws {
        try await StoreFixture.with { store in
            try await store.submitDag(try StoreFixture.simpleDag("limited", taskCount: 1, maxActiveRuns: 2))
            var runs: [DagRunRecord] = []
            for day in 0..<4 {
                runs.append(try await store.createRun(dagID: "limited", logicalDate: Date(timeIntervalSince1970: Double(day) * 86_400)).run)
            }
            try await store.setPaused("limited", true)
            #expect(try await store.startQueuedRuns().isEmpty)
            try await store.setPaused("limited", false)
            #expect(Set(try await store.startQueuedRuns()) == Set(runs.prefix(2).map(\.id)))
            #expect(try await store.startQueuedRuns().isEmpty)
            // Not success while a task instance is unfinished (a user may have
            // cleared it after the scheduler read the grid).
            #expect(try await !store.finishRun(runs[0].id, state: .success))
            #expect(try await store.finishRun(runs[0].id, state: .failed))
            #expect(try await !store.finishRun(runs[0].id, state: .failed))
            #expect(try await store.startQueuedRuns() == [runs[2].id])
        }
    }

    @Test func unknownDagIsNotFound() async throws {
        try await StoreFixture.with { store in
            do {
                _ = try await store.createRun(dagID: "nope", logicalDate: Date())
                Issue.record("a run of an unknown DAG was created")
            } catch {
                #expect((error as? PostgresError)?.code == .notFound)
            }
        }
    }
}
