import Foundation
@testable import KubeSimulator
import Testing
import TrellisTestSupport

func deployment(_ name: String, replicas: Int? = 2, labels: [String: String]? = nil, command: [String] = ["sleep", "30"], restartPolicy: String? = nil) -> [String: Any] {
    let labels = labels ?? ["app": name]
    var podSpec: [String: Any] = ["terminationGracePeriodSeconds": 5, "containers": [["name": "agent", "image": "trellis/agent:1", "command": command]]]
    if let restartPolicy { podSpec["restartPolicy"] = restartPolicy }
    var spec: [String: Any] = [
        "selector": ["matchLabels": labels],
        "template": ["metadata": ["labels": labels, "annotations": ["team": "trellis"]], "spec": podSpec] as [String: Any],
    ]
    if let replicas { spec["replicas"] = replicas }
    return ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": ["name": name, "labels": ["owner": "tests"]], "spec": spec]
}

/// The Pods of `app` that count (not terminating, not finished), oldest first.
func activePods(_ curl: Curl, app: String, namespace: String = "default") throws -> [[String: Any]] {
    items(try curl.request("GET", "/api/v1/namespaces/\(namespace)/pods?labelSelector=app%3D\(app)").json)
        .filter { $0[path: "metadata.deletionTimestamp"] == nil && ["Pending", "Running"].contains($0[path: "status.phase"] as? String ?? "") }
        .sorted { ($0[path: "metadata.resourceVersion"] as? String).flatMap { Int($0) } ?? 0 < ($1[path: "metadata.resourceVersion"] as? String).flatMap { Int($0) } ?? 0 }
}

func names(_ objects: [[String: Any]]) -> [String] { objects.compactMap { $0[path: "metadata.name"] as? String } }

