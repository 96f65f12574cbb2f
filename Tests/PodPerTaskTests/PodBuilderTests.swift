import Foundation
import PodPerTask
import Testing
import TrellisKube
import TrellisTestSupport

/// Pods built from tasks: names, labels, the container, executor defaults.
@Suite struct PodBuilderTests {
    static func seedEcho() -> PodTask {
        var task = PodTask(
            attemptID: "41.7", fencingToken: 3, dagID: "example_using_k8s_pod_operator",
            runID: "manual__2026-11-26T04:00:00+00:00", taskID: "task-1-echo", tryNumber: 2)
        task.logicalDate = "2026-11-26T04:00:00Z"
        task.image = "ubuntu:16.04"
        task.namespace = "airflow-k8spodoperator"
        task.cmds = ["bash", "-cx"]
        task.arguments = ["echo 10"]
        task.labels = ["foo": "bar"]
        task.name = "test-using-k8spodoperator-task-1"
        task.onFinish = .keepPod
        task.env = [(name: "STAGE", value: "prod")]
        return task
    }

    @Test func theSeedTaskBecomesAKubernetesPodOperatorPod() throws {
        let pod = PodBuilder.build(Self.seedEcho(), settings: PodSettings(), executor: "pod-per-task", namespace: "airflow-k8spodoperator", suffix: "a1b2c3d4")
        #expect(pod.name == "test-using-k8spodoperator-task-1-a1b2c3d4")
        #expect(pod.namespace == "airflow-k8spodoperator")
        #expect(pod.labels["foo"] == "bar")
        #expect(pod.labels["dag_id"] == "example_using_k8s_pod_operator")
        #expect(pod.labels["task_id"] == "task-1-echo")
        #expect(pod.labels["try_number"] == "2")
        #expect(pod.labels["trellis.dev/attempt"] == "41.7")
        #expect(pod.labels["trellis.dev/executor"] == "pod-per-task")
        // run ids hold ':' and '+': the label is made safe, the annotation keeps it whole.
        let runLabel = try #require(pod.labels["run_id"])
        #expect(PodNames.labelProblem(name: "run_id", value: runLabel) == nil)
        #expect(runLabel.hasPrefix("manual__2026-11-26T040000"))
        #expect(pod.metadata.annotations?["trellis.dev/run-id"] == "manual__2026-11-26T04:00:00+00:00")
        let spec = try #require(pod.spec)
        #expect(spec.restartPolicy == "Never")
        #expect(spec.containers.count == 1)
        let container = spec.containers[0]
        #expect(container.name == "base")
        #expect(container.image == "ubuntu:16.04")
        #expect(container.command == ["bash", "-cx"])
        #expect(container.args == ["echo 10"])
        #expect(container.env?.map(\.name) == ["TRELLIS_DAG_ID", "TRELLIS_RUN_ID", "TRELLIS_TASK_ID", "TRELLIS_TRY_NUMBER", "TRELLIS_LOGICAL_DATE", "STAGE"])
        #expect(container.env?.last?.value == "prod")
        #expect(spec.serviceAccountName == nil)
        #expect(spec.securityContext == nil)
    }

    @Test func executorDefaultsApplyWhereTheTaskIsSilent() throws {
        var settings = PodSettings()
        settings.serviceAccount = "trellis-tasks"
        settings.imagePullPolicy = "IfNotPresent"
        settings.runAsUser = 50000
        settings.extraLabels = ["team": "data", "foo": "executor"]
        var task = Self.seedEcho()
        task.requests = ["cpu": "500m"]
        task.limits = ["memory": "1Gi"]
        var toleration = PodTask.Toleration()
        toleration.key = "dedicated"
        toleration.operator = "Equal"
        toleration.value = "batch"
        toleration.effect = "NoSchedule"
        task.tolerations = [toleration]
        task.nodeSelector = ["pool": "batch"]
        let pod = PodBuilder.build(task, settings: settings, executor: "pod-per-task", namespace: "x", suffix: "zzzzzzzz")
        let spec = try #require(pod.spec)
        #expect(spec.serviceAccountName == "trellis-tasks")
        #expect(spec.containers[0].imagePullPolicy == "IfNotPresent")
        #expect(spec.securityContext?.runAsUser == 50000)
        #expect(spec.containers[0].resources == ResourceRequirements(requests: ["cpu": "500m"], limits: ["memory": "1Gi"]))
        #expect(spec.tolerations?.first?.key == "dedicated")
        #expect(spec.tolerations?.first?.tolerationSeconds == nil)
        #expect(spec.nodeSelector == ["pool": "batch"])
        // The task's labels win over the executor's; Trellis's own win over both.
        #expect(pod.labels["foo"] == "bar")
        #expect(pod.labels["team"] == "data")
        task.labels["trellis.dev/attempt"] = "forged"
        let forged = PodBuilder.build(task, settings: settings, executor: "pod-per-task", namespace: "x", suffix: "zzzzzzzz")
        #expect(forged.labels["trellis.dev/attempt"] == "41.7")
        // A task's own service account and pull policy win.
        task.serviceAccountName = "special"
        task.imagePullPolicy = "Always"
        let own = PodBuilder.build(task, settings: settings, executor: "pod-per-task", namespace: "x", suffix: "zzzzzzzz")
        #expect(own.spec?.serviceAccountName == "special")
        #expect(own.spec?.containers[0].imagePullPolicy == "Always")
    }

