import Testing
import TrellisProto

@testable import TrellisControlPlane

@Suite struct TaskRenderingTests {
    static func processTask(_ command: [String], env: [String: String] = [:]) -> Trellis_V1_TaskSpec {
        var task = Trellis_V1_TaskSpec()
        task.process.command = command
        task.process.env = env.sorted { $0.key < $1.key }.map { entry in Trellis_V1_EnvVar.with { $0.name = entry.key; $0.value = entry.value } }
        return task
    }

    @Test func onlyTasksWhoseTemplatesReadAResultLoadResults() {
        #expect(TaskRendering.readsXcom(Self.processTask(["echo", "{{ xcom.count }}"])))
        #expect(TaskRendering.readsXcom(Self.processTask(["echo"], env: ["N": "rows={{xcom.count}}"])))
        #expect(!TaskRendering.readsXcom(Self.processTask(["echo", "xcom.count is not a macro", "{{ ds }}"])))
        #expect(!TaskRendering.readsXcom(Trellis_V1_TaskSpec()))
    }

    @Test func resultsRenderAsAirflowRendersThem() {
        #expect(TaskRendering.xcomValue(#""plain text""#) == "plain text")
        #expect(TaskRendering.xcomValue(#"{"rows": 42, "a": [1, 2]}"#) == #"{"a":[1,2],"rows":42}"#)
        #expect(TaskRendering.xcomValue("42") == "42")
        #expect(TaskRendering.xcomValue("true") == "true")
    }
}
