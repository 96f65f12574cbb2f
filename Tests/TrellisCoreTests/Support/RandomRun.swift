import Foundation

@testable import TrellisCore

/// A random DAG with random task settings, for property tests.
struct RandomDag {
    var graph: DagGraph
    var rules: [TaskSchedulingRules]
    var policies: [RetryPolicy]

    var evaluator: RunEvaluator { RunEvaluator(graph: graph, rules: rules) }
    var reference: ReferenceRunEvaluator {
        ReferenceRunEvaluator(
            upstream: graph.upstream, rules: rules.map(\.triggerRule), dependsOnPast: rules.map(\.dependsOnPast)
        )
    }

    /// Up to `maxTasks` tasks, each with up to three upstream tasks drawn from
    /// a window of earlier ones (the window size sets how deep the DAG is),
    /// declared in shuffled order.
    init(using rng: inout SplitMix64, maxTasks: Int) {
        let count = Int.random(in: 1...maxTasks, using: &rng)
        let window = Int.random(in: 1...24, using: &rng)
        var tasks: [(id: String, upstream: [String])] = []
        for index in 0..<count {
            let candidates = Array(max(0, index - window)..<index)
            let fanIn = candidates.isEmpty ? 0 : Int.random(in: 0...min(3, candidates.count), using: &rng)
            let upstream = candidates.shuffled(using: &rng).prefix(fanIn).map { "t\($0)" }
            tasks.append(("t\(index)", upstream))
        }
        tasks.shuffle(using: &rng)
        graph = try! DagGraph(tasks: tasks)
        rules = (0..<count).map { _ in
            TaskSchedulingRules(
                triggerRule: rng.chance(40) ? .allSuccess : TriggerRule.allCases.randomElement(using: &rng)!,
                dependsOnPast: rng.chance(10)
            )
        }
        policies = (0..<count).map { _ in
            RetryPolicy(
                retries: Int.random(in: 0...3, using: &rng),
                retryDelay: .milliseconds(Int64.random(in: 0...5_000, using: &rng)),
                exponentialBackoff: rng.chance(50),
                maxRetryDelay: rng.chance(30) ? .seconds(3) : nil
            )
        }
    }
}