/// Waits until `app` has exactly `count` active Pods, all Running.
func waitForRunning(_ curl: Curl, app: String, count: Int) async throws -> [[String: Any]] {
    var pods: [[String: Any]] = []
    let deadline = ContinuousClock.now + .seconds(20)
    while ContinuousClock.now < deadline {
        pods = try activePods(curl, app: app)
        if pods.count == count && pods.allSatisfy({ $0[path: "status.phase"] as? String == "Running" }) { return pods }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("\(app): wanted \(count) running pods, have \(pods.map { "\($0[path: "metadata.name"] ?? "") \($0[path: "status.phase"] ?? "")" })")
    return pods
}

@Suite("Kubernetes API simulator: Deployments and their scale", .timeLimit(.minutes(2)))
struct KubeSimulatorDeploymentTests {
    let base = "/apis/apps/v1/namespaces/default/deployments"

    @Test func createScaleAndDelete() async throws {
        try await withKubeSimulator { _, curl in
            let created = try curl.request("POST", base, json: deployment("web"))
            #expect(created.code == 201)
            #expect(created.json["kind"] as? String == "Deployment")
            #expect(created.json["apiVersion"] as? String == "apps/v1")
            #expect(created.json[path: "metadata.generation"] as? Int == 1)
            #expect(created.json[path: "spec.replicas"] as? Int == 2)
            #expect(created.json[path: "spec.strategy.type"] as? String == "RollingUpdate")
            #expect(created.json[path: "spec.revisionHistoryLimit"] as? Int == 10)
            #expect((created.json["status"] as? [String: Any])?.isEmpty == true)
            let uid = try #require(created.json[path: "metadata.uid"] as? String)
            let again = try curl.request("POST", base, json: deployment("web"))
            #expect(again.code == 409)
            #expect(again.json["reason"] as? String == "AlreadyExists")
            #expect(again.json["message"] as? String == #"deployments.apps "web" already exists"#)
            #expect(again.json[path: "details.group"] as? String == "apps")
            #expect(again.json[path: "details.kind"] as? String == "deployments")

            let pods = try await waitForRunning(curl, app: "web", count: 2)
            for pod in pods {
                let parts = (pod[path: "metadata.name"] as? String ?? "").split(separator: "-")
                #expect(parts.count == 3 && parts[0] == "web" && parts[2].count == 5)
                #expect(parts.count == 3 && (6...10).contains(parts[1].count))
                #expect(pod[path: "metadata.labels.pod-template-hash"] as? String == parts.dropFirst().first.map(String.init))
                #expect(pod[path: "metadata.annotations.team"] as? String == "trellis")
                #expect(pod[path: "metadata.ownerReferences.0.kind"] as? String == "ReplicaSet")
                #expect(pod[path: "metadata.ownerReferences.0.apiVersion"] as? String == "apps/v1")
                #expect(pod[path: "metadata.ownerReferences.0.name"] as? String == "web-\(parts.dropFirst().first ?? "")")
                #expect(pod[path: "metadata.ownerReferences.0.controller"] as? Bool == true)
                #expect(pod[path: "spec.restartPolicy"] as? String == "Always")
            }
            let ready = try await poll(curl, "\(base)/web") { $0[path: "status.readyReplicas"] as? Int == 2 }
            #expect(ready[path: "status.replicas"] as? Int == 2)
            #expect(ready[path: "status.availableReplicas"] as? Int == 2)
            #expect(ready[path: "status.updatedReplicas"] as? Int == 2)
            #expect(ready[path: "status.observedGeneration"] as? Int == 1)
            #expect(ready[path: "status.unavailableReplicas"] == nil)
            #expect(ready[path: "status.conditions.0.type"] as? String == "Available")
            #expect(ready[path: "status.conditions.0.status"] as? String == "True")

            let scale = try curl.request("GET", "\(base)/web/scale")
            #expect(scale.code == 200)
            #expect(scale.json["apiVersion"] as? String == "autoscaling/v1")
            #expect(scale.json["kind"] as? String == "Scale")
            #expect(scale.json[path: "metadata.name"] as? String == "web")
            #expect(scale.json[path: "metadata.namespace"] as? String == "default")
            #expect(scale.json[path: "metadata.uid"] as? String == uid)
            #expect(scale.json[path: "metadata.resourceVersion"] as? String == ready[path: "metadata.resourceVersion"] as? String)
            #expect(scale.json[path: "spec.replicas"] as? Int == 2)
            #expect(scale.json[path: "status.replicas"] as? Int == 2)
            #expect(scale.json[path: "status.selector"] as? String == "app=web")

            // PUT with the current resourceVersion: up to 3; a stale one is a conflict.
            var up = scale.json
            up["spec"] = ["replicas": 3]
            let scaled = try curl.request("PUT", "\(base)/web/scale", json: up)
            #expect(scaled.code == 200)
            #expect(scaled.json[path: "spec.replicas"] as? Int == 3)
            let stale = try curl.request("PUT", "\(base)/web/scale", json: up)
            #expect(stale.code == 409)
            #expect(stale.json["reason"] as? String == "Conflict")
            let three = try await waitForRunning(curl, app: "web", count: 3)
            #expect(try curl.request("GET", "\(base)/web").json[path: "metadata.generation"] as? Int == 2)

            // Scale-in takes the lowest deletion cost first, then the newest.
            let (oldest, middle, newest) = (names(three)[0], names(three)[1], names(three)[2])
            for (name, cost) in [(oldest, "-10"), (newest, "50")] {
                let patched = try curl.request("PATCH", "/api/v1/namespaces/default/pods/\(name)",
                                               json: ["metadata": ["annotations": ["controller.kubernetes.io/pod-deletion-cost": cost]]],
                                               contentType: "application/merge-patch+json")
                #expect(patched.code == 200)
                #expect(patched.json[path: "metadata.annotations.team"] as? String == "trellis")
            }
            let down = try curl.request("PATCH", "\(base)/web/scale", json: ["spec": ["replicas": 1]], contentType: "application/merge-patch+json")
            #expect(down.code == 200)
            #expect(down.json[path: "spec.replicas"] as? Int == 1)
            #expect(names(try await waitForRunning(curl, app: "web", count: 1)) == [newest])
            for name in [oldest, middle] {
                _ = try await poll(curl, "/api/v1/namespaces/default/pods/\(name)") { $0["code"] as? Int == 404 }
                #expect(try curl.request("GET", "/api/v1/namespaces/default/pods/\(name)").code == 404)
                #expect(reasons(try podEvents(curl, "default", name)).last == "Killing")
            }
            // Back up to 3, then down to 2: of equal cost, the one ready for
            // less time goes, and of those the newest.
            #expect(try curl.request("PATCH", "\(base)/web/scale", json: ["spec": ["replicas": 3]], contentType: "application/strategic-merge-patch+json").code == 200)
            let again3 = try await waitForRunning(curl, app: "web", count: 3)
            let fresh = again3.filter { $0[path: "metadata.name"] as? String != newest }
            let createdOrder = items(try curl.request("GET", "/api/v1/namespaces/default/events?fieldSelector=reason%3DSuccessfulCreate").json)
                .compactMap { ($0["message"] as? String)?.replacingOccurrences(of: "Created pod: ", with: "") }
            let started = { (pod: [String: Any]) in pod[path: "status.containerStatuses.0.state.running.startedAt"] as? String ?? "" }
            let victim = try #require(fresh.max { a, b in
                started(a) != started(b) ? started(a) < started(b)
                    : createdOrder.firstIndex(of: a[path: "metadata.name"] as? String ?? "") ?? 0 < createdOrder.firstIndex(of: b[path: "metadata.name"] as? String ?? "") ?? 0
            })
            #expect(try curl.request("PATCH", "\(base)/web/scale", json: ["spec": ["replicas": 2]], contentType: "application/merge-patch+json").code == 200)
            #expect(Set(names(try await waitForRunning(curl, app: "web", count: 2))) == Set(names(again3)).subtracting(names([victim])))

            let jsonPatch = try curl.request("PATCH", "\(base)/web/scale", json: [["op": "replace", "path": "/spec/replicas", "value": 1]], contentType: "application/json-patch+json")
            #expect(jsonPatch.code == 415)
            #expect(jsonPatch.json["reason"] as? String == "UnsupportedMediaType")
            #expect(jsonPatch.json["code"] as? Int == 415)

            // Zero: ScaleSpec.replicas is omitempty.
            let zero = try curl.request("PATCH", "\(base)/web/scale", json: ["spec": ["replicas": 0]], contentType: "application/merge-patch+json")
            #expect(zero.json[path: "spec.replicas"] == nil)
            #expect(try await waitForRunning(curl, app: "web", count: 0).isEmpty)
            let none = try await poll(curl, "\(base)/web/scale") { $0[path: "status.replicas"] as? Int == 0 }
            #expect(none[path: "status.replicas"] as? Int == 0)
            let events = items(try curl.request("GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.kind%3DDeployment,involvedObject.name%3Dweb").json)
            #expect(events.compactMap { $0["message"] as? String }.filter { $0.hasPrefix("Scaled") }.map { String($0.split(separator: " ").prefix(2).joined(separator: " ")) }
                == ["Scaled up", "Scaled up", "Scaled down", "Scaled up", "Scaled down", "Scaled down"])
            #expect(events.allSatisfy { $0[path: "source.component"] as? String == "deployment-controller" })

            #expect(try curl.request("PATCH", "\(base)/web/scale", json: ["spec": ["replicas": 2]], contentType: "application/merge-patch+json").code == 200)
            _ = try await waitForRunning(curl, app: "web", count: 2)
            let deleted = try curl.request("DELETE", "\(base)/web")
            #expect(deleted.code == 200)
            #expect(deleted.json["kind"] as? String == "Status")
            #expect(deleted.json["status"] as? String == "Success")
            #expect(deleted.json[path: "details.uid"] as? String == uid)
            #expect(try curl.request("GET", "\(base)/web").code == 404)
            _ = try await poll(curl, "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb") { items($0).isEmpty }
            #expect(items(try curl.request("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb").json).isEmpty)
        }
    }

    @Test func aPodThatExitsIsReplaced() async throws {
        try await withKubeSimulator { _, curl in
            #expect(try curl.request("POST", base, json: deployment("flaky", replicas: 1, command: ["sh", "-c", "sleep 0.3; exit 1"])).code == 201)
            let many = try await poll(curl, "/api/v1/namespaces/default/pods?labelSelector=app%3Dflaky") { list in
                items(list).filter { $0[path: "status.phase"] as? String == "Failed" }.count >= 2
            }
            let pods = items(many)
            #expect(pods.filter { $0[path: "status.phase"] as? String == "Failed" }.count >= 2)
            #expect(pods.filter { ["Pending", "Running"].contains($0[path: "status.phase"] as? String ?? "") }.count <= 1)
            let replicaSet = try #require(pods.first?[path: "metadata.ownerReferences.0.name"] as? String)
            let created = items(try await poll(curl, "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D\(replicaSet)") { items($0).count >= 3 })
            #expect(created.count >= 3)
            #expect(created.allSatisfy { $0["reason"] as? String == "SuccessfulCreate" && $0[path: "involvedObject.kind"] as? String == "ReplicaSet" })
            #expect(try curl.request("DELETE", "\(base)/flaky").code == 200)
        }
    }

    @Test func orphaningKeepsThePods() async throws {
        try await withKubeSimulator { _, curl in
            #expect(try curl.request("POST", base, json: deployment("kept", replicas: 1)).code == 201)
            let pod = try #require(names(try await waitForRunning(curl, app: "kept", count: 1)).first)
            #expect(try curl.request("DELETE", "\(base)/kept", json: ["kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Orphan"]).code == 200)
            let orphan = try curl.request("GET", "/api/v1/namespaces/default/pods/\(pod)").json
            #expect(orphan[path: "status.phase"] as? String == "Running")
            #expect(orphan[path: "metadata.ownerReferences"] == nil)
        }
    }

    @Test func errors() async throws {
        try await withKubeSimulator { _, curl in
            for path in ["\(base)/nope", "\(base)/nope/scale"] {
                let missing = try curl.request("GET", path)
                #expect(missing.code == 404)
                #expect(missing.json["kind"] as? String == "Status")
                #expect(missing.json["reason"] as? String == "NotFound")
                #expect(missing.json["message"] as? String == #"deployments.apps "nope" not found"#)
            }
            #expect(try curl.request("DELETE", "\(base)/nope").code == 404)
            #expect(try curl.request("PUT", "\(base)/nope/scale", json: ["spec": ["replicas": 1]]).code == 404)

            var mismatched = deployment("mismatched")
            mismatched["spec"] = ["selector": ["matchLabels": ["app": "a"]], "template": ["metadata": ["labels": ["app": "b"]], "spec": ["containers": [["name": "c", "image": "i"]]]]]
            for (body, cause) in [
                (mismatched, "`selector` does not match template `labels`"),
                (deployment("never", restartPolicy: "Never"), #"spec.template.spec.restartPolicy: Unsupported value: "Never""#),
                (["metadata": ["name": "noselector"], "spec": ["template": ["spec": ["containers": [["name": "c", "image": "i"]]]]]], "spec.selector: Required value"),
                (deployment("negative", replicas: -1), "spec.replicas: Invalid value: -1"),
            ] as [([String: Any], String)] {
                let invalid = try curl.request("POST", base, json: body)
                #expect(invalid.code == 422)
                #expect(invalid.json["reason"] as? String == "Invalid")
                #expect((invalid.json["message"] as? String)?.contains(cause) == true, "\(invalid.json["message"] ?? "")")
            }
            #expect(try curl.request("POST", base, json: deployment("ok", replicas: nil)).json[path: "spec.replicas"] as? Int == 1)
            let negative = try curl.request("PUT", "\(base)/ok/scale", json: ["spec": ["replicas": -1]])
            #expect(negative.code == 422)
            #expect(negative.json["message"] as? String == #"Scale.autoscaling "ok" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#)
            let wrongName = try curl.request("PUT", "\(base)/ok/scale", json: ["metadata": ["name": "other"], "spec": ["replicas": 1]])
            #expect(wrongName.code == 400)
            #expect(try curl.request("POST", "\(base)/ok/scale", json: [:]).code == 405)
            #expect(try curl.request("GET", "\(base)?watch=true").code == 405)
            #expect(try curl.request("DELETE", "\(base)/ok?propagationPolicy=Sideways").code == 422)

            // Pod patches: labels and annotations only, merge patch types only.
            #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod("patched", command: ["sleep", "5"])).code == 201)
            let labelled = try curl.request("PATCH", "/api/v1/namespaces/default/pods/patched", json: ["metadata": ["labels": ["foo": NSNull(), "tier": "db"]]],
                                            contentType: "application/strategic-merge-patch+json")
            #expect(labelled.code == 200)
            #expect(labelled.json[path: "metadata.labels"] as? [String: String] == ["tier": "db"])
            #expect(try curl.request("PATCH", "/api/v1/namespaces/default/pods/patched", json: ["spec": ["nodeName": "x"]], contentType: "application/merge-patch+json").code == 422)
            #expect(try curl.request("PATCH", "/api/v1/namespaces/default/pods/patched", json: ["metadata": ["labels": ["a": "b"]]]).code == 415)
            #expect(try curl.request("PATCH", "/api/v1/namespaces/default/pods/nope", json: ["metadata": [:]], contentType: "application/merge-patch+json").code == 404)
        }
    }

    @Test func setBasedSelectors() async throws {
        try await withKubeSimulator { (_: KubeSimulator, curl: Curl) async throws in
            var setBased = deployment("sets", replicas: 0, labels: ["app": "sets", "tier": "web"])
            setBased["spec"] = [
                "replicas": 0,
                "selector": ["matchLabels": ["app": "sets"], "matchExpressions": [["key": "tier", "operator": "In", "values": ["web", "api"]], ["key": "canary", "operator": "DoesNotExist"]]],
                "template": ["metadata": ["labels": ["app": "sets", "tier": "web"]], "spec": ["containers": [["name": "c", "image": "i", "command": ["true"]]]]],
            ] as [String: Any]
            #expect(try curl.request("POST", base, json: setBased).code == 201)
            #expect(try curl.request("GET", "\(base)/sets/scale").json[path: "status.selector"] as? String == "app=sets,!canary,tier in (api,web)")
            for (name, tier) in [("a", "web"), ("b", "api"), ("c", "db")] {
                #expect(try curl.request("POST", "/api/v1/namespaces/default/pods", json: pod(name, labels: ["tier": tier], command: ["true"])).code == 201)
            }
            func listed(_ selector: String) throws -> [String] {
                names(items(try curl.request("GET", "/api/v1/namespaces/default/pods?labelSelector=\(selector.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)").json))
            }
            #expect(try listed("tier in (web,api)") == ["a", "b"])
            #expect(try listed("tier notin (web, api)") == ["c"])
            #expect(try listed("tier in (db),tier") == ["c"])
            #expect(try curl.request("GET", "/api/v1/namespaces/default/pods?labelSelector=tier%20within%20(x)").code == 400)
        }
    }
}

