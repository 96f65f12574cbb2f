import Foundation
import KubeSimulator
import Testing
import TrellisKube
import TrellisProto
import TrellisTestSupport
import TrellisWire

/// The pod-per-task executor end to end: the real trellisd loading the
/// real plugin, which talks HTTP to the Kubernetes API simulator; every pod
/// "runs" as a local process of its command, so phases, exit codes and logs
/// are real.
@Suite struct PodPerTaskEndToEndTests {
    /// A simulator, a trellisd with pod-per-task pointed at it, the API and
    /// a Kubernetes client to look at the pods.
    struct Setup {
        let simulator: KubeSimulator
        let served: ServedControlPlane
        let trellisd: BackgroundProcess
        let api: WireConnection
        let kube: KubeClient

        var environment: [String: String] {
            ["TRELLIS__EXECUTOR__POD_PER_TASK__API_SERVER": "http://127.0.0.1:\(simulator.port ?? 0)",
             "TRELLIS__EXECUTOR__POD_PER_TASK__LOG_WAIT_SECONDS": "5"]
        }
    }

    static func with(
        simulator configure: (inout KubeSimulator.Configuration) -> Void = { _ in }, settings: [String: String] = [:],
        _ body: (Setup) async throws -> Void
    ) async throws {
        var configuration = KubeSimulator.Configuration()
        configure(&configuration)
        let simulator = try KubeSimulator(configuration: configuration)
        try await simulator.start()
        do {
            try await ServedControlPlane.with { served, _ in
                try served.addPlugin("libtrellis-executor-pod-per-task.so")
                var environment = ["TRELLIS__EXECUTOR__POD_PER_TASK__API_SERVER": "http://127.0.0.1:\(simulator.port ?? 0)",
                                   "TRELLIS__EXECUTOR__POD_PER_TASK__LOG_WAIT_SECONDS": "5"]
                environment.merge(settings) { _, new in new }
                let trellisd = try await served.start(name: "pods", environment: environment)
                let api = try await served.api(trellisd)
                let kube = try KubeClient(endpoint: KubeEndpoint(server: "http://127.0.0.1:\(simulator.port ?? 0)"))
                try await body(Setup(simulator: simulator, served: served, trellisd: trellisd, api: api, kube: kube))
                await api.close()
                // Every Pod the executor sent, as sent, against Kubernetes's schema.
                let sent = simulator.podCreationBodies
                #expect(!sent.isEmpty)
                try await KubernetesValidate.validate(objects: sent, name: "the pods pod-per-task sent")
            }
        } catch {
            await simulator.shutdown()
            throw error
        }
        await simulator.shutdown()
    }

    static func pods(_ kube: KubeClient, namespace: String, task: String? = nil) async throws -> [Pod] {
        try await kube.listPods(namespace: namespace, labelSelector: "trellis.dev/executor=pod-per-task" + (task.map { ",task_id=\($0)" } ?? "")).items
    }

