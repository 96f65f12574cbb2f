import Foundation
import KubeSimulator
import Testing
import TrellisTestSupport

/// GETs `path` until `condition` holds for its JSON (or 15 s pass); the last answer.
func poll(_ curl: Curl, _ path: String, until condition: ([String: Any]) -> Bool) async throws -> [String: Any] {
    var last: [String: Any] = [:]
    let deadline = ContinuousClock.now + .seconds(15)
    while ContinuousClock.now < deadline {
        last = try curl.request("GET", path).json
        if condition(last) { return last }
        try await Task.sleep(for: .milliseconds(30))
    }
    return last
}

/// Runs `body` against a fresh simulator on a free port.
func withKubeSimulator(_ configure: (inout KubeSimulator.Configuration) -> Void = { _ in }, _ body: (KubeSimulator, Curl) async throws -> Void) async throws {
    var configuration = KubeSimulator.Configuration()
    configure(&configuration)
    let simulator = try KubeSimulator(configuration: configuration)
    try await simulator.start()
    let curl = try Curl(port: try #require(simulator.port))
    do { try await body(simulator, curl) } catch { await simulator.shutdown(); throw error }
    await simulator.shutdown()
    try await curl.validateReceived()
}

func items(_ list: [String: Any]) -> [[String: Any]] { list["items"] as? [[String: Any]] ?? [] }

/// The events about the Pod `name` in `namespace`, oldest first.
func podEvents(_ curl: Curl, _ namespace: String, _ name: String) throws -> [[String: Any]] {
    items(try curl.request("GET", "/api/v1/namespaces/\(namespace)/events?fieldSelector=involvedObject.name%3D\(name)").json)
}

func reasons(_ events: [[String: Any]]) -> [String] { events.compactMap { $0["reason"] as? String } }

@Suite("Kubernetes API simulator: events and Pod status", .timeLimit(.minutes(1)))
struct KubeSimulatorEventTests {
    @Test func aPodThatRunsHasTheKubeletsEventsAndAFaithfulStatus() async throws {
        try await withKubeSimulator { _, curl in
            let created = try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("runs", command: ["sh", "-c", "echo hi"]))
            #expect(created.code == 201)
            let uid = try #require(created.json[path: "metadata.uid"] as? String)
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("other", command: ["true"])).code == 201)
            let done = try await poll(curl, "/api/v1/namespaces/default/pods/runs") { $0[path: "status.phase"] as? String == "Succeeded" }
            #expect(done[path: "spec.nodeName"] as? String == "trellis-kube-sim")
            #expect(done[path: "status.hostIP"] as? String == "127.0.0.1")
            #expect(done[path: "status.podIP"] as? String == "127.0.0.1")
            #expect(done[path: "status.podIPs.0.ip"] as? String == "127.0.0.1")
            #expect(done[path: "status.qosClass"] as? String == "BestEffort")
            let terminated = try #require(done[path: "status.containerStatuses.0.state.terminated"] as? [String: Any])
            #expect(terminated["exitCode"] as? Int == 0)
            #expect(terminated["reason"] as? String == "Completed")
            #expect(terminated["startedAt"] is String)
            #expect(terminated["finishedAt"] is String)
            let containerID = try #require(terminated["containerID"] as? String)
            #expect(containerID.hasPrefix("containerd://") && containerID.count == "containerd://".count + 64)
            #expect(done[path: "status.containerStatuses.0.containerID"] as? String == containerID)
            #expect((done[path: "status.containerStatuses.0.imageID"] as? String)?.hasPrefix("docker.io/library/ubuntu@sha256:") == true)
            let conditions = (done[path: "status.conditions"] as? [[String: Any]] ?? []).reduce(into: [String: String]()) {
                $0[$1["type"] as? String ?? ""] = "\($1["status"] ?? "")/\($1["reason"] ?? "")"
            }
            #expect(conditions == ["PodScheduled": "True/", "Initialized": "True/PodCompleted", "Ready": "False/PodCompleted",
                                   "ContainersReady": "False/PodCompleted", "PodReadyToStartContainers": "False/"])

            var events: [[String: Any]] = []
            for _ in 0..<100 where !reasons(events).contains("Started") {
                events = try podEvents(curl, "default", "runs")
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(reasons(events) == ["Scheduled", "Pulling", "Pulled", "Created", "Started"])
            for event in events {
                #expect(event["apiVersion"] as? String == "v1")
                #expect(event["kind"] as? String == "Event")
                #expect((event[path: "metadata.name"] as? String)?.hasPrefix("runs.") == true)
                #expect(event[path: "metadata.namespace"] as? String == "default")
                #expect(event[path: "metadata.uid"] is String)
                #expect(event[path: "metadata.resourceVersion"] is String)
                #expect(event[path: "involvedObject.kind"] as? String == "Pod")
                #expect(event[path: "involvedObject.apiVersion"] as? String == "v1")
                #expect(event[path: "involvedObject.namespace"] as? String == "default")
                #expect(event[path: "involvedObject.name"] as? String == "runs")
                #expect(event[path: "involvedObject.uid"] as? String == uid)
                #expect(event["type"] as? String == "Normal")
                #expect(event["count"] as? Int == 1)
                #expect(event["firstTimestamp"] is String)
                #expect(event["lastTimestamp"] is String)
                let component = event["reason"] as? String == "Scheduled" ? "default-scheduler" : "kubelet"
                #expect(event[path: "source.component"] as? String == component)
                #expect(event["reportingComponent"] as? String == component)
            }
            #expect(events.first?[path: "involvedObject.fieldPath"] == nil)
            #expect(events.last?[path: "involvedObject.fieldPath"] as? String == "spec.containers{base}")
            #expect(events.first?["message"] as? String == "Successfully assigned default/runs to trellis-kube-sim")
            #expect(events.last?["message"] as? String == "Started container base")

            // Kind and name together; no selector; a single event; other namespaces.
            let both = try curl.request("GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.kind%3DPod,involvedObject.name%3Druns")
            #expect(both.json["kind"] as? String == "EventList")
            #expect(both.json["apiVersion"] as? String == "v1")
            #expect(both.json[path: "metadata.resourceVersion"] is String)
            #expect(reasons(items(both.json)) == reasons(events))
            #expect(items(try curl.request("GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.kind%3DDeployment").json).isEmpty)
            let all = items(try curl.request("GET", "/api/v1/namespaces/default/events").json)
            #expect(Set(all.compactMap { $0[path: "involvedObject.name"] as? String }) == ["runs", "other"])
            #expect(items(try curl.request("GET", "/api/v1/namespaces/elsewhere/events").json).isEmpty)
            #expect(items(try curl.request("GET", "/api/v1/events").json).count == all.count)
            let name = try #require(events.first?[path: "metadata.name"] as? String)
            #expect(try curl.request("GET", "/api/v1/namespaces/default/events/\(name)").json["reason"] as? String == "Scheduled")
            let missing = try curl.request("GET", "/api/v1/namespaces/default/events/nope")
            #expect(missing.code == 404)
            #expect(missing.json["message"] as? String == #"events "nope" not found"#)
            let unsupported = try curl.request("GET", "/api/v1/namespaces/default/events?fieldSelector=spec.foo%3Dbar")
            #expect(unsupported.code == 400)
            #expect(unsupported.json["message"] as? String == "field label not supported: spec.foo")
        }
    }

    @Test func deletingARunningPodRecordsKilling() async throws {
        try await withKubeSimulator { _, curl in
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("sleeper", command: ["sleep", "30"])).code == 201)
            _ = try await poll(curl, "/api/v1/namespaces/default/pods/sleeper") { $0[path: "status.phase"] as? String == "Running" }
            let running = try curl.request("GET", "/api/v1/namespaces/default/pods/sleeper").json
            #expect(running[path: "status.containerStatuses.0.ready"] as? Bool == true)
            #expect((running[path: "status.conditions"] as? [[String: Any]])?.first { $0["type"] as? String == "Ready" }?["status"] as? String == "True")
            #expect(try curl.request("DELETE", "/api/v1/namespaces/default/pods/sleeper?gracePeriodSeconds=0").code == 200)
            let killing = try #require(try podEvents(curl, "default", "sleeper").last)
            #expect(killing["reason"] as? String == "Killing")
            #expect(killing["type"] as? String == "Normal")
            #expect(killing["message"] as? String == "Stopping container base")
            #expect(killing[path: "source.component"] as? String == "kubelet")
        }
    }

    @Test func anUnpullableImageGoesErrImagePullThenImagePullBackOff() async throws {
        try await withKubeSimulator { simulator, curl in
            let watch = try curl.stream("/api/v1/namespaces/default/pods?watch=true&resourceVersion=\(simulator.resourceVersion)")
            defer { watch.stop() }
            var body = pod("unpullable", command: ["true"])
            body["spec"] = ["containers": [["name": "base", "image": "registry.invalid/app:1", "command": ["true"]]]]
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: body).code == 201)
            #expect(try await watch.wait { $0.events.contains { $0[path: "object.status.containerStatuses.0.state.waiting.reason"] as? String == "ImagePullBackOff" } })
            let waiting = watch.events.compactMap { $0[path: "object.status.containerStatuses.0.state.waiting.reason"] as? String }
            #expect(waiting == ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"])
            #expect(watch.events.allSatisfy { phase($0) == "Pending" })
            let events = try podEvents(curl, "default", "unpullable")
            #expect(events.map { "\($0["type"] ?? "") \($0["reason"] ?? "")" } == [
                "Normal Scheduled", "Normal Pulling", "Warning Failed", "Warning Failed", "Normal BackOff", "Warning Failed",
            ])
            #expect(events.map { $0["message"] as? String ?? "" }.filter { $0.hasPrefix("Error: ") } == ["Error: ErrImagePull", "Error: ImagePullBackOff"])
            #expect((events[2]["message"] as? String)?.hasPrefix(#"Failed to pull image "registry.invalid/app:1": "#) == true)
            #expect(events[4]["message"] as? String == #"Back-off pulling image "registry.invalid/app:1""#)
        }
    }

    @Test func anUnschedulablePodHasFailedScheduling() async throws {
        try await withKubeSimulator { _, curl in
            var body = pod("nowhere", command: ["true"])
            body["spec"] = ["nodeSelector": ["gpu": "yes"], "containers": [["name": "base", "image": "busybox", "command": ["true"]]]]
            let created = try curl.request("POST", "/api/v1/namespaces/default/pods", json: body).json
            #expect(created[path: "status.conditions.0.type"] as? String == "PodScheduled")
            #expect(created[path: "status.conditions.0.status"] as? String == "False")
            #expect(created[path: "status.conditions.0.reason"] as? String == "Unschedulable")
            #expect((created[path: "status.conditions"] as? [Any])?.count == 1)
            #expect(created[path: "spec.nodeName"] == nil)
            #expect(created[path: "status.hostIP"] == nil)
            #expect(created[path: "status.phase"] as? String == "Pending")
            let events = try podEvents(curl, "default", "nowhere")
            #expect(events.count == 1)
            #expect(events.first?["type"] as? String == "Warning")
            #expect(events.first?["reason"] as? String == "FailedScheduling")
            #expect(events.first?[path: "source.component"] as? String == "default-scheduler")
            #expect((events.first?["message"] as? String)?.hasPrefix("0/1 nodes are available") == true)
        }
    }

    @Test func terminationReasonsAndStartErrors() async throws {
        try await withKubeSimulator { _, curl in
            // `$$$$`: Kubernetes turns `$$` in args into `$` (so `$(X)` can be escaped).
            var oom = pod("oom", command: ["sh", "-c", "kill -9 $$$$"])
            oom["metadata"] = ["name": "oom", "annotations": ["simulator.trellis.dev/terminate-reason": "OOMKilled"]]
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: oom).code == 201)
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("errs", command: ["sh", "-c", "exit 1"])).code == 201)
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("nocommand", command: ["no-such-command-here"])).code == 201)
            let killed = try await poll(curl, "/api/v1/namespaces/default/pods/oom") { $0[path: "status.phase"] as? String == "Failed" }
            #expect(killed[path: "status.containerStatuses.0.state.terminated.reason"] as? String == "OOMKilled")
            #expect(killed[path: "status.containerStatuses.0.state.terminated.exitCode"] as? Int == 137)
            #expect((killed[path: "metadata.annotations"] as? [String: String])?["simulator.trellis.dev/terminate-reason"] == "OOMKilled")
            let errs = try await poll(curl, "/api/v1/namespaces/default/pods/errs") { $0[path: "status.phase"] as? String == "Failed" }
            #expect(errs[path: "status.containerStatuses.0.state.terminated.reason"] as? String == "Error")
            #expect(errs[path: "status.containerStatuses.0.state.terminated.exitCode"] as? Int == 1)
            let cannot = try await poll(curl, "/api/v1/namespaces/default/pods/nocommand") { $0[path: "status.phase"] as? String == "Failed" }
            #expect(cannot[path: "status.containerStatuses.0.state.terminated.reason"] as? String == "StartError")
            let failed = try podEvents(curl, "default", "nocommand").last
            #expect(failed?["type"] as? String == "Warning")
            #expect(failed?["reason"] as? String == "Failed")
            #expect((failed?["message"] as? String)?.contains("executable file not found") == true)
        }
    }
}
