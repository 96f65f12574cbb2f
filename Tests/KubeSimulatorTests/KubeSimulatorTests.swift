import Foundation
import KubeSimulator
import Testing
import TrellisProcess
import TrellisTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// HTTP over loopback through curl (URLSession is not reliable here).
struct Curl {
    let base: String
    let directory: String
    /// Sent with every request (e.g. `Authorization: Bearer …`).
    var headers: [String] = []
    /// Every JSON object the simulator answered with, and the output files
    /// of the streams: `validateReceived()` checks them against the schemas.
    let received = Shared<Set<Data>>([])
    let streams = Shared<[String]>([])

    init(port: Int, token: String? = nil) throws {
        base = "http://127.0.0.1:\(port)"
        if let token { headers = ["Authorization: Bearer \(token)"] }
        directory = NSTemporaryDirectory() + "kube-sim-test-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    struct Response {
        var code: Int
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func request(_ method: String, _ path: String, json: Any? = nil, contentType: String = "application/json", headers extra: [String] = [], timeout: Int = 20) throws -> Response {
        let id = UUID().uuidString
        let bodyFile = "\(directory)/\(id).body", codeFile = "\(directory)/\(id).code"
        var arguments = ["-s", "-X", method, "-o", bodyFile, "-w", "%{http_code}", "--max-time", String(timeout)]
        for header in headers + extra { arguments += ["-H", header] }
        if let json {
            let requestFile = "\(directory)/\(id).request"
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: requestFile))
            arguments += ["-H", "Content-Type: \(contentType)", "--data-binary", "@\(requestFile)"]
        }
        let pid = try Spawn.start("/usr/bin/curl", arguments + [base + path], environment: [:], standardOutput: .file(codeFile))
        _ = Spawn.wait(pid)
        let code = Int(String(decoding: FileManager.default.contents(atPath: codeFile) ?? Data(), as: UTF8.self)) ?? 0
        let response = Response(code: code, body: FileManager.default.contents(atPath: bodyFile) ?? Data())
        if response.json["kind"] != nil { received.mutate { _ = $0.insert(response.body) } }
        return response
    }

    /// Validates every object the simulator returned to this client
    /// (responses and the objects of watch events) with kubernetes-validate
    /// --strict; `Status` objects against the bundle's meta/v1 Status
    /// schema. Then removes the client's files.
    func validateReceived() async throws {
        var objects = received.value
        for file in streams.value {
            for event in Stream(pid: 0, file: file).events {
                if let object = event["object"] as? [String: Any] { objects.insert(try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) }
            }
        }
        let isStatus = { (object: Data) in ((try? JSONSerialization.jsonObject(with: object)) as? [String: Any])?["kind"] as? String == "Status" }
        try await KubernetesValidate.validate(objects: objects.filter { !isStatus($0) }.sorted { $0.count < $1.count }, name: "the objects the simulator returned")
        try await KubernetesValidate.validate(objects: objects.filter(isStatus).sorted { $0.count < $1.count }, name: "the Statuses the simulator returned", schema: "status-meta-v1")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A streamed GET running in the background, its output in a file.
    final class Stream {
        let pid: pid_t
        let file: String
        init(pid: pid_t, file: String) { self.pid = pid; self.file = file }
        var text: String { String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self) }
        var events: [[String: Any]] {
            text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
        }
        /// Waits until `condition` holds for the output so far.
        func wait(timeout: Double = 15, until condition: (Stream) -> Bool) async throws -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if condition(self) { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return condition(self)
        }
        /// Whether curl has exited on its own (the stream ended).
        var finished: Bool { Spawn.poll(pid) != nil }
        func stop() { kill(pid, SIGKILL); _ = Spawn.poll(pid) ?? Spawn.wait(pid) }
    }

    func stream(_ path: String) throws -> Stream {
        let file = "\(directory)/\(UUID().uuidString).stream"
        streams.mutate { $0.append(file) }
        let pid = try Spawn.start("/usr/bin/curl", ["-s", "-N", "--max-time", "60"] + headers.flatMap { ["-H", $0] } + [base + path], environment: [:], standardOutput: .file(file))
        return Stream(pid: pid, file: file)
    }
}

func pod(_ name: String, labels: [String: String] = ["foo": "bar"], command: [String], args: [String] = []) -> [String: Any] {
    [
        "apiVersion": "v1", "kind": "Pod",
        "metadata": ["name": name, "labels": labels],
        "spec": ["restartPolicy": "Never", "containers": [["name": "base", "image": "ubuntu:16.04", "command": command, "args": args]]],
    ]
}

