import Foundation

@testable import TrellisCore

/// A deliberately naive scheduling evaluator to check `RunEvaluator` against.
///
/// It defines each instance's state after an evaluation recursively — the
/// decision for a task given the *final* states of its upstream tasks — and
/// memoizes, instead of walking a precomputed topological order and
/// counting. The trigger rules come from `ReferenceTriggerRule`; leaves are
/// found from the upstream lists, not from `DagGraph.downstream`.
struct ReferenceRunEvaluator {
    struct Result: Equatable {
        var states: [TaskState]
        var heldByPreviousRun: Set<Int>
        var nextRetryAt: Date?
        var outcome: RunOutcome
    }

    var upstream: [[Int]]
    var rules: [TriggerRule]
    var dependsOnPast: [Bool]

    func evaluate(
        states: [TaskState], retryAt: [Date?], previous: [PreviousTaskInstance], now: Date
    ) -> Result {
        let count = states.count
        var memo = [TaskState?](repeating: nil, count: count)
        var held = Set<Int>()
        var waitingRetries: [Date] = []

        func previousAllows(_ previous: PreviousTaskInstance) -> Bool {
            switch previous {
            case .firstInstance: return true
            case .missing: return false
            case .state(let state): return [.success, .skipped].contains(state)
            }
        }

        func final(_ task: Int) -> TaskState {
            if let known = memo[task] { return known }
            let current = states[task]
            var result = current
            if current == .none || current == .upForRetry {
                let upstreamStates = upstream[task].map(final)
                switch ReferenceTriggerRule.decide(rules[task], upstreamStates) {
                case .wait:
                    break
                case .skip:
                    result = .skipped
                case .upstreamFailed:
                    result = .upstreamFailed
                case .run:
                    if dependsOnPast[task] && !previousAllows(previous[task]) {
                        held.insert(task)
                    } else if current == .none {
                        result = .scheduled
                    } else if let due = retryAt[task], now < due {
                        waitingRetries.append(due)
                    } else {
                        result = .scheduled
                    }
                }
            }
            memo[task] = result
            return result
        }

        let finals = (0..<count).map(final)
        return Result(
            states: finals,
            heldByPreviousRun: held,
            nextRetryAt: waitingRetries.min(),
            outcome: Self.outcome(finals, upstream: upstream)
        )
    }

    static func outcome(_ states: [TaskState], upstream: [[Int]]) -> RunOutcome {
        let unfinished: Set<TaskState> = [.none, .scheduled, .queued, .running, .upForRetry]
        if states.contains(where: unfinished.contains) { return .running }
        let present = states.indices.filter { states[$0] != .removed }
        let leaves = present.filter { task in !present.contains { upstream[$0].contains(task) } }
        return leaves.contains { [.failed, .upstreamFailed].contains(states[$0]) } ? .failed : .success
    }
}
