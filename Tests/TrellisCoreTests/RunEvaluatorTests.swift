import Foundation
import Testing
import TrellisProto

@testable import TrellisCore

/// Scheduling decisions on small hand-made runs. Run outcomes follow
/// `DagRun.update_state` (airflow/models/dagrun.py); depends_on_past follows
/// airflow/ti_deps/deps/prev_dagrun_dep.py.
@Suite struct RunEvaluatorTests {
    static let now = Date(timeIntervalSince1970: 1_700_000_000)

    /// A DAG from `id: upstream…` lines plus a rule per task (default all_success).
    static func evaluator(
        _ tasks: [(String, [String])], rules: [String: TriggerRule] = [:], dependsOnPast: Set<String> = []
    ) throws -> RunEvaluator {
        let graph = try DagGraph(tasks: tasks.map { (id: $0.0, upstream: $0.1) })
        return RunEvaluator(graph: graph, rules: graph.taskIDs.map {
            TaskSchedulingRules(triggerRule: rules[$0] ?? .allSuccess, dependsOnPast: dependsOnPast.contains($0))
        })
    }

    static let chain = [("a", []), ("b", ["a"]), ("c", ["b"]), ("d", ["c"])] as [(String, [String])]

    func ids(_ positions: [Int], _ evaluator: RunEvaluator) -> [String] {
        positions.map { evaluator.graph.taskIDs[$0] }
    }

    @Test func aFreshRunSchedulesItsRoots() throws {
        let evaluator = try Self.evaluator([("b", ["a"]), ("a", []), ("c", [])])
        let decision = evaluator.evaluate([.init(.none), .init(.none), .init(.none)], now: Self.now)
        #expect(ids(decision.scheduled, evaluator) == ["a", "c"])
        #expect(decision.states == [.none, .scheduled, .scheduled])
        #expect(decision.outcome == .running)
        #expect(decision.changes.allSatisfy { $0.from == .none && $0.to == .scheduled && $0.event == .schedule })
    }

    @Test func upstreamFailedPropagatesDownAChainInOneEvaluation() throws {
        let evaluator = try Self.evaluator(Self.chain)
        let decision = evaluator.evaluate([.init(.failed), .init(.none), .init(.none), .init(.none)], now: Self.now)
        #expect(ids(decision.upstreamFailed, evaluator) == ["b", "c", "d"])
        #expect(decision.states == [.failed, .upstreamFailed, .upstreamFailed, .upstreamFailed])
        #expect(decision.outcome == .failed)
    }

    @Test func skipPropagatesUntilARuleAcceptsIt() throws {
        let evaluator = try Self.evaluator(
            Self.chain, rules: ["c": .noneFailedMinOneSuccess, "d": .allDone]
        )
        let decision = evaluator.evaluate([.init(.skipped), .init(.none), .init(.none), .init(.none)], now: Self.now)
        #expect(ids(decision.skipped, evaluator) == ["b", "c"])
        #expect(ids(decision.scheduled, evaluator) == ["d"])
        #expect(decision.outcome == .running)
    }

    @Test func oneSuccessFiresWhileAnotherUpstreamStillRuns() throws {
        let evaluator = try Self.evaluator(
            [("start", []), ("left", ["start"]), ("right", ["start"]), ("join", ["left", "right"])],
            rules: ["join": .oneSuccess]
        )
        let decision = evaluator.evaluate(
            [.init(.success), .init(.running), .init(.success), .init(.none)], now: Self.now
        )
        #expect(ids(decision.scheduled, evaluator) == ["join"])
    }

    @Test func retriesAreScheduledOnceDue() throws {
        let evaluator = try Self.evaluator([("a", []), ("b", [])])
        let later = Self.now.addingTimeInterval(60)
        let instances: [TaskInstanceSnapshot] = [.init(.upForRetry, retryAt: later), .init(.upForRetry, retryAt: nil)]
        let early = evaluator.evaluate(instances, now: Self.now)
        #expect(ids(early.retried, evaluator) == ["b"])
        #expect(early.nextRetryAt == later)
        #expect(early.states == [.upForRetry, .scheduled])
        let due = evaluator.evaluate(instances, now: later)
        #expect(ids(due.retried, evaluator) == ["a", "b"])
        #expect(due.nextRetryAt == nil)
        #expect(due.changes.allSatisfy { $0.from == .upForRetry && $0.event == .retry && $0.to == .scheduled })
    }

    @Test func aRetryingTaskWhoseUpstreamWasMarkedFailedIsUpstreamFailed() throws {
        let evaluator = try Self.evaluator([("a", []), ("b", ["a"])])
        let decision = evaluator.evaluate(
            [.init(.failed), .init(.upForRetry, retryAt: Self.now.addingTimeInterval(60))], now: Self.now
        )
        #expect(decision.changes == [.init(position: 1, taskID: "b", event: .propagateUpstreamFailed, from: .upForRetry, to: .upstreamFailed)])
        #expect(decision.nextRetryAt == nil)
    }

