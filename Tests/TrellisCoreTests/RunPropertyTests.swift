import Foundation
import Testing

@testable import TrellisCore

/// Random DAGs driven to the end: decisions applied through the state
/// machine, attempts ending at random, and every evaluation compared with
/// `ReferenceRunEvaluator`. Seeded and bounded; no clock, no sleeping.
@Suite struct RunPropertyTests {
    /// A run in progress: one state machine per task, retry times, a
    /// simulated clock.
    struct Simulation {
        var dag: RandomDag
        var evaluator: RunEvaluator
        var reference: ReferenceRunEvaluator
        var machines: [TaskInstanceMachine]
        var retryAt: [Date?]
        var previous: [PreviousTaskInstance]
        var now = Date(timeIntervalSince1970: 1_700_000_000)
        var interventions: Int
        /// How often an attempt fails, per run, so that some large runs succeed.
        var failurePercent: Int
        let seed: Int

        init(seed: Int, rng: inout SplitMix64, previous: (inout SplitMix64) -> PreviousTaskInstance) {
            let dag = RandomDag(using: &rng, maxTasks: 200)
            self.dag = dag
            evaluator = dag.evaluator
            reference = dag.reference
            machines = dag.graph.taskIDs.indices.map {
                TaskInstanceMachine(taskID: dag.graph.taskIDs[$0], retries: dag.policies[$0].retries)
            }
            retryAt = Array(repeating: nil, count: dag.graph.count)
            var previousRun: [PreviousTaskInstance] = []
            for _ in dag.graph.taskIDs { previousRun.append(previous(&rng)) }
            self.previous = previousRun
            interventions = Int.random(in: 0...3, using: &rng)
            failurePercent = Int.random(in: 0...30, using: &rng)
            self.seed = seed
        }

        var states: [TaskState] { machines.map(\.state) }

        /// Evaluates, checks against the reference and applies the changes.
        mutating func decide(sourceLocation: SourceLocation = #_sourceLocation) throws -> SchedulingDecision {
            let snapshots = machines.indices.map { TaskInstanceSnapshot(machines[$0].state, retryAt: retryAt[$0]) }
            let decision = evaluator.evaluate(snapshots, previousRun: previous, now: now)
            let expected = reference.evaluate(states: states, retryAt: retryAt, previous: previous, now: now)
            let actual = ReferenceRunEvaluator.Result(
                states: decision.states, heldByPreviousRun: Set(decision.heldByPreviousRun),
                nextRetryAt: decision.nextRetryAt, outcome: decision.outcome
            )
            let agrees = actual == expected
            try #require(
                agrees, "seed \(seed): differs from the reference: \(agrees ? "" : difference(actual, expected))",
                sourceLocation: sourceLocation
            )

            // Each change comes after its upstream tasks' changes, and the
            // state machine accepts it.
            let before = states
            var seen = Set<Int>()
            for change in decision.changes {
                let upstreamChanged = dag.graph.upstream[change.position].filter { decision.states[$0] != before[$0] }
                try #require(upstreamChanged.allSatisfy(seen.contains), "seed \(seed): changes out of order")
                seen.insert(change.position)
                let transition = try machines[change.position].apply(change.event)
                try #require(transition.from == change.from && transition.to == change.to)
            }
            try #require(states == decision.states)

            // A decision is a fixpoint: evaluating its result changes nothing.
            let again = evaluator.evaluate(
                machines.indices.map { TaskInstanceSnapshot(machines[$0].state, retryAt: retryAt[$0]) },
                previousRun: previous, now: now
            )
            try #require(again.changes.isEmpty, "seed \(seed): evaluation is not idempotent")
            return decision
        }

        /// The differing parts of two results, by task id.
        func difference(_ actual: ReferenceRunEvaluator.Result, _ expected: ReferenceRunEvaluator.Result) -> String {
            let ids = dag.graph.taskIDs
            var parts = actual.states.indices.filter { actual.states[$0] != expected.states[$0] }.map {
                "\(ids[$0]) (was \(states[$0].rawValue), upstream \(dag.graph.upstream[$0].map { "\(ids[$0])=\(states[$0].rawValue)" }), "
                    + "rule \(dag.rules[$0].triggerRule.rawValue)): \(actual.states[$0].rawValue) instead of \(expected.states[$0].rawValue)"
            }
            if actual.heldByPreviousRun != expected.heldByPreviousRun {
                parts.append("held \(actual.heldByPreviousRun.map { ids[$0] }.sorted()) instead of \(expected.heldByPreviousRun.map { ids[$0] }.sorted())")
            }
            if actual.nextRetryAt != expected.nextRetryAt {
                parts.append("next retry \(String(describing: actual.nextRetryAt)) instead of \(String(describing: expected.nextRetryAt))")
            }
            if actual.outcome != expected.outcome {
                parts.append("outcome \(actual.outcome) instead of \(expected.outcome)")
            }
            return parts.joined(separator: "; ")
        }

