import Testing
import TrellisProto

@testable import TrellisCore

@Suite struct TaskStateTests {
    @Test func namesAreAirflows() {
        #expect(TaskState.allCases.map(\.rawValue) == [
            "none", "scheduled", "queued", "running", "success", "failed",
            "up_for_retry", "upstream_failed", "skipped", "removed",
        ])
    }

    @Test(arguments: TaskState.allCases)
    func protoRoundTrip(state: TaskState) throws {
        #expect(try TaskState(state.proto) == state)
    }

    @Test func unrecognizedProtoValueIsAnError() {
        #expect(throws: CoreError.self) { try TaskState(Trellis_V1_TaskState.UNRECOGNIZED(42)) }
    }

    @Test(arguments: TriggerRule.allCases)
    func triggerRuleRoundTrip(rule: TriggerRule) throws {
        #expect(try TriggerRule(rule.proto) == rule)
    }
}