    @Test func dependsOnPastNeedsASuccessfulOrSkippedPreviousInstance() throws {
        let evaluator = try Self.evaluator([("a", []), ("b", ["a"])], dependsOnPast: ["a"])
        let fresh: [TaskInstanceSnapshot] = [.init(.none), .init(.none)]
        let cases: [(PreviousTaskInstance?, Bool)] = [
            (nil, true),  // no previous run at all
            (.firstInstance, true),
            (.state(.success), true),
            (.state(.skipped), true),
            (.missing, false),
            (.state(.failed), false),
            (.state(.upstreamFailed), false),
            (.state(.running), false),
            (.state(.none), false),
            (.state(.upForRetry), false),
            (.state(.removed), false),
        ]
        for (previous, runs) in cases {
            let decision = evaluator.evaluate(
                fresh, previousRun: previous.map { [$0, .state(.failed)] }, now: Self.now
            )
            #expect(ids(decision.scheduled, evaluator) == (runs ? ["a"] : []), "\(String(describing: previous))")
            #expect(decision.heldByPreviousRun == (runs ? [] : [0]))
            #expect(decision.outcome == .running)
        }
    }

    @Test func dependsOnPastDoesNotHoldBackSkipsOrUpstreamFailures() throws {
        // Airflow's wait_for_past_depends_before_skipping defaults to false.
        let evaluator = try Self.evaluator(
            [("a", []), ("b", ["a"]), ("c", ["a"])], rules: ["c": .allFailed], dependsOnPast: ["b", "c"]
        )
        let decision = evaluator.evaluate(
            [.init(.failed), .init(.none), .init(.none)],
            previousRun: [.state(.failed), .state(.failed), .state(.failed)],
            now: Self.now
        )
        #expect(ids(decision.upstreamFailed, evaluator) == ["b"])
        #expect(ids(decision.heldByPreviousRun, evaluator) == ["c"])
    }

    @Test func runOutcomeLooksAtLeaves() throws {
        let evaluator = try Self.evaluator(
            [("a", []), ("cleanup", ["a"]), ("b", [])], rules: ["cleanup": .allDone]
        )
        // A failed task followed by a successful all_done leaf: the run succeeds.
        #expect(evaluator.outcome(of: [.failed, .success, .success]) == .success)
        #expect(evaluator.outcome(of: [.success, .skipped, .skipped]) == .success)
        #expect(evaluator.outcome(of: [.success, .success, .upstreamFailed]) == .failed)
        #expect(evaluator.outcome(of: [.success, .success, .failed]) == .failed)
        // Unfinished instances keep it running, even with a failed leaf.
        #expect(evaluator.outcome(of: [.running, .none, .failed]) == .running)
        #expect(evaluator.outcome(of: [.success, .upForRetry, .success]) == .running)
        // A removed downstream task makes its upstream a leaf.
        #expect(evaluator.outcome(of: [.failed, .removed, .success]) == .failed)
        #expect(evaluator.outcome(of: [.removed, .removed, .removed]) == .success)
    }

    @Test func removedUpstreamIsIgnored() throws {
        let evaluator = try Self.evaluator([("a", []), ("b", ["a"])])
        let decision = evaluator.evaluate([.init(.removed), .init(.none)], now: Self.now)
        #expect(ids(decision.scheduled, evaluator) == ["b"])
    }

    @Test func anEmptyRunSucceeds() throws {
        let evaluator = try Self.evaluator([])
        #expect(evaluator.evaluate([], now: Self.now).outcome == .success)
    }

    @Test func evaluatorFromSpec() throws {
        var spec = Trellis_V1_DagSpec()
        spec.dagID = "etl"
        spec.tasks = [
            .with { $0.taskID = "extract" },
            .with { $0.taskID = "notify"; $0.upstream = ["extract"]; $0.triggerRule = .oneFailed; $0.dependsOnPast = true },
        ]
        let evaluator = try RunEvaluator(spec: spec)
        #expect(evaluator.rules == [
            TaskSchedulingRules(),
            TaskSchedulingRules(triggerRule: .oneFailed, dependsOnPast: true),
        ])
        let decision = evaluator.evaluate([.init(.success), .init(.none)], now: Self.now)
        #expect(decision.skipped == [1] && decision.outcome == .success)

        spec.tasks[0].upstream = ["notify"]
        #expect { try RunEvaluator(spec: spec) } throws: { ($0 as? CoreError)?.code == .invalidDag }
        spec.tasks[0].upstream = []
        spec.tasks[1].triggerRule = .UNRECOGNIZED(99)
        #expect { try RunEvaluator(spec: spec) } throws: { ($0 as? CoreError)?.code == .unknownEnumValue }
    }
}
