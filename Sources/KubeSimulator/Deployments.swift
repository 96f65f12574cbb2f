import Dispatch
import Foundation

/// One stored apps/v1 Deployment. Its ReplicaSet is implicit: one
/// template, one `pod-template-hash`, one ReplicaSet name and uid that the
/// Pods' ownerReferences name (the simulator does not serve ReplicaSets).
struct DeploymentRecord: Sendable {
    var name: String
    var namespace: String
    var uid: String
    var labels: [String: String]
    var annotations: [String: String]
    var resourceVersion = 0
    var generation = 1
    var creationTimestamp: String
    /// The spec as sent with the API server's defaults; `replicas` lives in
    /// `replicas`.
    var spec: Data
    var replicas: Int
    var selector: LabelSelector
    /// `spec.template` (its JSON).
    var template: Data
    var templateHash: String
    var replicaSetUID: String
    /// The ReplicaSet's replicas as last scaled (for ScalingReplicaSet events).
    var replicaSetReplicas = 0

    // Status, as the deployment controller last observed it (nil: not yet).
    var observedGeneration: Int?
    var statusReplicas = 0
    var readyReplicas = 0
    var available: (status: Bool, since: String)?
    var progressing: (reason: String, since: String)?

    // Replacing Pods that exit: a back-off, like the kubelet's CrashLoopBackOff.
    var quickExits = 0
    var notBefore = Date.distantPast

    var key: String { "\(namespace)/\(name)" }
    var replicaSetName: String { "\(name)-\(templateHash)" }

    var reference: ObjectReference {
        ObjectReference(kind: "Deployment", apiVersion: "apps/v1", namespace: namespace, name: name, uid: uid, resourceVersion: String(resourceVersion))
    }

    var replicaSetReference: ObjectReference {
        ObjectReference(kind: "ReplicaSet", apiVersion: "apps/v1", namespace: namespace, name: replicaSetName, uid: replicaSetUID)
    }

    /// The API server's default `maxUnavailable` (25 %, rounded down).
    var maxUnavailable: Int { replicas / 4 }

    func object() -> [String: Any] {
        var metadata: [String: Any] = [
            "name": name, "namespace": namespace, "uid": uid, "resourceVersion": String(resourceVersion),
            "generation": generation, "creationTimestamp": creationTimestamp,
        ]
        if !labels.isEmpty { metadata["labels"] = labels }
        var annotations = self.annotations
        if observedGeneration != nil { annotations["deployment.kubernetes.io/revision"] = "1" }
        if !annotations.isEmpty { metadata["annotations"] = annotations }
        var specObject = (try? JSONSerialization.jsonObject(with: spec)) as? [String: Any] ?? [:]
        specObject["replicas"] = replicas
        var status: [String: Any] = [:]
        if let observedGeneration {
            // Zero counts are left out, as the API server's omitempty does.
            status["observedGeneration"] = observedGeneration
            if statusReplicas > 0 { status["replicas"] = statusReplicas; status["updatedReplicas"] = statusReplicas }
            if readyReplicas > 0 { status["readyReplicas"] = readyReplicas; status["availableReplicas"] = readyReplicas }
            if replicas - readyReplicas > 0 { status["unavailableReplicas"] = replicas - readyReplicas }
            var conditions: [[String: Any]] = []
            if let available {
                conditions.append([
                    "type": "Available", "status": available.status ? "True" : "False",
                    "reason": available.status ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
                    "message": available.status ? "Deployment has minimum availability." : "Deployment does not have minimum availability.",
                    "lastUpdateTime": available.since, "lastTransitionTime": available.since,
                ])
            }
            if let progressing {
                conditions.append([
                    "type": "Progressing", "status": "True", "reason": progressing.reason,
                    "message": progressing.reason == "NewReplicaSetAvailable"
                        ? "ReplicaSet \"\(replicaSetName)\" has successfully progressed." : "ReplicaSet \"\(replicaSetName)\" is progressing.",
                    "lastUpdateTime": progressing.since, "lastTransitionTime": creationTimestamp,
                ])
            }
            status["conditions"] = conditions
        }
        return ["apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": specObject, "status": status]
    }

    func json() -> Data { (try? JSONSerialization.data(withJSONObject: object(), options: [.sortedKeys])) ?? Data() }

