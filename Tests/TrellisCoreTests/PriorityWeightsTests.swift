import Testing
import TrellisProto

@testable import TrellisCore

/// Airflow's weight rules: a task's effective weight is its own plus its
/// relatives' own weights, each relative once however many paths lead to it.
@Suite struct PriorityWeightsTests {
    /// a >> [b, c] >> d, weights 1, 2, 3, 4, every task under `rule`.
    static func diamond(_ rule: String) throws -> Trellis_V1_DagSpec {
        try DagFile.parse("""
            dag_id: diamond
            default_args: {executor: persistent-pool, command: ["true"], weight_rule: \(rule)}
            tasks:
              - {task_id: a, priority_weight: 1}
              - {task_id: b, priority_weight: 2, upstream: [a]}
              - {task_id: c, priority_weight: 3, upstream: [a]}
              - {task_id: d, priority_weight: 4, upstream: [b, c]}
            """, file: "diamond.yaml").spec
    }

    @Test func downstreamIsTheDefaultAndCountsEachDescendantOnce() throws {
        #expect(PriorityWeights.effective(try Self.diamond("downstream")) == [10, 6, 7, 4])
        let unstated = try DagFile.parse("""
            dag_id: d
            default_args: {executor: persistent-pool, command: ["true"]}
            tasks:
              - {task_id: a, priority_weight: 1}
              - {task_id: b, priority_weight: 2, upstream: [a]}
              - {task_id: c, priority_weight: 3, upstream: [a]}
              - {task_id: d, priority_weight: 4, upstream: [b, c]}
            """, file: "d.yaml").spec
        #expect(unstated.tasks.allSatisfy { $0.weightRule == .downstream })
        #expect(PriorityWeights.effective(unstated) == [10, 6, 7, 4])
    }

    @Test func upstreamCountsEachAncestorOnce() throws {
        #expect(PriorityWeights.effective(try Self.diamond("upstream")) == [1, 3, 4, 10])
    }

    @Test func absoluteIsTheTasksOwn() throws {
        #expect(PriorityWeights.effective(try Self.diamond("absolute")) == [1, 2, 3, 4])
    }

    @Test func eachTaskFollowsItsOwnRule() throws {
        let spec = try DagFile.parse("""
            dag_id: mixed
            default_args: {executor: persistent-pool, command: ["true"]}
            tasks:
              - {task_id: a, priority_weight: 1, weight_rule: absolute}
              - {task_id: b, priority_weight: 2, upstream: [a]}
              - {task_id: c, priority_weight: 3, upstream: [b], weight_rule: upstream}
            """, file: "mixed.yaml").spec
        #expect(PriorityWeights.effective(spec) == [1, 5, 6])
    }

    @Test func aHugeSumIsClampedToTheDatabasesRange() throws {
        var yaml = "dag_id: long\ndefault_args: {executor: persistent-pool, command: [\"true\"], priority_weight: 1000000}\ntasks:\n  - {task_id: t0}\n"
        for index in 1..<3_000 { yaml += "  - {task_id: t\(index), upstream: [t\(index - 1)]}\n" }
        let weights = PriorityWeights.effective(try DagFile.parse(yaml, file: "long.yaml").spec)
        #expect(weights[0] == Int(Int32.max))
        #expect(weights[2_999] == 1_000_000)
        #expect(weights[2_998] == 2_000_000)
    }
}
