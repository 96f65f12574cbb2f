import Foundation
import Testing
import TrellisCore
import TrellisStore

@Suite struct ClaimTests {
    @Test func concurrentClaimersNeverClaimTheSameTaskInstance() async throws {
        try await StoreFixture.with(connections: 8) { store in
            try await store.setPool("default_pool", slots: 10_000)
            let dag = try StoreFixture.simpleDag("wide", taskCount: 300, maxActiveTasks: 10_000)
            let (_, instances) = try await StoreFixture.scheduledRun(store, dag)
            let claimed = try await withThrowingTaskGroup(of: [ClaimedTask].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var mine: [ClaimedTask] = []
                        while true {
                            let batch = try await store.claimReady(limit: 7)
                            if batch.isEmpty { return mine }
                            mine += batch
                        }
                    }
                }
                var all: [ClaimedTask] = []
                for try await batch in group { all += batch }
                return all
            }
            #expect(claimed.count == instances.count)
            #expect(Set(claimed.map(\.taskInstanceID)).count == instances.count)
            #expect(Set(claimed.map(\.fencingToken)).count == instances.count)
            #expect(try await store.claimReady(limit: 10).isEmpty)
        }
    }

    @Test func claimsGoByPriorityAndRespectPoolSlots() async throws {
        try await StoreFixture.with { store in
            try await store.setPool("small", slots: 2)
            let dag = try StoreFixture.dag("p", tasks: [
                (id: "low", priority: 1, pool: nil, retries: 0),
                (id: "high", priority: 10, pool: nil, retries: 0),
                (id: "mid", priority: 5, pool: nil, retries: 0),
                (id: "s1", priority: 3, pool: "small", retries: 0),
                (id: "s2", priority: 3, pool: "small", retries: 0),
                (id: "s3", priority: 3, pool: "small", retries: 0),
            ])
            _ = try await StoreFixture.scheduledRun(store, dag)
            let first = try await store.claimReady(limit: 2)
            #expect(first.map(\.taskID) == ["high", "mid"])
            let rest = try await store.claimReady(limit: 10)
            #expect(rest.filter { $0.pool == "small" }.count == 2)
            #expect(rest.contains { $0.taskID == "low" })
            #expect(try await store.claimReady(limit: 10).isEmpty)
            let small = try await store.pools().first { $0.name == "small" }
            #expect(small?.queuedSlots == 2)
            #expect(small?.openSlots == 0)
            // Ending one frees its slot for the third.
            let done = try #require(rest.first { $0.pool == "small" })
            _ = try await store.startAttempt(taskInstanceID: done.taskInstanceID, fencingToken: done.fencingToken)
            _ = try await store.endAttempt(taskInstanceID: done.taskInstanceID, fencingToken: done.fencingToken, outcome: .success)
            #expect(try await store.claimReady(limit: 10).map(\.pool) == ["small"])
        }
    }

    @Test func claimsFollowTheWeightRule() async throws {
        try await StoreFixture.with { store in
            for rule in ["downstream", "absolute"] {
                // x1 waits for nothing and two tasks wait for it; y1 has a
                // higher weight of its own.
                let dag = try DagFile.parse("""
                    dag_id: weights_\(rule)
                    default_args: {executor: persistent-pool, command: ["true"], weight_rule: \(rule)}
                    tasks:
                      - {task_id: x1, priority_weight: 1}
                      - {task_id: x2, priority_weight: 1, upstream: [x1]}
                      - {task_id: x3, priority_weight: 1, upstream: [x2]}
                      - {task_id: y1, priority_weight: 2}
                    """, file: "weights.yaml")
                try await store.submitDag(dag)
                let (run, _) = try await store.createRun(dagID: dag.spec.dagID, logicalDate: Date(timeIntervalSince1970: 0))
                try await store.startQueuedRuns()
                let instances = try await store.taskInstances(runID: run.id)
                #expect(Dictionary(uniqueKeysWithValues: instances.map { ($0.taskID, $0.priorityWeight) })
                        == (rule == "downstream" ? ["x1": 3, "x2": 2, "x3": 1, "y1": 2] : ["x1": 1, "x2": 1, "x3": 1, "y1": 2]))
                let roots = instances.filter { ["x1", "y1"].contains($0.taskID) }
                _ = try await store.transition(roots.map { TransitionRequest(taskInstanceID: $0.id, event: .schedule, expected: .none) })
                let first = try await store.claimReady(limit: 1)
                #expect(first.map(\.taskID) == [rule == "downstream" ? "x1" : "y1"], "\(rule)")
                _ = try await store.claimReady(limit: 10)
            }
        }
    }

    @Test func tasksThatCannotRunDoNotCrowdOutOnesThatCan() async throws {
        try await StoreFixture.with { store in
            try await store.setPool("full", slots: 1)
            // Dozens of high-priority tasks that cannot all run: in a pool
            // that does not exist, in a pool of one slot, in a DAG of
            // max_active_tasks 1.
            var blocked: [(id: String, priority: Int, pool: String?, retries: Int)] = []
            for index in 0..<20 {
                blocked.append((id: "missing\(index)", priority: 100, pool: "missing", retries: 0))
                blocked.append((id: "full\(index)", priority: 100, pool: "full", retries: 0))
            }
            _ = try await StoreFixture.scheduledRun(store, try StoreFixture.dag("blocked", tasks: blocked, maxActiveTasks: 1000))
            _ = try await StoreFixture.scheduledRun(store, try StoreFixture.dag("busy", tasks: (0..<20).map { (id: "b\($0)", priority: 100, pool: nil, retries: 0) }, maxActiveTasks: 1))
            _ = try await StoreFixture.scheduledRun(store, try StoreFixture.dag("runnable", tasks: [(id: "low", priority: 1, pool: nil, retries: 0)]))
            // Each pass claims what fits; a pool or DAG it fills is looked
            // past by the next. The low-priority task that can run is found
            // once `full` and `busy` are at their limits, not hidden behind
            // dozens of higher-priority tasks that cannot run.
            var claimed: [ClaimedTask] = []
            for _ in 0..<3 where !claimed.contains(where: { $0.taskID == "low" }) {
                claimed += try await store.claimReady(limit: 2)
            }
            #expect(claimed.contains { $0.taskID == "low" }, "\(claimed.map(\.taskID))")
            #expect(!claimed.contains { $0.pool == "missing" })
            #expect(claimed.filter { $0.pool == "full" }.count == 1)
            #expect(claimed.filter { $0.dagID == "busy" }.count == 1)
            #expect(try await store.claimReady(limit: 10).isEmpty)
        }
    }

    @Test func concurrentClaimersNeverOverfillAPool() async throws {
        try await StoreFixture.with(connections: 8) { store in
            try await store.setPool("tight", slots: 5)
            let dag = try StoreFixture.dag("t", tasks: (0..<60).map { (id: "t\($0)", priority: 1, pool: "tight", retries: 0) }, maxActiveTasks: 1000)
            _ = try await StoreFixture.scheduledRun(store, dag)
            let claimed = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 { group.addTask { try await store.claimReady(limit: 3).count } }
                var total = 0
                for try await count in group { total += count }
                return total
            }
            #expect(claimed == 5)
        }
    }

    @Test func maxActiveTasksAndRunStateLimitClaims() async throws {
        try await StoreFixture.with { store in
            let dag = try StoreFixture.simpleDag("m", taskCount: 5, maxActiveTasks: 2)
            try await store.submitDag(dag)
            let (run, _) = try await store.createRun(dagID: "m", logicalDate: Date(timeIntervalSince1970: 0))
            let instances = try await store.taskInstances(runID: run.id)
            _ = try await store.transition(instances.map { TransitionRequest(taskInstanceID: $0.id, event: .schedule, expected: .none) })
            // The run is still queued: nothing of it may be claimed.
            #expect(try await store.claimReady(limit: 10).isEmpty)
            try await store.startQueuedRuns()
            #expect(try await store.claimReady(limit: 10).count == 2)
            #expect(try await store.claimReady(limit: 10).isEmpty)
        }
    }
}