    /// The autoscaling/v1 Scale of its `scale` subresource.
    func scale() -> [String: Any] {
        var status: [String: Any] = ["replicas": statusReplicas]
        if !selector.isEmpty { status["selector"] = selector.text }
        // ScaleSpec.replicas is omitempty: 0 replicas is `"spec": {}`.
        var spec: [String: Any] = [:]
        if replicas > 0 { spec["replicas"] = replicas }
        let metadata: [String: Any] = [
            "name": name, "namespace": namespace, "uid": uid, "resourceVersion": String(resourceVersion),
            "creationTimestamp": creationTimestamp,
        ]
        return ["apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": metadata, "spec": spec, "status": status]
    }
}

extension KubeError {
    static func deploymentNotFound(_ name: String) -> KubeError {
        KubeError(code: 404, reason: "NotFound", message: "deployments.apps \"\(name)\" not found", name: name, kind: "deployments", group: "apps")
    }

    static func deploymentConflict(_ name: String) -> KubeError {
        KubeError(code: 409, reason: "Conflict",
                  message: "Operation cannot be fulfilled on deployments.apps \"\(name)\": the object has been modified; please apply your changes to the latest version and try again",
                  name: name, kind: "deployments", group: "apps")
    }

    static let patchMediaTypes: Set<String> = ["application/merge-patch+json", "application/strategic-merge-patch+json"]

    static let unsupportedMediaType = KubeError(
        code: 415, reason: "UnsupportedMediaType",
        message: "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json")
}

