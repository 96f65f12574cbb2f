import Testing

@testable import TrellisCore

/// Trigger rules against Airflow 2.x/3.x `TriggerRuleDep._evaluate_direct_relatives`
/// (airflow/ti_deps/deps/trigger_rule_dep.py) with `flag_upstream_failed=True`,
/// as the scheduler's `DagRun._get_ready_tis` calls it.
@Suite struct TriggerRuleEvaluationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var rule: TriggerRule
        var upstream: [TaskState]
        var expected: TriggerDecision
        var testDescription: String {
            "\(rule.rawValue)(\(upstream.map(\.rawValue).joined(separator: ", "))) → \(expected.rawValue)"
        }
    }

    static func c(_ rule: String, _ upstream: String, _ expected: String) -> Case {
        Case(
            rule: TriggerRule(rawValue: rule)!,
            upstream: upstream.split(separator: " ").map { TaskState(rawValue: String($0))! },
            expected: TriggerDecision(rawValue: expected)!
        )
    }

    static let cases: [Case] = [
        // all_success: `upstream_failed or failed` → UPSTREAM_FAILED, `elif skipped`
        // → SKIPPED, both without waiting; passes when success == upstream.
        c("all_success", "success success", "run"),
        c("all_success", "success running", "wait"),
        c("all_success", "success up_for_retry", "wait"),
        c("all_success", "failed running", "upstream_failed"),
        c("all_success", "upstream_failed success", "upstream_failed"),
        c("all_success", "skipped running", "skip"),
        c("all_success", "skipped failed", "upstream_failed"),
        c("all_success", "success removed", "run"),
        // all_failed: `success or skipped` → SKIPPED; passes when every upstream
        // is failed or upstream_failed.
        c("all_failed", "failed upstream_failed", "run"),
        c("all_failed", "failed running", "wait"),
        c("all_failed", "failed success", "skip"),
        c("all_failed", "skipped none", "skip"),
        // all_done: never marks anything; waits for every upstream to finish.
        c("all_done", "success failed skipped upstream_failed", "run"),
        c("all_done", "success up_for_retry", "wait"),
        c("all_done", "failed queued", "wait"),
        // one_success: passes on the first success, others still running;
        // once all are done: all skipped → SKIPPED, else no success → UPSTREAM_FAILED.
        c("one_success", "success running none", "run"),
        c("one_success", "failed running", "wait"),
        c("one_success", "skipped skipped", "skip"),
        c("one_success", "skipped failed", "upstream_failed"),
        c("one_success", "upstream_failed", "upstream_failed"),
        // one_failed: passes on the first failed/upstream_failed; all done and
        // none failed → SKIPPED.
        c("one_failed", "failed running", "run"),
        c("one_failed", "upstream_failed none", "run"),
        c("one_failed", "success running", "wait"),
        c("one_failed", "success skipped", "skip"),
        // one_done: passes on the first success or failed (upstream_failed does
        // not count); all done with neither → SKIPPED.
        c("one_done", "success running", "run"),
        c("one_done", "failed none", "run"),
        c("one_done", "upstream_failed running", "wait"),
        c("one_done", "upstream_failed skipped", "skip"),
        // none_failed: failures → UPSTREAM_FAILED at once; skipped upstream is fine.
        c("none_failed", "success skipped", "run"),
        c("none_failed", "skipped skipped", "run"),
        c("none_failed", "success running", "wait"),
        c("none_failed", "upstream_failed running", "upstream_failed"),
        // none_failed_min_one_success: as none_failed, but all skipped → SKIPPED.
        c("none_failed_min_one_success", "success skipped", "run"),
        c("none_failed_min_one_success", "skipped skipped", "skip"),
        c("none_failed_min_one_success", "skipped running", "wait"),
        c("none_failed_min_one_success", "failed skipped", "upstream_failed"),
        // none_skipped: any skipped → SKIPPED at once; else waits for all done.
        c("none_skipped", "success failed upstream_failed", "run"),
        c("none_skipped", "success running", "wait"),
        c("none_skipped", "skipped running", "skip"),
        // always: runs at once, whatever the upstream states.
        c("always", "failed running none", "run"),
        c("always", "skipped", "run"),
    ]

    @Test(arguments: cases)
    func mixedUpstreamStates(_ testCase: Case) {
        #expect(testCase.rule.evaluate(upstream: testCase.upstream) == testCase.expected)
    }

    @Test(arguments: TriggerRule.allCases)
    func noUpstreamRuns(rule: TriggerRule) {
        // TriggerRuleDep passes at once when `not ti.task.upstream_task_ids`;
        // removed upstream tasks are no longer in the DAG version.
        #expect(rule.evaluate(upstream: []) == .run)
        #expect(rule.evaluate(upstream: [.removed, .removed]) == .run)
    }

    /// Every multiset of up to four upstream states, for every rule, against
    /// the independently written reference.
    @Test(arguments: TriggerRule.allCases)
    func agreesWithReferenceOnEveryCombination(rule: TriggerRule) {
        var combinations: [[TaskState]] = [[]]
        var frontier: [[TaskState]] = [[]]
        let states = TaskState.allCases
        for _ in 1...4 {
            frontier = frontier.flatMap { prefix in
                let lowest = prefix.last.flatMap { states.firstIndex(of: $0) } ?? 0
                return states[lowest...].map { prefix + [$0] }
            }
            combinations += frontier
        }
        #expect(combinations.count == 1 + 10 + 55 + 220 + 715)
        for upstream in combinations {
            let expected = ReferenceTriggerRule.decide(rule, upstream)
            #expect(rule.evaluate(upstream: upstream) == expected, "\(upstream)")
            #expect(rule.evaluate(upstream: upstream.reversed()) == expected, "order must not matter")
        }
    }

    @Test func countsIgnoreRemoved() {
        let counts = UpstreamStates([.success, .removed, .running, .upstreamFailed])
        #expect(counts.count == 3 && counts.finished == 2 && counts.success == 1 && counts.upstreamFailed == 1)
        #expect(!counts.allFinished)
    }
}