    @Test func theSeedDagRunsItsTwoPodsInOrderAndKeepsThem() async throws {
        try await Self.with { setup in
            let api = setup.api
            let submitted = try await api.submit(try AgentPoolTests.example("seed_k8s_pod_operator.yaml"), file: "seed_k8s_pod_operator.yaml")
            let run = try await api.trigger(submitted.dagID, conf: #"{"sleep_seconds": 1}"#)
            let end = try await api.waitForEnd(submitted.dagID, run, within: .seconds(120), explaining: [setup.trellisd])
            #expect(end.run.state == .success, "\(end.tasks.map { "\($0.taskID)=\($0.state) \($0.failureReason)" })")

            // Both pods kept (on_finish_action: keep_pod), named after the task's
            // `name` with an 8-character suffix, labelled foo=bar.
            let pods = try await Self.pods(setup.kube, namespace: "airflow-k8spodoperator")
            #expect(pods.count == 2)
            let echo = try #require(pods.first { $0.labels["task_id"] == "task-1-echo" })
            let sleep = try #require(pods.first { $0.labels["task_id"] == "task-2-sleep" })
            #expect(echo.name.wholeMatch(of: /test-using-k8spodoperator-task-1-[a-z0-9]{8}/) != nil, "\(echo.name)")
            #expect(sleep.name.wholeMatch(of: /test-using-k8spodoperator-task-2-[a-z0-9]{8}/) != nil, "\(sleep.name)")
            for pod in pods {
                #expect(pod.labels["foo"] == "bar")
                #expect(pod.status?.phase == "Succeeded")
                #expect(pod.spec?.containers.first?.image == "ubuntu:16.04")
            }
            #expect(sleep.spec?.containers.first?.args == ["1"])
            // The sleep started after the echo ended.
            let echoEnded = try #require(echo.status?.containerStatuses?.first?.state?.terminated?.finishedAt)
            #expect(try #require(sleep.metadata.creationTimestamp) >= echoEnded)

            // The echo's log, through Trellis's API: bash's trace and its output.
            let log = try await api.log(submitted.dagID, run, "task-1-echo")
            #expect(log.split(separator: "\n").contains("10"), "\(log)")
            #expect(log.contains("+ echo 10"), "\(log)")
            // The pod name is what the attempt ran on.
            let echoTask = try #require(end.tasks.first { $0.taskID == "task-1-echo" })
            #expect(echoTask.podName == echo.name, "\(echoTask)")
            // A success has no failure reason to show.
            #expect(end.tasks.allSatisfy { $0.failureReason.isEmpty }, "\(end.tasks.map(\.failureReason))")
        }
    }

    @Test func anImagePullFailureFailsTheTaskAtOnceWithTheReason() async throws {
        try await Self.with(simulator: { $0.unpullableImages = ["registry.invalid/nope:1"] }) { setup in
            let api = setup.api
            _ = try await api.submit("""
                dag_id: bad_image
                default_args: {executor: pod-per-task, retries: 0, namespace: jobs}
                tasks:
                  # A startup timeout far beyond the test: only the pull failure can end it in time.
                  - {task_id: pull, image: "registry.invalid/nope:1", cmds: ["true"], startup_timeout_seconds: 3600, on_finish_action: delete_succeeded_pod}
                """, file: "bad_image.yaml")
            let run = try await api.trigger("bad_image")
            let end = try await api.waitForEnd("bad_image", run, within: .seconds(60), explaining: [setup.trellisd])
            let task = try #require(end.tasks.first)
            #expect(end.run.state == .failed)
            #expect(task.state == .failed)
            // ErrImagePull, or ImagePullBackOff if the kubelet retried before the watch event arrived.
            #expect(task.failureReason.contains("ErrImagePull") || task.failureReason.contains("ImagePullBackOff"), "\(task.failureReason)")
            #expect(task.failureReason.contains("registry.invalid/nope:1"), "\(task.failureReason)")
            // delete_succeeded_pod keeps the failed pod for a look.
            let pods = try await Self.pods(setup.kube, namespace: "jobs")
            #expect(pods.count == 1)
            #expect(pods.first?.name == task.podName)

            // `trellis runs show` tells the user why (apache/airflow#12264).
            let admin = try String(contentsOfFile: setup.served.adminTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let trellis = try CLITests.CLI(
                scratch: setup.served.scratch, address: "127.0.0.1:\(try ServedControlPlane.ports(of: setup.trellisd).rpc)", token: admin)
            let shown = try await trellis("runs", "show", "bad_image", "latest", "-o", "json")
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(shown.stdout.contains("ImagePull"), "\(shown.stdout)")
            let table = try await trellis("runs", "show", "bad_image", "latest")
            #expect(table.stdout.contains("ImagePull"), "\(table.stdout)")
        }
    }

    @Test func anUnschedulablePodFailsAtItsStartupTimeout() async throws {
        try await Self.with { setup in
            let api = setup.api
            _ = try await api.submit("""
                dag_id: nowhere
                default_args: {executor: pod-per-task, retries: 0, namespace: jobs, image: "busybox:1.36"}
                tasks:
                  - {task_id: gpu, cmds: ["true"], node_selector: {accelerator: h100}, startup_timeout_seconds: 2}
                """, file: "nowhere.yaml")
            let run = try await api.trigger("nowhere")
            let end = try await api.waitForEnd("nowhere", run, within: .seconds(60), explaining: [setup.trellisd])
            let task = try #require(end.tasks.first)
            #expect(task.state == .failed)
            #expect(task.failureReason.contains("not scheduled within 2 s"), "\(task.failureReason)")
            // Deleted (delete_pod), never started.
            #expect(try await Self.pods(setup.kube, namespace: "jobs").isEmpty)
        }
    }

    @Test func failuresCarryTheExitCodeAndPodsAreDeletedByDefault() async throws {
        try await Self.with { setup in
            let api = setup.api
            _ = try await api.submit("""
                dag_id: exits
                default_args: {executor: pod-per-task, retries: 0, namespace: jobs, image: "busybox:1.36"}
                tasks:
                  - {task_id: ok, cmds: [sh, -c, "echo fine"]}
                  - {task_id: broken, cmds: [sh, -c, "echo 'disk full' >&2; exit 3"]}
                  # The simulator's stand-in for the kernel's OOM killer: the reason the kubelet would report.
                  - task_id: greedy
                    # `$$$$`: Kubernetes turns `$$` in command and args into `$`.
                    cmds: [sh, -c, "kill -9 $$$$"]
                    annotations: {simulator.trellis.dev/terminate-reason: OOMKilled}
                """, file: "exits.yaml")
            let run = try await api.trigger("exits")
            let end = try await api.waitForEnd("exits", run, within: .seconds(60), explaining: [setup.trellisd])
            let tasks = Dictionary(uniqueKeysWithValues: end.tasks.map { ($0.taskID, $0) })
            #expect(tasks["ok"]?.state == .success)
            #expect(tasks["broken"]?.state == .failed)
            #expect(tasks["broken"]?.exitCode.value == 3)
            #expect(tasks["broken"]?.failureReason.contains("exited with code 3") == true, "\(tasks["broken"]?.failureReason ?? "")")
            #expect(tasks["greedy"]?.state == .failed)
            #expect(tasks["greedy"]?.exitCode.value == 137)
            #expect(tasks["greedy"]?.failureReason.contains("OOMKilled") == true, "\(tasks["greedy"]?.failureReason ?? "")")
            #expect(tasks["greedy"]?.failureReason.contains("more memory than its limit") == true)
            // The log outlives the pod (delete_pod is the default).
            #expect(try await Self.pods(setup.kube, namespace: "jobs").isEmpty)
            #expect(try await api.log("exits", run, "broken").contains("disk full"))
            #expect(try await api.log("exits", run, "ok").contains("fine"))
        }
    }

    @Test func apiErrorsAndDroppedWatchesAreSurvived() async throws {
        try await Self.with { setup in
            let api = setup.api
            _ = try await api.submit("""
                dag_id: bumpy
                default_args: {executor: pod-per-task, retries: 0, namespace: jobs, image: "busybox:1.36"}
                tasks:
                \((1...6).map { "  - {task_id: t\($0), cmds: [sh, -c, \"sleep 1; echo done-\($0)\"]}" }.joined(separator: "\n"))
                """, file: "bumpy.yaml")
            setup.simulator.injectFaults(code: 500, count: 3, method: "POST")
            let run = try await api.trigger("bumpy")
            // Watches dropped and API errors while the pods run.
            for _ in 0..<4 {
                try await Task.sleep(for: .milliseconds(400))
                setup.simulator.dropWatches()
                setup.simulator.injectFaults(code: 500, count: 2, method: "GET")
            }
            let end = try await api.waitForEnd("bumpy", run, within: .seconds(90), explaining: [setup.trellisd])
            #expect(end.run.state == .success, "\(end.tasks.map { "\($0.taskID)=\($0.state) \($0.failureReason)" })")
            for index in 1...6 {
                #expect(try await api.log("bumpy", run, "t\(index)").contains("done-\(index)"))
            }
        }
    }

    @Test func cancellingARunDeletesItsPods() async throws {
        try await Self.with { setup in
            let api = setup.api
            _ = try await api.submit("""
                dag_id: long
                default_args: {executor: pod-per-task, retries: 0, namespace: jobs, image: "busybox:1.36", on_finish_action: keep_pod}
                tasks:
                  - {task_id: wait, cmds: [sh, -c, "echo waiting; sleep 120"]}
                """, file: "long.yaml")
            let run = try await api.trigger("long")
            try await eventually("the pod runs", timeout: .seconds(60)) {
                try await Self.pods(setup.kube, namespace: "jobs").first?.status?.phase == "Running"
            }
            var cancel = Trellis_V1_CancelRunRequest()
            cancel.dagID = "long"
            cancel.runID = run
            let _: Trellis_V1_CancelRunResponse = try await api.call("CancelRun", cancel)
            // Deleted even though keep_pod: cancelling is not finishing.
            try await eventually("the pod is deleted", timeout: .seconds(60)) {
                try await Self.pods(setup.kube, namespace: "jobs").isEmpty
            }
            try await eventually("the task is no longer running", timeout: .seconds(60)) {
                try await api.grid("long", run).tasks.first?.state != .running
            }
            #expect(try await api.log("long", run, "wait").contains("waiting"))
        }
    }

    @Test func aRestartedControlPlaneAdoptsRunningPodsInsteadOfRecreatingThem() async throws {
        try await Self.with { setup in
            let api = setup.api
            // The pod's command waits for this file after its first line.
            let gate = setup.served.scratch.appendingPathComponent("adopt-gate").path
            _ = try await api.submit("""
                dag_id: adopt
                default_args: {executor: pod-per-task, retries: 2, retry_delay: 0s, namespace: jobs, image: "busybox:1.36"}
                tasks:
                  - {task_id: slow, cmds: [sh, -c, "echo before; while [ ! -e \(gate) ]; do sleep 0.1; done; echo during; sleep 6; echo after"], on_finish_action: keep_pod}
                """, file: "adopt.yaml")
            let run = try await api.trigger("adopt")
            try await eventually("the pod runs", timeout: .seconds(60)) {
                try await Self.pods(setup.kube, namespace: "jobs").first?.status?.phase == "Running"
            }
            try await eventually("the task is running and its first line recorded", timeout: .seconds(30)) {
                guard try await api.grid("adopt", run).tasks.first?.state == .running else { return false }
                return try await api.log("adopt", run, "slow").contains("before")
            }
            await api.close()
            setup.trellisd.signal(SIGKILL)
            await setup.trellisd.wait()
            // A line written while no trellisd runs: only the pod has it.
            let pod = try #require(try await Self.pods(setup.kube, namespace: "jobs").first)
            FileManager.default.createFile(atPath: gate, contents: nil)
            try await eventually("the pod wrote a line while trellisd was down", timeout: .seconds(30)) {
                String(decoding: try await setup.kube.podLog(pod.metadata.name ?? "", namespace: "jobs"), as: UTF8.self).contains("during")
            }
            let successor = try await setup.served.start(name: "pods-2", environment: setup.environment)
            let again = try await setup.served.api(successor)
            let end = try await again.waitForEnd("adopt", run, within: .seconds(90), explaining: [successor])
            #expect(end.run.state == .success, "\(end.tasks.map { "\($0.taskID)=\($0.state) try \($0.tryNumber) \($0.failureReason)" })")
            #expect(end.tasks.first?.tryNumber == 1)
            // One pod ever: adopted, never recreated.
            let pods = try await Self.pods(setup.kube, namespace: "jobs")
            #expect(pods.count == 1, "\(pods.map(\.name))")
            // Every line once: those recorded before, the one written while
            // trellisd was down, and those after.
            let log = try await again.log("adopt", run, "slow")
            for line in ["before", "during", "after"] {
                #expect(log.components(separatedBy: "\n").filter { $0 == line }.count == 1, "\(line) in:\n\(log)")
            }
            #expect(log.contains("reading pod"), "\(log)")
            await again.close()
        }
    }
}
