import Foundation
import Testing
import TrellisProto

@testable import TrellisCore

@Suite struct DagFileTests {
    @Test func seedDagReadsAsTheSeedDocumentDescribesIt() throws {
        let dag = try DagFile.parse(try RepositoryFiles.read("examples/seed_k8s_pod_operator.yaml"), file: "seed.yaml")
        let spec = dag.spec
        #expect(spec.dagID == "example_using_k8s_pod_operator")
        #expect(spec.schedule == "0 1 * * *")
        #expect(spec.catchup == false)
        #expect(spec.timezone == "UTC")
        #expect(spec.startDate.unixMicros == 1_596_758_400_000_000)  // 2020-08-07T00:00:00Z
        #expect(!spec.hasEndDate)
        #expect(spec.maxActiveRuns == 16)
        #expect(spec.maxActiveTasks == 16)
        #expect(spec.tasks.map(\.taskID) == ["task-1-echo", "task-2-sleep"])

        let echo = spec.tasks[0], sleep = spec.tasks[1]
        for task in [echo, sleep] {
            #expect(task.owner == "admin")
            #expect(task.dependsOnPast == false)
            #expect(task.retries == 2)
            #expect(task.retryDelay.millis == 30_000)
            #expect(task.sla.millis == 23 * 3_600_000)
            #expect(task.executor == "pod-per-task")
            #expect(task.triggerRule == .allSuccess)
            #expect(task.pool == "default_pool")
            #expect(task.pod.image == "ubuntu:16.04")
            #expect(task.pod.namespace == "airflow-k8spodoperator")
            #expect(task.pod.labels == ["foo": "bar"])
            #expect(task.pod.onFinishAction == .keepPod)
            #expect(task.pod.inCluster)
            #expect(task.pod.getLogs)
            #expect(task.pod.startupTimeoutSeconds == 120)
        }
        #expect(echo.pod.name == "test-using-k8spodoperator-task-1")
        #expect(echo.pod.cmds == ["bash", "-cx"])
        #expect(echo.pod.arguments == ["echo 10"])
        #expect(echo.upstream.isEmpty)
        #expect(sleep.pod.name == "test-using-k8spodoperator-task-2")
        #expect(sleep.pod.cmds == ["sleep"])
        #expect(sleep.pod.arguments == ["{{ params.sleep_seconds }}"])
        #expect(sleep.upstream == ["task-1-echo"])
        #expect(dag.graph.topologicalOrder == [0, 1])
    }

    @Test(arguments: try RepositoryFiles.list("examples", suffix: ".yaml"))
    func everyExampleIsValid(path: String) throws {
        do {
            _ = try DagFile.parse(try RepositoryFiles.read(path), file: path)
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test func airflowDefaultsFillWhatTheFileLeavesOut() throws {
        let dag = try DagFile.parse("""
            dag_id: minimal
            tasks:
              - task_id: only
                command: [true]
            """, file: "minimal.yaml", options: .init(defaultExecutor: "persistent-pool"))
        let task = dag.spec.tasks[0]
        #expect(dag.spec.schedule.isEmpty)
        #expect(dag.spec.catchup == false)
        #expect(dag.spec.maxActiveRuns == 16)
        #expect(dag.spec.maxActiveTasks == 16)
        #expect(dag.spec.paramsJson == "{}")
        #expect(task.owner == "airflow")
        #expect(task.retries == 0)
        #expect(task.retryDelay.millis == 300_000)
        #expect(task.triggerRule == .allSuccess)
        #expect(task.priorityWeight == 1)
        #expect(task.pool == "default_pool")
        #expect(task.poolSlots == 1)
        #expect(task.executor == "persistent-pool")
        #expect(!task.hasExecutionTimeout)
        #expect(!task.hasMaxRetryDelay)
        #expect(task.process.command == ["true"])
    }

    @Test func taskValuesOverrideDefaultArgsAndOtherKindsAreNotInherited() throws {
        let dag = try DagFile.parse("""
            dag_id: mixed
            default_args:
              retries: 3
              namespace: jobs
              image: busybox
              command: [echo, default]
            tasks:
              - task_id: in-pod
                executor: pod-per-task
                retries: 1
              - task_id: on-agent
                executor: persistent-pool
            """, file: "mixed.yaml")
        #expect(dag.spec.tasks[0].retries == 1)
        #expect(dag.spec.tasks[0].pod.namespace == "jobs")
        #expect(dag.spec.tasks[0].pod.image == "busybox")
        #expect(dag.spec.tasks[1].retries == 3)
        #expect(dag.spec.tasks[1].process.command == ["echo", "default"])
    }

    @Test func bitshiftAndUpstreamCombine() throws {
        let dag = try DagFile.parse("""
            dag_id: shapes
            default_args: {executor: persistent-pool, command: [true]}
            tasks:
              - {task_id: a}
              - {task_id: b}
              - {task_id: c}
              - {task_id: d, upstream: [a]}
            dependencies:
              - "a >> [b, c] >> d"
              - "d << c"
            """, file: "shapes.yaml")
        #expect(dag.spec.tasks.map(\.upstream) == [[], ["a"], ["a"], ["a", "b", "c"]])
    }

    @Test func isDeleteOperatorPodFalseMeansKeepPod() throws {
        let dag = try DagFile.parse("""
            dag_id: legacy
            tasks:
              - task_id: t
                image: busybox
                is_delete_operator_pod: false
            """, file: "legacy.yaml")
        #expect(dag.spec.tasks[0].pod.onFinishAction == .keepPod)
        #expect(dag.spec.tasks[0].executor.isEmpty)
    }

    @Test func paramsAreStoredAsJSONInTheUsersOrder() throws {
        let dag = try DagFile.parse("""
            dag_id: params
            params:
              region: eu
              limit: 1000
              ratio: 0.5
              dry_run: false
              quoted: "123"
              nested: {list: [1, two, null]}
            tasks:
              - {task_id: t, executor: persistent-pool, command: [echo, "{{ params.region }}"]}
            """, file: "params.yaml")
        #expect(dag.spec.paramsJson == #"{"region":"eu","limit":1000,"ratio":0.5,"dry_run":false,"quoted":"123","nested":{"list":[1,"two",null]}}"#)
    }

    @Test func executorConfigForPluginExecutors() throws {
        let dag = try DagFile.parse("""
            dag_id: plugin
            tasks:
              - task_id: t
                executor: my-batch
                executor_config: {queue: nightly, cpus: 4}
            """, file: "plugin.yaml")
        #expect(dag.spec.tasks[0].executor == "my-batch")
        #expect(dag.spec.tasks[0].executorConfigJson == #"{"queue":"nightly","cpus":4}"#)
        #expect(dag.spec.tasks[0].spec == nil)
    }

    @Test func queueSelectors() throws {
        #expect(try QueueSelector.normalized("gpu") == "queue=gpu")
        #expect(try QueueSelector.normalized(" zone=eu , disk=ssd ") == "zone=eu,disk=ssd")
        #expect(throws: CoreError.self) { try QueueSelector.normalized("zone=eu,,") }
        #expect(throws: CoreError.self) { try QueueSelector.normalized("bad value") }
    }
}