extension Dictionary where Key == String, Value == Any {
    subscript(path path: String) -> Any? {
        var current: Any? = self
        for part in path.split(separator: ".") {
            if let index = Int(part) { current = (current as? [Any]).flatMap { index < $0.count ? $0[index] : nil } }
            else { current = (current as? [String: Any])?[String(part)] }
        }
        return current
    }
}

func phase(_ event: [String: Any]) -> String? { event[path: "object.status.phase"] as? String }

@Suite("Kubernetes API simulator", .timeLimit(.minutes(1)))
struct KubeSimulatorTests {
    func withSimulator(historyLimit: Int = 1000, _ body: (KubeSimulator, Curl) async throws -> Void) async throws {
        let simulator = try KubeSimulator(configuration: .init(historyLimit: historyLimit))
        try await simulator.start()
        let curl = try Curl(port: try #require(simulator.port))
        do { try await body(simulator, curl) } catch { await simulator.shutdown(); throw error }
        await simulator.shutdown()
        try await curl.validateReceived()
    }

    @Test func createGetWatchLogsDelete() async throws {
        try await withSimulator { simulator, curl in
            let start = simulator.resourceVersion
            let watch = try curl.stream("/api/v1/namespaces/default/pods?watch=true&labelSelector=foo%3Dbar&resourceVersion=\(start)")
            defer { watch.stop() }
            let created = try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("task-1-echo", command: ["bash", "-cx"], args: ["echo 10"]))
            #expect(created.code == 201)
            #expect(created.json[path: "metadata.name"] as? String == "task-1-echo")
            #expect((created.json[path: "metadata.uid"] as? String)?.isEmpty == false)
            #expect(created.json[path: "metadata.resourceVersion"] as? String != nil)
            #expect(created.json[path: "metadata.creationTimestamp"] as? String != nil)
            #expect(created.json[path: "status.phase"] as? String == "Pending")
            #expect(created.json[path: "spec.containers.0.image"] as? String == "ubuntu:16.04")

            #expect(try await watch.wait { $0.events.contains { phase($0) == "Succeeded" } })
            let events = watch.events
            #expect(events.first?["type"] as? String == "ADDED")
            #expect(events.dropFirst().allSatisfy { $0["type"] as? String == "MODIFIED" })
            #expect(events.compactMap(phase) == ["Pending", "Running", "Succeeded"])

            let got = try curl.request("GET", "/api/v1/namespaces/default/pods/task-1-echo")
            #expect(got.code == 200)
            #expect(got.json[path: "status.phase"] as? String == "Succeeded")
            #expect(got.json[path: "status.containerStatuses.0.state.terminated.exitCode"] as? Int == 0)
            #expect(got.json[path: "status.containerStatuses.0.state.terminated.reason"] as? String == "Completed")
            #expect(got.json[path: "status.startTime"] as? String != nil)

            let log = try curl.request("GET", "/api/v1/namespaces/default/pods/task-1-echo/log")
            #expect(log.code == 200)
            #expect(log.text == "+ echo 10\n10\n")

            #expect(try curl.request("GET", "/api/v1/namespaces/default/pods/task-1-echo/log?container=base&tailLines=1").text == "10\n")
            #expect(try curl.request("GET", "/api/v1/namespaces/default/pods/task-1-echo/log?tailLines=5").text == "+ echo 10\n10\n")
            let stamped = try curl.request("GET", "/api/v1/namespaces/default/pods/task-1-echo/log?timestamps=true").text
            let stampedLines = stamped.split(separator: "\n")
            #expect(stampedLines.count == 2)
            #expect(stampedLines.last?.hasSuffix("Z 10") == true)
            #expect(stampedLines.last?.hasPrefix("20") == true)
            let wrongContainer = try curl.request("GET", "/api/v1/namespaces/default/pods/task-1-echo/log?container=sidecar")
            #expect(wrongContainer.code == 400)
            #expect(wrongContainer.json["message"] as? String == "container sidecar is not valid for pod task-1-echo")

            let deleted = try curl.request("DELETE", "/api/v1/namespaces/default/pods/task-1-echo?gracePeriodSeconds=0")
            #expect(deleted.code == 200)
            #expect(try await watch.wait { $0.events.last?["type"] as? String == "DELETED" })
            #expect(try curl.request("GET", "/api/v1/namespaces/default/pods/task-1-echo").code == 404)
        }
    }