        /// Lets attempts progress and, now and then, a user intervene.
        /// Returns false when nothing was active.
        mutating func advanceWorld(using rng: inout SplitMix64) throws -> Bool {
            let active = machines.indices.filter { [.scheduled, .queued, .running].contains(machines[$0].state) }
            if active.isEmpty { return false }
            var moving = active.filter { _ in rng.chance(60) }
            if moving.isEmpty { moving = [active.randomElement(using: &rng)!] }
            for position in moving {
                let event: TaskInstanceEvent
                switch machines[position].state {
                case .scheduled:
                    event = .enqueue
                case .queued:
                    event = rng.chance(90) ? .start : (rng.chance(50) ? .lose : .fail)
                default:
                    let roll = Int.random(in: 0..<100, using: &rng)
                    if roll >= failurePercent {
                        event = rng.chance(95) ? .succeed : .skip
                    } else {
                        event = [.fail, .fail, .timeOut, .lose].randomElement(using: &rng)!
                    }
                }
                let transition = try machines[position].apply(event)
                if transition.to == .upForRetry {
                    let key = RetryJitterKey(dagID: "random", taskID: transition.taskID, runKey: "seed-\(seed)")
                    retryAt[position] = dag.policies[position].nextRetry(afterTry: transition.tryNumber, endedAt: now, of: key)
                }
            }
            if interventions > 0, rng.chance(3) {
                interventions -= 1
                let position = Int.random(in: 0..<machines.count, using: &rng)
                let candidates: [TaskInstanceEvent] = [.clear, .markSuccess, .markFailed, .remove, .restore]
                let legal = candidates.filter { TaskInstanceTransitionRule.rule(from: machines[position].state, on: $0) != nil }
                if let event = legal.randomElement(using: &rng) { try machines[position].apply(event) }
            }
            now.addTimeInterval(TimeInterval(Int.random(in: 0...2_000, using: &rng)) / 1000)
            return true
        }
    }

    /// With depends_on_past always satisfied, every run finishes: every
    /// instance ends in a finished state, within a bounded number of steps.
    @Test(arguments: 0..<300)
    func randomRunsFinish(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) &* 0x2545_f491_4f6c_dd1d &+ 1)
        var simulation = Simulation(seed: seed, rng: &rng) { rng in
            [.firstInstance, .state(.success), .state(.skipped)].randomElement(using: &rng)!
        }
        let bound = 30 * simulation.machines.count + 200
        for _ in 0..<bound {
            let decision = try simulation.decide()
            if decision.outcome != .running {
                let finished = simulation.states.allSatisfy { $0.isFinished }
                #expect(finished, "seed \(seed): \(simulation.states)")
                return
            }
            if try !simulation.advanceWorld(using: &rng) {
                // Nothing is active, so the run can only be waiting for a retry.
                let next = try #require(decision.nextRetryAt, "seed \(seed): stalled with \(simulation.states)")
                simulation.now = max(simulation.now, next)
            }
        }
        Issue.record("seed \(seed): run did not finish within \(bound) steps")
    }

    /// With depends_on_past sometimes unsatisfied, a run either finishes or
    /// comes to rest with nothing active and no retry pending; then every
    /// unfinished instance is `none` and is held by the previous run or waits
    /// for an unfinished upstream task: nothing is stuck for another reason.
    @Test(arguments: 0..<100)
    func runsHeldByThePastComeToRest(seed: Int) throws {
        var rng = SplitMix64(seed: UInt64(seed) &* 0x9e37_79b9_7f4a_7c15 &+ 7)
        var simulation = Simulation(seed: seed, rng: &rng) { rng in
            rng.chance(50)
                ? .state(TaskState.allCases.randomElement(using: &rng)!)
                : [.firstInstance, .missing].randomElement(using: &rng)!
        }
        let bound = 30 * simulation.machines.count + 200
        for _ in 0..<bound {
            let decision = try simulation.decide()
            if decision.outcome != .running { return }
            if try simulation.advanceWorld(using: &rng) { continue }
            if let next = decision.nextRetryAt {
                simulation.now = max(simulation.now, next)
                continue
            }
            let graph = simulation.dag.graph
            let states = simulation.states
            let held = Set(decision.heldByPreviousRun)
            #expect(!held.isEmpty, "seed \(seed): at rest and unfinished, yet nothing held by the past")
            for position in states.indices where !states[position].isFinished {
                #expect(states[position] == .none, "seed \(seed)")
                let waitsOnUpstream = graph.upstream[position].contains { !states[$0].isFinished }
                #expect(held.contains(position) || waitsOnUpstream, "seed \(seed): \(graph.taskIDs[position]) stuck")
            }
            return
        }
        Issue.record("seed \(seed): run did not come to rest within \(bound) steps")
    }
}