func jsonData(_ object: Any) -> Data { (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data() }

extension PodStore {
    /// The simulator's Pod-deletion-cost annotation (a real one).
    static let deletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"
    /// Exits of Pods that ran less than this count towards the replacement back-off.
    static let quickExit: TimeInterval = 10

    // MARK: REST

    func createDeployment(namespace: String, body: Data) throws(KubeError) -> Data {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw KubeError(code: 400, reason: "BadRequest", message: "the body of the request was not a JSON object")
        }
        if let kind = object["kind"] as? String, kind != "Deployment" {
            throw KubeError(code: 400, reason: "BadRequest", message: "the kind \(kind) is not a Deployment")
        }
        let metadata = object["metadata"] as? [String: Any] ?? [:]
        if let bodyNamespace = metadata["namespace"] as? String, bodyNamespace != namespace {
            throw KubeError(code: 400, reason: "BadRequest", message: "the namespace of the provided object does not match the namespace sent on the request")
        }
        var name = metadata["name"] as? String ?? ""
        if name.isEmpty, let generateName = metadata["generateName"] as? String, !generateName.isEmpty { name = generateName + randomSuffix(5) }
        var causes: [String] = []
        if name.isEmpty { causes.append("metadata.name: Required value: name or generateName is required") }
        else if !Self.isDNSSubdomain(name) { causes.append("metadata.name: Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'") }
        var spec = object["spec"] as? [String: Any] ?? [:]
        let replicas = spec["replicas"] == nil ? 1 : (spec["replicas"] as? Int ?? -1)
        if replicas < 0 { causes.append("spec.replicas: Invalid value: \(spec["replicas"] ?? ""): must be greater than or equal to 0") }
        let selector = LabelSelector(object: spec["selector"])
        if spec["selector"] == nil { causes.append("spec.selector: Required value") }
        else if selector == nil || selector?.isEmpty == true { causes.append("spec.selector: Invalid value: empty selector is invalid for deployment") }
        let template = spec["template"] as? [String: Any] ?? [:]
        let templateMetadata = template["metadata"] as? [String: Any] ?? [:]
        let templateLabels = templateMetadata["labels"] as? [String: String] ?? [:]
        if let selector, !selector.isEmpty, !selector.matches(templateLabels) {
            causes.append("spec.template.metadata.labels: Invalid value: \(templateLabels): `selector` does not match template `labels`")
        }
        let templateSpec = template["spec"] as? [String: Any] ?? [:]
        let containers = templateSpec["containers"] as? [[String: Any]] ?? []
        if containers.isEmpty { causes.append("spec.template.spec.containers: Required value") }
        for (index, container) in containers.enumerated() {
            if (container["name"] as? String ?? "").isEmpty { causes.append("spec.template.spec.containers[\(index)].name: Required value") }
            if (container["image"] as? String ?? "").isEmpty { causes.append("spec.template.spec.containers[\(index)].image: Required value") }
        }
        if let policy = templateSpec["restartPolicy"] as? String, policy != "Always" {
            causes.append("spec.template.spec.restartPolicy: Unsupported value: \"\(policy)\": supported values: \"Always\"")
        }
        guard causes.isEmpty, let selector else {
            throw KubeError(code: 422, reason: "Invalid", message: "Deployment.apps \"\(name)\" is invalid: " + causes.joined(separator: ", "),
                            name: name, kind: "deployments", group: "apps")
        }
        // The API server's defaults.
        spec["replicas"] = nil
        if spec["revisionHistoryLimit"] == nil { spec["revisionHistoryLimit"] = 10 }
        if spec["progressDeadlineSeconds"] == nil { spec["progressDeadlineSeconds"] = 600 }
        if spec["strategy"] == nil {
            spec["strategy"] = ["type": "RollingUpdate", "rollingUpdate": ["maxUnavailable": "25%", "maxSurge": "25%"]]
        }
        let templateData = jsonData(template)
        var record = DeploymentRecord(
            name: name, namespace: namespace, uid: UUID().uuidString.lowercased(),
            labels: metadata["labels"] as? [String: String] ?? [:], annotations: metadata["annotations"] as? [String: String] ?? [:],
            creationTimestamp: timestamp(), spec: jsonData(spec), replicas: replicas, selector: selector, template: templateData,
            templateHash: Self.templateHash(templateData), replicaSetUID: UUID().uuidString.lowercased())
        let created: Data = try locked { state throws(KubeError) in
            guard state.deployments[record.key] == nil else {
                throw KubeError(code: 409, reason: "AlreadyExists", message: "deployments.apps \"\(name)\" already exists", name: name, kind: "deployments", group: "apps")
            }
            commitDeployment(&record, in: &state)
            return record.json()
        }
        reconcile(record.uid)
        return created
    }

    func getDeployment(namespace: String, name: String) throws(KubeError) -> Data {
        try locked { state throws(KubeError) in
            guard let record = state.deployments["\(namespace)/\(name)"] else { throw KubeError.deploymentNotFound(name) }
            return record.json()
        }
    }

    func listDeployments(namespace: String, selector: LabelSelector) -> Data {
        let (items, resourceVersion) = state.withLockedValue { state in
            (state.deployments.values.filter { $0.namespace == namespace && selector.matches($0.labels) }
                .sorted { $0.name < $1.name }.map { $0.object() }, state.resourceVersion)
        }
        return jsonData([
            "apiVersion": "apps/v1", "kind": "DeploymentList",
            "metadata": ["resourceVersion": String(resourceVersion)], "items": items,
        ] as [String: Any])
    }

    /// Deletes the Deployment (a `Status` Success, as the API server answers
    /// for it) and, unless `propagationPolicy` is Orphan, its Pods, each with
    /// its own grace period. Orphaned Pods lose their ownerReferences.
    func deleteDeployment(namespace: String, name: String, propagationPolicy: String?) throws(KubeError) -> Data {
        let orphan = propagationPolicy == "Orphan"
        if let propagationPolicy, !["Orphan", "Background", "Foreground"].contains(propagationPolicy) {
            throw KubeError(code: 422, reason: "Invalid", message: "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"\(propagationPolicy)\": supported values: \"Foreground\", \"Background\", \"Orphan\"")
        }
        let (uid, owned): (String, [String]) = try locked { state throws(KubeError) in
            guard let record = state.deployments.removeValue(forKey: "\(namespace)/\(name)") else { throw KubeError.deploymentNotFound(name) }
            state.resourceVersion += 1
            var owned: [String] = []
            for var pod in state.pods.values where pod.deploymentUID == record.uid {
                if orphan {
                    pod.deploymentUID = nil
                    pod.ownerReferences = nil
                    commit(&pod, type: "MODIFIED", in: &state)
                } else {
                    owned.append(pod.name)
                }
            }
            return (record.uid, owned)
        }
        // The garbage collector deletes the dependents.
        for pod in owned { _ = try? delete(namespace: namespace, name: pod, gracePeriodSeconds: nil) }
        return jsonData([
            "kind": "Status", "apiVersion": "v1", "metadata": [String: Any](), "status": "Success",
            "details": ["name": name, "group": "apps", "kind": "deployments", "uid": uid],
        ] as [String: Any])
    }

    func getScale(namespace: String, name: String) throws(KubeError) -> Data {
        try locked { state throws(KubeError) in
            guard let record = state.deployments["\(namespace)/\(name)"] else { throw KubeError.deploymentNotFound(name) }
            return jsonData(record.scale())
        }
    }

    /// PUT of the scale subresource, or (with `patch`) a merge patch of it.
    func updateScale(namespace: String, name: String, body: Data, patch: Bool) throws(KubeError) -> Data {
        guard let sent = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw KubeError(code: 400, reason: "BadRequest", message: "the body of the request was not a JSON object")
        }
        let (data, uid): (Data, String) = try locked { state throws(KubeError) in
            guard var record = state.deployments["\(namespace)/\(name)"] else { throw KubeError.deploymentNotFound(name) }
            let scale = patch ? (mergePatch(record.scale(), sent) as? [String: Any] ?? [:]) : sent
            if let kind = scale["kind"] as? String, kind != "Scale" {
                throw KubeError(code: 400, reason: "BadRequest", message: "the kind \(kind) is not a Scale")
            }
            let metadata = scale["metadata"] as? [String: Any] ?? [:]
            if let given = metadata["name"] as? String, !given.isEmpty, given != name {
                throw KubeError(code: 400, reason: "BadRequest", message: "the name of the object (\(given)) does not match the name on the URL (\(name))")
            }
            if let given = metadata["namespace"] as? String, !given.isEmpty, given != namespace {
                throw KubeError(code: 400, reason: "BadRequest", message: "the namespace of the provided object does not match the namespace sent on the request")
            }
            if let version = metadata["resourceVersion"] as? String, !version.isEmpty, version != String(record.resourceVersion) {
                throw KubeError.deploymentConflict(name)
            }
            let spec = scale["spec"] as? [String: Any] ?? [:]
            // An absent spec.replicas is 0 (the field is omitempty).
            guard let replicas = spec["replicas"] == nil ? 0 : spec["replicas"] as? Int, replicas >= 0 else {
                throw KubeError(code: 422, reason: "Invalid",
                                message: "Scale.autoscaling \"\(name)\" is invalid: spec.replicas: Invalid value: \(spec["replicas"] ?? ""): must be greater than or equal to 0",
                                name: name, kind: "deployments", group: "apps")
            }
            if replicas != record.replicas {
                record.replicas = replicas
                record.generation += 1
                commitDeployment(&record, in: &state)
            }
            return (jsonData(record.scale()), record.uid)
        }
        reconcile(uid)
        return data
    }

    /// A merge (or strategic merge) patch of a Pod: its labels and
    /// annotations (such as the deletion cost) may change; its spec may not.
    func patchPod(namespace: String, name: String, body: Data) throws(KubeError) -> Data {
        guard let patch = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw KubeError(code: 400, reason: "BadRequest", message: "the body of the request was not a JSON object")
        }
        if patch["spec"] != nil {
            throw KubeError(code: 422, reason: "Invalid",
                            message: "Pod \"\(name)\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
                            name: name)
        }
        let metadata = patch["metadata"] as? [String: Any] ?? [:]
        return try locked { state throws(KubeError) in
            guard var record = state.pods["\(namespace)/\(name)"] else { throw KubeError.notFound(name) }
            if let version = metadata["resourceVersion"] as? String, !version.isEmpty, version != String(record.resourceVersion) {
                throw KubeError(code: 409, reason: "Conflict",
                                message: "Operation cannot be fulfilled on pods \"\(name)\": the object has been modified; please apply your changes to the latest version and try again",
                                name: name)
            }
            var changed = false
            for (field, current) in [("labels", record.labels), ("annotations", record.annotations)] {
                guard let change = metadata[field] else { continue }
                guard let merged = mergePatch(current, change) as? [String: Any], let strings = merged as? [String: String] else {
                    throw KubeError(code: 422, reason: "Invalid", message: "Pod \"\(name)\" is invalid: metadata.\(field): Invalid value: values must be strings", name: name)
                }
                if field == "labels" { record.labels = strings } else { record.annotations = strings }
                changed = changed || strings != current
            }
            if changed { commit(&record, type: "MODIFIED", in: &state) }
            return record.json()
        }
    }

    // MARK: The replica controller

    /// Gives `record` the next resourceVersion and stores it.
    func commitDeployment(_ record: inout DeploymentRecord, in state: inout State) {
        state.resourceVersion += 1
        record.resourceVersion = state.resourceVersion
        state.deployments[record.key] = record
    }

    /// Queues a pass of the replica controller over the Deployment `uid`
    /// (passes run one at a time; a pass already queued covers this one).
    func reconcile(_ uid: String) {
        state.withLockedValue { scheduleReconcile(uid, in: &$0) }
    }

    /// `reconcile` under the lock (from `commit`).
    func scheduleReconcile(_ uid: String, in state: inout State) {
        guard !state.stopped, state.pendingReconciles.insert(uid).inserted else { return }
        controllerQueue.async { [self] in reconcileNow(uid) }
    }

    /// Pods counted by the ReplicaSet: not terminating, not finished.
    private static func isActive(_ pod: PodRecord) -> Bool {
        pod.deletionTimestamp == nil && !pod.isTerminated && pod.phase != "Succeeded" && pod.phase != "Failed"
    }

    /// The ReplicaSet controller's order for scale-in (`ActivePodsWithRanks`):
    /// unscheduled before scheduled, Pending before Running, not ready
    /// before ready, lower `pod-deletion-cost` first, ready for less time
    /// first, then the newest first.
    static func deletedFirst(_ a: PodRecord, _ b: PodRecord) -> Bool {
        if (a.nodeName == nil) != (b.nodeName == nil) { return a.nodeName == nil }
        if a.isRunning != b.isRunning { return !a.isRunning }
        let costA = Int(a.annotations[deletionCostAnnotation] ?? "") ?? 0, costB = Int(b.annotations[deletionCostAnnotation] ?? "") ?? 0
        if costA != costB { return costA < costB }
        if case .running(let startedA) = a.container, case .running(let startedB) = b.container, startedA != startedB { return startedA > startedB }
        return a.created > b.created
    }

    private func reconcileNow(_ uid: String) {
        struct Plan {
            var deployment: DeploymentRecord
            var create = 0
            var delete: [String] = []
        }
        let plan: Plan? = state.withLockedValue { state in
            state.pendingReconciles.remove(uid)
            guard !state.stopped, var deployment = state.deployments.values.first(where: { $0.uid == uid }) else { return nil }
            // Pods that ended since the last pass: the replacement back-off.
            let now = Date()
            for var pod in state.pods.values where pod.deploymentUID == uid && pod.isTerminated && !pod.exitNoted {
                pod.exitNoted = true
                state.pods[pod.key] = pod
                let ranFor = pod.runningSince.map { now.timeIntervalSince($0) } ?? 0
                deployment.quickExits = ranFor < Self.quickExit ? deployment.quickExits + 1 : 0
                if deployment.quickExits > 0 {
                    let delay = min(10, 0.1 * pow(2, Double(deployment.quickExits - 1)))
                    deployment.notBefore = max(deployment.notBefore, now.addingTimeInterval(delay))
                }
            }
            state.deployments[deployment.key] = deployment
            let active = state.pods.values.filter { $0.deploymentUID == uid && Self.isActive($0) }
            var plan = Plan(deployment: deployment)
            if active.count < deployment.replicas {
                if now < deployment.notBefore {
                    let wait = deployment.notBefore.timeIntervalSince(now)
                    controllerQueue.asyncAfter(deadline: .now() + wait) { [self] in reconcile(uid) }
                } else {
                    plan.create = deployment.replicas - active.count
                }
            } else if active.count > deployment.replicas {
                plan.delete = active.sorted(by: Self.deletedFirst).prefix(active.count - deployment.replicas).map(\.name)
            }
            if deployment.replicaSetReplicas != deployment.replicas {
                let direction = deployment.replicas > deployment.replicaSetReplicas ? "up" : "down"
                recordEvent(deployment.reference, "Normal", "ScalingReplicaSet",
                            "Scaled \(direction) replica set \(deployment.replicaSetName) from \(deployment.replicaSetReplicas) to \(deployment.replicas)",
                            source: .deploymentController, in: &state)
                deployment.replicaSetReplicas = deployment.replicas
                state.deployments[deployment.key] = deployment
            }
            return plan
        }
        guard let plan else { return }
        let deployment = plan.deployment
        for _ in 0..<plan.create {
            for _ in 0..<3 {  // a generated name can collide
                guard let created = try? create(namespace: deployment.namespace, body: podBody(deployment), deploymentUID: uid),
                      let name = ((try? JSONSerialization.jsonObject(with: created)) as? [String: Any]).flatMap({ ($0["metadata"] as? [String: Any])?["name"] as? String })
                else { continue }
                state.withLockedValue { recordEvent(deployment.replicaSetReference, "Normal", "SuccessfulCreate", "Created pod: \(name)", source: .replicaSetController, in: &$0) }
                break
            }
        }
        for name in plan.delete {
            guard (try? delete(namespace: deployment.namespace, name: name, gracePeriodSeconds: nil)) != nil else { continue }
            state.withLockedValue { recordEvent(deployment.replicaSetReference, "Normal", "SuccessfulDelete", "Deleted pod: \(name)", source: .replicaSetController, in: &$0) }
        }
        updateStatus(uid)
    }

    /// The Deployment's status from its Pods (a new resourceVersion when it changed).
    private func updateStatus(_ uid: String) {
        state.withLockedValue { state in
            guard var deployment = state.deployments.values.first(where: { $0.uid == uid }) else { return }
            let active = state.pods.values.filter { $0.deploymentUID == uid && Self.isActive($0) }
            let ready = active.filter(\.isRunning).count
            let now = timestamp()
            let available = ready >= deployment.replicas - deployment.maxUnavailable
            let complete = active.count == deployment.replicas && ready == deployment.replicas
            let progressing = complete ? "NewReplicaSetAvailable" : "ReplicaSetUpdated"
            var next = deployment
            next.observedGeneration = deployment.generation
            next.statusReplicas = active.count
            next.readyReplicas = ready
            if deployment.available?.status != available { next.available = (available, now) }
            if deployment.progressing?.reason != progressing { next.progressing = (progressing, now) }
            guard next.observedGeneration != deployment.observedGeneration || next.statusReplicas != deployment.statusReplicas
                || next.readyReplicas != deployment.readyReplicas || next.available?.since != deployment.available?.since
                || next.progressing?.since != deployment.progressing?.since else { return }
            deployment = next
            commitDeployment(&deployment, in: &state)
        }
    }

    /// A Pod from the Deployment's template, as its ReplicaSet makes it.
    private func podBody(_ deployment: DeploymentRecord) -> Data {
        let template = (try? JSONSerialization.jsonObject(with: deployment.template)) as? [String: Any] ?? [:]
        let templateMetadata = template["metadata"] as? [String: Any] ?? [:]
        var labels = templateMetadata["labels"] as? [String: String] ?? [:]
        labels["pod-template-hash"] = deployment.templateHash
        var metadata: [String: Any] = [
            "generateName": deployment.replicaSetName + "-", "namespace": deployment.namespace, "labels": labels,
            "ownerReferences": [[
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": deployment.replicaSetName, "uid": deployment.replicaSetUID,
                "controller": true, "blockOwnerDeletion": true,
            ] as [String: Any]],
        ]
        if let annotations = templateMetadata["annotations"] { metadata["annotations"] = annotations }
        var spec = template["spec"] as? [String: Any] ?? [:]
        if spec["restartPolicy"] == nil { spec["restartPolicy"] = "Always" }
        return jsonData(["apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec] as [String: Any])
    }

    /// A `pod-template-hash`: up to 10 characters of the API's safe alphabet,
    /// the same for the same template.
    static func templateHash(_ template: Data) -> String {
        var hash: UInt32 = 2_166_136_261
        for byte in template { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        // As the controller writes it: the decimal digits of a 32-bit hash,
        // each byte mapped onto the alphabet (rand.SafeEncodeString).
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String(String(hash).utf8.map { alphabet[Int($0) % alphabet.count] })
    }
}