    /// The seed DAG's task-1-echo, run faithfully: `bash -cx echo 10` runs
    /// `echo` with $0 = 10, so its log is the trace and an empty line, not
    /// `10` (as on a real cluster).
    @Test func seedEchoCommandRunsAsBashWould() async throws {
        try await withSimulator { _, curl in
            let name = "test-using-k8spodoperator-task-1-0a1b2c3d"
            #expect(try curl.request("POST", "/api/v1/namespaces/airflow-k8spodoperator/pods", json: pod(name, command: ["bash", "-cx"], args: ["echo", "10"])).code == 201)
            for _ in 0..<200 {
                if try curl.request("GET", "/api/v1/namespaces/airflow-k8spodoperator/pods/\(name)").json[path: "status.phase"] as? String == "Succeeded" { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try curl.request("GET", "/api/v1/namespaces/airflow-k8spodoperator/pods/\(name)/log").text == "+ echo\n\n")
        }
    }

    /// The downward API's fieldRefs and `$(NAME)` expansion, as the kubelet
    /// does them (the worker Deployment names its agent after its Pod).
    @Test func downwardAPIAndVariableExpansion() async throws {
        try await withSimulator { _, curl in
            var object = pod("downward", command: ["sh", "-c"], args: ["echo name=$(POD_NAME) ns=$(POD_NAMESPACE) node=$(NODE) cost='$$5' greeting=\"$GREETING\""])
            var spec = object["spec"] as! [String: Any]
            var containers = spec["containers"] as! [[String: Any]]
            containers[0]["env"] = [
                ["name": "POD_NAME", "valueFrom": ["fieldRef": ["fieldPath": "metadata.name"]]],
                ["name": "POD_NAMESPACE", "valueFrom": ["fieldRef": ["fieldPath": "metadata.namespace"]]],
                ["name": "NODE", "valueFrom": ["fieldRef": ["fieldPath": "spec.nodeName"]]],
                ["name": "GREETING", "value": "hello-$(POD_NAME)-$(UNDEFINED)"],
            ]
            spec["containers"] = containers
            object["spec"] = spec
            #expect(try curl.request("POST", "/api/v1/namespaces/ns/pods", json: object).code == 201)
            for _ in 0..<200 {
                if try curl.request("GET", "/api/v1/namespaces/ns/pods/downward").json[path: "status.phase"] as? String == "Succeeded" { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try curl.request("GET", "/api/v1/namespaces/ns/pods/downward/log").text
                == "name=downward ns=ns node=trellis-kube-sim cost=$5 greeting=hello-downward-$(UNDEFINED)\n")
        }
    }

    @Test func failedContainer() async throws {
        try await withSimulator { _, curl in
            #expect(try curl.request("POST", "/api/v1/namespaces/ns/pods", json: pod("fails", command: ["sh", "-c", "echo oops >&2; exit 3"])).code == 201)
            var got = Curl.Response(code: 0, body: Data())
            for _ in 0..<200 {
                got = try curl.request("GET", "/api/v1/namespaces/ns/pods/fails")
                if got.json[path: "status.phase"] as? String == "Failed" { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(got.json[path: "status.phase"] as? String == "Failed")
            #expect(got.json[path: "status.containerStatuses.0.state.terminated.exitCode"] as? Int == 3)
            #expect(got.json[path: "status.containerStatuses.0.state.terminated.reason"] as? String == "Error")
            #expect(try curl.request("GET", "/api/v1/namespaces/ns/pods/fails/log").text == "oops\n")
        }
    }

    @Test func followedLogStreamsUntilTheContainerEnds() async throws {
        try await withSimulator { _, curl in
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("slow", command: ["sh", "-c", "echo one; sleep 1; echo two"])).code == 201)
            for _ in 0..<100 {
                if try curl.request("GET", "/api/v1/namespaces/default/pods/slow").json[path: "status.phase"] as? String != "Pending" { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let follow = try curl.stream("/api/v1/namespaces/default/pods/slow/log?follow=true")
            defer { follow.stop() }
            #expect(try await follow.wait { $0.finished })
            #expect(follow.text == "one\ntwo\n")
        }
    }

    @Test func statusErrors() async throws {
        try await withSimulator { _, curl in
            let missing = try curl.request("GET", "/api/v1/namespaces/default/pods/nope")
            #expect(missing.code == 404)
            #expect(missing.json["kind"] as? String == "Status")
            #expect(missing.json["reason"] as? String == "NotFound")
            #expect(missing.json["code"] as? Int == 404)
            #expect(missing.json["message"] as? String == #"pods "nope" not found"#)
            #expect(try curl.request("DELETE", "/api/v1/namespaces/default/pods/nope").code == 404)

            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("twice", command: ["true"])).code == 201)
            let conflict = try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("twice", command: ["true"]))
            #expect(conflict.code == 409)
            #expect(conflict.json["reason"] as? String == "AlreadyExists")
            #expect(conflict.json[path: "details.name"] as? String == "twice")

            let invalid = try curl.request("POST", "/api/v1/namespaces/default/pods", json: ["metadata": ["name": "Bad_Name"], "spec": [:]])
            #expect(invalid.code == 422)
            #expect(invalid.json["reason"] as? String == "Invalid")
            let garbage = try curl.request("POST", "/api/v1/namespaces/default/pods", json: ["not", "a pod"])
            #expect(garbage.code == 400)
        }
    }

    @Test func labelSelectors() async throws {
        try await withSimulator { (_: KubeSimulator, curl: Curl) async throws in
            for (name, labels) in [("a", ["foo": "bar", "x": "1"]), ("b", ["foo": "bar", "x": "2"]), ("c", ["foo": "baz"])] {
                #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod(name, labels: labels, command: ["true"])).code == 201)
            }
            #expect(try curl.request("POST", "/api/v1/namespaces/other/pods", json: pod("d", command: ["true"])).code == 201)
            func names(_ selector: String) throws -> [String] {
                let list = try curl.request("GET", "/api/v1/namespaces/default/pods?labelSelector=\(selector)")
                #expect(list.json["kind"] as? String == "PodList")
                #expect(list.json[path: "metadata.resourceVersion"] as? String != nil)
                return (list.json["items"] as? [[String: Any]] ?? []).compactMap { $0[path: "metadata.name"] as? String }
            }
            #expect(try names("foo%3Dbar") == ["a", "b"])
            #expect(try names("foo%3Dbar,x%3D2") == ["b"])
            #expect(try names("foo%21%3Dbar") == ["c"])
            #expect(try names("") == ["a", "b", "c"])
        }
    }

    @Test func watchScopeTimeoutAndGenerateName() async throws {
        try await withSimulator { simulator, curl in
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("existing", command: ["true"])).code == 201)
            // Without a resourceVersion: an ADDED per existing Pod first; timeoutSeconds ends the stream.
            let watch = try curl.stream("/api/v1/namespaces/default/pods?watch=true&labelSelector=%21nope&timeoutSeconds=5")
            defer { watch.stop() }
            #expect(try await watch.wait { $0.events.contains { $0[path: "object.metadata.name"] as? String == "existing" } })
            var generated = pod("", command: ["true"])
            generated["metadata"] = ["generateName": "task-1-", "labels": ["foo": "bar"]]
            let created = try curl.request("POST", "/api/v1/namespaces/default/pods", json: generated)
            #expect(created.code == 201)
            let name = try #require(created.json[path: "metadata.name"] as? String)
            #expect(name.hasPrefix("task-1-") && name.count == "task-1-".count + 5)
            #expect(try curl.request("POST", "/api/v1/namespaces/elsewhere/pods", json: pod("other-namespace", command: ["true"])).code == 201)
            #expect(try await watch.wait { $0.finished })
            let names = Set(watch.events.compactMap { $0[path: "object.metadata.name"] as? String })
            #expect(names == ["existing", name])
            _ = simulator
        }
    }

    @Test func tooOldResourceVersionIsGone() async throws {
        try await withSimulator(historyLimit: 2) { simulator, curl in
            let start = simulator.resourceVersion
            for name in ["a", "b", "c"] {
                #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod(name, command: ["sleep", "5"])).code == 201)
            }
            let watch = try curl.stream("/api/v1/namespaces/default/pods?watch=true&resourceVersion=\(start)")
            defer { watch.stop() }
            #expect(try await watch.wait { $0.finished })
            let events = watch.events
            #expect(events.count == 1)
            #expect(events.first?["type"] as? String == "ERROR")
            #expect(events.first?[path: "object.code"] as? Int == 410)
            #expect(events.first?[path: "object.reason"] as? String == "Expired")
        }
    }
}