    @Test func theJSONSentLeavesOutWhatWasNotSet() throws {
        var task = Self.seedEcho()
        task.env = []
        task.labels = [:]
        let pod = PodBuilder.build(task, settings: PodSettings(), executor: "pod-per-task", namespace: "ns", suffix: "abcdefgh")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(pod), as: UTF8.self)
        #expect(!json.contains("null"))
        #expect(!json.contains("\"status\""))
        #expect(json.contains(#""apiVersion":"v1""#))
        #expect(json.contains(#""kind":"Pod""#))
    }

    @Test func podNamesAreDNSLabelsWithTheSuffix() {
        #expect(PodNames.podName(prefix: "test-using-k8spodoperator-task-1", suffix: "abcdefgh") == "test-using-k8spodoperator-task-1-abcdefgh")
        #expect(PodNames.podName(prefix: "Extract_Orders.Daily", suffix: "abcdefgh") == "extract-orders-daily-abcdefgh")
        #expect(PodNames.podName(prefix: "--__--", suffix: "abcdefgh") == "task-abcdefgh")
        let long = PodNames.podName(prefix: String(repeating: "a", count: 100), suffix: "abcdefgh")
        #expect(long.count == 63)
        #expect(PodNames.isDNSLabel(long))
        #expect(PodNames.isDNSLabel(PodNames.podName(prefix: String(repeating: "b", count: 53) + "-c", suffix: "abcdefgh")))
        var generator = SystemRandomNumberGenerator()
        let suffix = PodNames.randomSuffix(using: &generator)
        #expect(suffix.count == 8)
        #expect(suffix.allSatisfy { $0.isLowercase || $0.isNumber })
    }

    @Test func labelValuesAreMadeSafeAndStayDistinct() {
        #expect(PodNames.safeLabelValue("task-1-echo") == "task-1-echo")
        #expect(PodNames.safeLabelValue("41.7") == "41.7")
        let first = PodNames.safeLabelValue("manual__2026-11-26T04:00:00+00:00")
        let second = PodNames.safeLabelValue("manual__2026-11-26T04:00:00+01:00")
        #expect(first != second)
        for value in [first, second, PodNames.safeLabelValue(String(repeating: "x", count: 80)), PodNames.safeLabelValue("ünïcode only"), PodNames.safeLabelValue("__")] {
            #expect(PodNames.labelProblem(name: "run_id", value: value) == nil, "\(value)")
        }
        #expect(PodNames.safeLabelValue(String(repeating: "x", count: 80)).count == 63)
    }

    @Test func labelProblemsNameWhatIsWrong() {
        #expect(PodNames.labelProblem(name: "app.kubernetes.io/name", value: "trellis") == nil)
        #expect(PodNames.labelProblem(name: "team", value: "") == nil)
        #expect(PodNames.labelProblem(name: "bad key", value: "x")?.contains("label key \"bad key\"") == true)
        #expect(PodNames.labelProblem(name: "Upper.Case/x", value: "x")?.contains("invalid prefix") == true)
        #expect(PodNames.labelProblem(name: "team", value: "data science")?.contains("\"data science\"") == true)
    }
}

/// Pods with every field the builder can set pass Kubernetes's own schema
/// (kubernetes-validate, offline, --strict).
@Suite struct PodSchemaTests {
    @Test func aPodWithEveryFieldValidates() async throws {
        var settings = PodSettings()
        settings.serviceAccount = "trellis-tasks"
        settings.imagePullPolicy = "IfNotPresent"
        settings.runAsUser = 50000
        settings.extraLabels = ["team": "data"]
        var task = PodBuilderTests.seedEcho()
        task.requests = ["cpu": "500m", "memory": "256Mi"]
        task.limits = ["memory": "1Gi"]
        task.annotations = ["owner": "data-team"]
        task.nodeSelector = ["pool": "batch"]
        var toleration = PodTask.Toleration()
        toleration.key = "dedicated"
        toleration.operator = "Equal"
        toleration.value = "batch"
        toleration.effect = "NoExecute"
        toleration.tolerationSeconds = 300
        task.tolerations = [toleration]
        let pod = PodBuilder.build(task, settings: settings, executor: "pod-per-task", namespace: "jobs", suffix: "abcdefgh")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try await KubernetesValidate.validate(json: try encoder.encode(pod), name: "a pod with every field")
    }
}