@Suite("Kubernetes API simulator: the ReplicaSet controller's scale-in order")
struct ScaleInOrderTests {
    func record(_ name: String, cost: String? = nil, running startedAt: String? = "2030-01-01T00:00:00Z", scheduled: Bool = true, createdAt seconds: Double) -> PodRecord {
        var record = PodRecord(name: name, namespace: "default", labels: [:], uid: name, creationTimestamp: "", spec: Data(), containerName: "c", image: "i", logPath: "")
        if let cost { record.annotations[PodStore.deletionCostAnnotation] = cost }
        if let startedAt { record.container = .running(startedAt: startedAt) }
        if scheduled { record.nodeName = "node" }
        record.created = Date(timeIntervalSince1970: seconds)
        return record
    }

    func order(_ records: [PodRecord]) -> [String] { records.sorted(by: PodStore.deletedFirst).map(\.name) }

    @Test func lowestCostFirstThenNewest() {
        #expect(order([record("a", createdAt: 1), record("b", createdAt: 2), record("c", createdAt: 3)]) == ["c", "b", "a"])
        #expect(order([record("a", cost: "-5", createdAt: 1), record("b", cost: "100", createdAt: 2), record("c", createdAt: 3)]) == ["a", "c", "b"])
        #expect(order([record("a", cost: "bogus", createdAt: 1), record("b", cost: "1", createdAt: 2)]) == ["a", "b"])
    }

    @Test func notReadyAndUnscheduledBeforeCost() {
        let pending = record("pending", cost: "100", running: nil, createdAt: 1)
        let unscheduled = record("unscheduled", cost: "100", running: nil, scheduled: false, createdAt: 0)
        let cheap = record("cheap", cost: "-100", createdAt: 5)
        let recent = record("recent", running: "2030-01-01T00:00:09Z", createdAt: 2)
        let older = record("older", createdAt: 3)
        #expect(order([cheap, older, recent, pending, unscheduled]) == ["unscheduled", "pending", "cheap", "recent", "older"])
    }
}
