import Foundation
import NIOConcurrencyHelpers
import TrellisProcess
#if canImport(Glibc)
import Glibc
#endif

/// A container's state as the Pod status reports it.
enum ContainerState: Sendable {
    case waiting(reason: String, message: String? = nil)
    case running(startedAt: String)
    case terminated(exitCode: Int32, reason: String, message: String?, startedAt: String?, finishedAt: String)
}

/// One stored Pod. `spec` is kept as sent (its JSON).
struct PodRecord: Sendable {
    var name: String
    var namespace: String
    var generateName: String?
    var labels: [String: String]
    var annotations: [String: String] = [:]
    /// `metadata.ownerReferences` as sent or set by the replica controller (JSON).
    var ownerReferences: Data?
    /// The Deployment whose replica controller made it.
    var deploymentUID: String?
    var uid: String
    var resourceVersion: Int = 0
    var creationTimestamp: String
    var created = Date()
    var deletionTimestamp: String?
    var deletionGracePeriodSeconds: Int?
    var spec: Data
    var containerName: String
    var image: String
    /// `spec.terminationGracePeriodSeconds`: a delete's default grace period.
    var terminationGracePeriodSeconds = 30
    var qosClass = "BestEffort"
    var phase = "Pending"
    var startTime: String?
    var container: ContainerState = .waiting(reason: "ContainerCreating")
    /// Why the scheduler cannot place the Pod, if it cannot.
    var unschedulable: String?
    /// `spec.nodeName`, once scheduled.
    var nodeName: String?
    /// When its sandbox was made: from then on it has a podIP.
    var sandboxTime: String?
    var containerID: String?
    var imageID = ""
    var logPath: String
    /// When its container started running.
    var runningSince: Date?
    /// The replica controller has seen it end (for its back-off).
    var exitNoted = false

    var key: String { "\(namespace)/\(name)" }
    var isTerminated: Bool { if case .terminated = container { true } else { false } }
    var isRunning: Bool { if case .running = container { true } else { false } }

    /// The Pod (or its container) as an event's `involvedObject`.
    func reference(container: Bool) -> ObjectReference {
        ObjectReference(kind: "Pod", apiVersion: "v1", namespace: namespace, name: name, uid: uid, resourceVersion: String(resourceVersion),
                        fieldPath: container ? "spec.containers{\(containerName)}" : nil)
    }

    /// The loopback address: every Pod's process runs on this host.
    static let address = "127.0.0.1"

    func object() -> [String: Any] {
        var metadata: [String: Any] = [
            "name": name, "namespace": namespace, "uid": uid,
            "resourceVersion": String(resourceVersion), "creationTimestamp": creationTimestamp,
        ]
        if let generateName { metadata["generateName"] = generateName }
        if !labels.isEmpty { metadata["labels"] = labels }
        if !annotations.isEmpty { metadata["annotations"] = annotations }
        if let ownerReferences, let references = try? JSONSerialization.jsonObject(with: ownerReferences) { metadata["ownerReferences"] = references }
        if let deletionTimestamp { metadata["deletionTimestamp"] = deletionTimestamp }
        if let deletionGracePeriodSeconds { metadata["deletionGracePeriodSeconds"] = deletionGracePeriodSeconds }
        var specObject = (try? JSONSerialization.jsonObject(with: spec)) as? [String: Any] ?? [:]
        if let nodeName { specObject["nodeName"] = nodeName }
        var state: [String: Any]
        var started = false
        var containersChanged = creationTimestamp
        switch container {
        case .waiting(let reason, let message):
            var waiting: [String: Any] = ["reason": reason]
            if let message { waiting["message"] = message }
            state = ["waiting": waiting]
        case .running(let startedAt):
            state = ["running": ["startedAt": startedAt]]
            started = true
            containersChanged = startedAt
        case .terminated(let exitCode, let reason, let message, let startedAt, let finishedAt):
            var terminated: [String: Any] = ["exitCode": Int(exitCode), "reason": reason, "finishedAt": finishedAt]
            if let startedAt { terminated["startedAt"] = startedAt }
            if let message { terminated["message"] = message }
            if let containerID { terminated["containerID"] = containerID }
            state = ["terminated": terminated]
            containersChanged = finishedAt
        }
        var containerStatus: [String: Any] = [
            "name": containerName, "image": image, "imageID": imageID, "restartCount": 0,
            "ready": started, "started": started, "state": state, "lastState": [String: Any](),
        ]
        if let containerID { containerStatus["containerID"] = containerID }
        var status: [String: Any] = ["phase": phase, "qosClass": qosClass, "containerStatuses": [containerStatus]]
        if let startTime { status["startTime"] = startTime }
        if nodeName != nil {
            status["hostIP"] = Self.address
            status["hostIPs"] = [["ip": Self.address]]
        }
        if sandboxTime != nil {
            status["podIP"] = Self.address
            status["podIPs"] = [["ip": Self.address]]
        }
        if let unschedulable {
            status["containerStatuses"] = nil
            status["conditions"] = [["type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable, "lastTransitionTime": creationTimestamp]]
        } else {
            func condition(_ type: String, _ value: Bool, at time: String, reason: String? = nil, message: String? = nil) -> [String: Any] {
                var condition: [String: Any] = ["type": type, "status": value ? "True" : "False", "lastProbeTime": NSNull(), "lastTransitionTime": time]
                if let reason { condition["reason"] = reason }
                if let message { condition["message"] = message }
                return condition
            }
            let (notReady, notReadyMessage): (String?, String?) = started ? (nil, nil)
                : isTerminated ? ("PodCompleted", nil) : ("ContainersNotReady", "containers with unready status: [\(containerName)]")
            status["conditions"] = [
                condition("PodScheduled", true, at: creationTimestamp),
                condition("PodReadyToStartContainers", sandboxTime != nil && !isTerminated, at: sandboxTime ?? creationTimestamp),
                condition("Initialized", true, at: creationTimestamp, reason: isTerminated ? "PodCompleted" : nil),
                condition("Ready", started, at: containersChanged, reason: notReady, message: notReadyMessage),
                condition("ContainersReady", started, at: containersChanged, reason: notReady, message: notReadyMessage),
            ]
        }
        return ["apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": specObject, "status": status]
    }

    func json() -> Data { (try? JSONSerialization.data(withJSONObject: object(), options: [.sortedKeys])) ?? Data() }
}

/// An injected API fault.
struct Fault: Sendable {
    var code: Int
    var count: Int
    var method: String?
}

/// A watch event as stored in the history: the object as it was then.
struct WatchEvent: Sendable {
    var resourceVersion: Int
    var type: String
    var namespace: String
    var labels: [String: String]
    var object: Data

    /// One line of a watch stream.
    var line: Data {
        var line = Data(#"{"type":""#.utf8)
        line.append(Data(type.utf8))
        line.append(Data(#"","object":"#.utf8))
        line.append(object)
        line.append(Data("}\n".utf8))
        return line
    }
}

/// An API error, rendered as a Kubernetes `Status`.
struct KubeError: Error, Sendable {
    var code: Int
    var reason: String
    var message: String
    var name: String? = nil
    /// `details.kind` and `details.group`: the resource the error is about.
    var kind = "pods"
    var group: String? = nil

    var status: Data {
        var object: [String: Any] = [
            "kind": "Status", "apiVersion": "v1", "metadata": [String: Any](),
            "status": "Failure", "message": message, "reason": reason, "code": code,
        ]
        if let name {
            var details: [String: Any] = ["name": name, "kind": kind]
            if let group { details["group"] = group }
            object["details"] = details
        }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }

    static func notFound(_ name: String) -> KubeError {
        KubeError(code: 404, reason: "NotFound", message: "pods \"\(name)\" not found", name: name)
    }
}

/// `count` characters as the API server's name generator picks them.
func randomSuffix(_ count: Int) -> String {
    String((0..<count).map { _ in "bcdfghjklmnpqrstvwxz2456789".randomElement()! })
}

func timestamp(_ date: Date = Date()) -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.string(from: date)
}

/// The simulator's state: Pods, the resourceVersion counter, a bounded
/// history of watch events (older resourceVersions get 410 Gone), the open
/// watches, and the local processes that "run" the Pods.
final class PodStore: Sendable {
    struct Watcher {
        var namespace: String
        var selector: LabelSelector
        var send: @Sendable (WatchEvent) -> Void
        /// Closes the watch's connection (a dropped watch).
        var drop: @Sendable () -> Void
    }

    struct State {
        var pods: [String: PodRecord] = [:]
        var resourceVersion = 1000
        var history: [WatchEvent] = []
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
        /// Process groups of running Pods, by uid; removed (under the lock)
        /// before the process is reaped, so a signal never hits a reused id.
        var processes: [String: pid_t] = [:]
        /// Injected API faults, consumed in order by matching requests.
        var faults: [Fault] = []
        /// Events, oldest first (at most `eventLimit`).
        var events: [EventRecord] = []
        var lastEventNanos: UInt64 = 0
        var deployments: [String: DeploymentRecord] = [:]
        /// Deployments (uids) with a replica-controller pass queued.
        var pendingReconciles: Set<String> = []
        /// Shut down: no process starts, no controller pass runs.
        var stopped = false
    }

    let state = NIOLockedValueBox(State())
    let historyLimit: Int
    let logDirectory: String
    let unpullableImages: Set<String>
    let nodeLabels: [String: String]
    let startDelay: Duration
    /// The one node's name (its `kubernetes.io/hostname` label).
    let nodeName: String
    /// Events kept; the oldest go first.
    let eventLimit = 10_000
    /// The replica controller's passes, one at a time.
    let controllerQueue = DispatchQueue(label: "trellis-kube-sim.replica-controller")

    init(historyLimit: Int, logDirectory: String, unpullableImages: Set<String> = [], nodeLabels: [String: String] = [:], startDelay: Duration = .zero) {
        self.historyLimit = historyLimit
        self.unpullableImages = unpullableImages
        self.nodeLabels = nodeLabels
        self.startDelay = startDelay
        self.logDirectory = logDirectory
        nodeName = nodeLabels["kubernetes.io/hostname"] ?? "trellis-kube-sim"
    }

    var resourceVersion: Int { state.withLockedValue { $0.resourceVersion } }

    // MARK: Operations

    func create(namespace: String, body: Data, deploymentUID: String? = nil) throws(KubeError) -> Data {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw KubeError(code: 400, reason: "BadRequest", message: "the body of the request was not a JSON object")
        }
        if let kind = object["kind"] as? String, kind != "Pod" {
            throw KubeError(code: 400, reason: "BadRequest", message: "the kind \(kind) is not a Pod")
        }
        let metadata = object["metadata"] as? [String: Any] ?? [:]
        if let bodyNamespace = metadata["namespace"] as? String, bodyNamespace != namespace {
            throw KubeError(code: 400, reason: "BadRequest", message: "the namespace of the provided object does not match the namespace sent on the request")
        }
        var name = metadata["name"] as? String ?? ""
        let generateName = (metadata["generateName"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        if name.isEmpty, let generateName {
            name = generateName + randomSuffix(5)
        }
        var causes: [String] = []
        if name.isEmpty { causes.append("metadata.name: Required value: name or generateName is required") }
        else if !Self.isDNSSubdomain(name) { causes.append("metadata.name: Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'") }
        let labels = metadata["labels"] as? [String: String] ?? [:]
        if metadata["labels"] != nil && metadata["labels"] as? [String: String] == nil {
            causes.append("metadata.labels: Invalid value: label values must be strings")
        }
        let annotations = metadata["annotations"] as? [String: String] ?? [:]
        if metadata["annotations"] != nil && metadata["annotations"] as? [String: String] == nil {
            causes.append("metadata.annotations: Invalid value: annotation values must be strings")
        }
        let spec = object["spec"] as? [String: Any]
        let containers = spec?["containers"] as? [[String: Any]] ?? []
        if containers.isEmpty { causes.append("spec.containers: Required value") }
        for (index, container) in containers.enumerated() {
            if (container["name"] as? String ?? "").isEmpty { causes.append("spec.containers[\(index)].name: Required value") }
            if (container["image"] as? String ?? "").isEmpty { causes.append("spec.containers[\(index)].image: Required value") }
        }
        guard causes.isEmpty else {
            throw KubeError(code: 422, reason: "Invalid", message: "Pod \"\(name)\" is invalid: " + causes.joined(separator: ", "), name: name)
        }
        let specData = (try? JSONSerialization.data(withJSONObject: spec ?? [:], options: [.sortedKeys])) ?? Data("{}".utf8)
        let uid = UUID().uuidString.lowercased()
        var record = PodRecord(
            name: name, namespace: namespace, generateName: generateName, labels: labels, annotations: annotations,
            ownerReferences: (metadata["ownerReferences"] as? [Any]).flatMap { try? JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]) },
            deploymentUID: deploymentUID, uid: uid, creationTimestamp: timestamp(),
            spec: specData, containerName: containers[0]["name"] as? String ?? "",
            image: containers[0]["image"] as? String ?? "",
            terminationGracePeriodSeconds: spec?["terminationGracePeriodSeconds"] as? Int ?? 30,
            qosClass: Self.qosClass(containers),
            logPath: "\(logDirectory)/\(namespace)_\(name)_\(uid).log"
        )
        let nodeSelector = spec?["nodeSelector"] as? [String: String] ?? [:]
        if nodeSelector.contains(where: { nodeLabels[$0.key] != $0.value }) {
            record.unschedulable = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        } else {
            // Bound at once: the simulator's scheduler has one node.
            record.nodeName = nodeName
        }
        let created: Data = try locked { state throws(KubeError) in
            guard state.pods[record.key] == nil else {
                throw KubeError(code: 409, reason: "AlreadyExists", message: "pods \"\(name)\" already exists", name: name)
            }
            commit(&record, type: "ADDED", in: &state)
            if let unschedulable = record.unschedulable {
                recordEvent(record.reference(container: false), "Warning", "FailedScheduling", unschedulable, source: .scheduler, in: &state)
            } else {
                recordEvent(record.reference(container: false), "Normal", "Scheduled", "Successfully assigned \(namespace)/\(name) to \(nodeName)", source: .scheduler, in: &state)
            }
            return record.json()
        }
        // env: literal values and the downward API's fieldRefs, as the
        // kubelet resolves them; `$(NAME)` in command and args expands to
        // an env value, as Kubernetes does ($$ escapes a $).
        var environment: [String: String] = [:]
        for variable in containers[0]["env"] as? [[String: Any]] ?? [] {
            guard let name = variable["name"] as? String else { continue }
            if let field = (variable["valueFrom"] as? [String: Any])?["fieldRef"] as? [String: Any] {
                environment[name] = switch field["fieldPath"] as? String ?? "" {
                case "metadata.name": record.name
                case "metadata.namespace": record.namespace
                case "metadata.uid": record.uid
                case "spec.nodeName": record.nodeName ?? nodeName
                case "status.podIP", "status.hostIP": "127.0.0.1"
                case let path where path.hasPrefix("metadata.labels['"):
                    record.labels[String(path.dropFirst("metadata.labels['".count).dropLast(2))] ?? ""
                default: ""
                }
            } else {
                environment[name] = Self.expand(variable["value"] as? String ?? "", environment)
            }
        }
        let resolved = environment
        let command = ((containers[0]["command"] as? [String] ?? []) + (containers[0]["args"] as? [String] ?? []))
            .map { Self.expand($0, resolved) }
        let workingDir = containers[0]["workingDir"] as? String
        let key = record.key
        let image = record.image
        guard record.unschedulable == nil else { return created }
        let startDelay = self.startDelay
        Thread.detachNewThread { [self] in
            if startDelay > .zero {
                let (seconds, attoseconds) = startDelay.components
                usleep(UInt32(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
            }
            let sandbox = timestamp()
            recordPodEvent(key: key, uid: uid, "Normal", "Pulling", "Pulling image \"\(image)\"")
            if isUnpullable(image) { failPull(key: key, uid: uid, image: image, sandbox: sandbox) }
            else { run(key: key, uid: uid, image: image, sandbox: sandbox, command: command, environment: resolved, workingDir: workingDir) }
        }
        return created
    }

    func get(namespace: String, name: String) throws(KubeError) -> Data {
        try locked { state throws(KubeError) in
            guard let record = state.pods["\(namespace)/\(name)"] else { throw KubeError.notFound(name) }
            return record.json()
        }
    }

    func list(namespace: String, selector: LabelSelector) -> Data {
        let (items, resourceVersion) = state.withLockedValue { state in
            (state.pods.values.filter { $0.namespace == namespace && selector.matches($0.labels) }
                .sorted { $0.name < $1.name }.map { $0.object() }, state.resourceVersion)
        }
        let object: [String: Any] = [
            "apiVersion": "v1", "kind": "PodList",
            "metadata": ["resourceVersion": String(resourceVersion)], "items": items,
        ]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }

    /// Registers a watch and sends (through `send`, in order, under the
    /// lock) the events after `resourceVersion` — or, without one, an ADDED
    /// for every matching Pod. Throws 410 Expired when the history no longer
    /// reaches back that far.
    func watch(namespace: String, selector: LabelSelector, resourceVersion: Int?, send: @escaping @Sendable (WatchEvent) -> Void, drop: @escaping @Sendable () -> Void) throws(KubeError) -> Int {
        try locked { state throws(KubeError) in
            if let resourceVersion, resourceVersion != 0 {
                let oldest = state.history.first?.resourceVersion ?? state.resourceVersion + 1
                if resourceVersion < oldest - 1 {
                    throw KubeError(code: 410, reason: "Expired", message: "too old resource version: \(resourceVersion) (\(oldest - 1))")
                }
                for event in state.history where event.resourceVersion > resourceVersion
                    && event.namespace == namespace && selector.matches(event.labels) {
                    send(event)
                }
            } else {
                for record in state.pods.values.sorted(by: { $0.resourceVersion < $1.resourceVersion })
                    where record.namespace == namespace && selector.matches(record.labels) {
                    send(WatchEvent(resourceVersion: record.resourceVersion, type: "ADDED", namespace: namespace, labels: record.labels, object: record.json()))
                }
            }
            let id = state.nextWatcher
            state.nextWatcher += 1
            state.watchers[id] = Watcher(namespace: namespace, selector: selector, send: send, drop: drop)
            return id
        }
    }

    func cancelWatch(_ id: Int) {
        _ = state.withLockedValue { $0.watchers.removeValue(forKey: id) }
    }

    /// Deletes the Pod at once (a DELETED event) and stops its process:
    /// SIGTERM to its process group, SIGKILL after the grace period (at
    /// once with 0).
    func delete(namespace: String, name: String, gracePeriodSeconds: Int?) throws(KubeError) -> Data {
        let (deleted, uid, graceful, grace): (Data, String, Bool, Int) = try locked { state throws(KubeError) in
            let key = "\(namespace)/\(name)"
            guard var record = state.pods[key] else { throw KubeError.notFound(name) }
            // Without one in the request, the Pod's own grace period.
            let grace = max(0, gracePeriodSeconds ?? record.terminationGracePeriodSeconds)
            if state.processes[record.uid] != nil, record.deletionTimestamp == nil {
                recordEvent(record.reference(container: true), "Normal", "Killing", "Stopping container \(record.containerName)", source: .kubelet, in: &state)
            }
            if grace > 0, let pid = state.processes[record.uid] {
                // Graceful: the Pod stays, terminating (a MODIFIED with
                // deletionTimestamp), until its process ends; then DELETED.
                if record.deletionTimestamp == nil {
                    record.deletionTimestamp = timestamp(Date().addingTimeInterval(Double(grace)))
                    record.deletionGracePeriodSeconds = grace
                    commit(&record, type: "MODIFIED", in: &state)
                    kill(-pid, SIGTERM)
                }
                return (record.json(), record.uid, true, grace)
            }
            state.pods.removeValue(forKey: key)
            if record.deletionTimestamp == nil {
                record.deletionTimestamp = timestamp()
                record.deletionGracePeriodSeconds = 0
            }
            commit(&record, type: "DELETED", in: &state, store: false)
            if let pid = state.processes[record.uid] { kill(-pid, SIGKILL) }
            return (record.json(), record.uid, false, grace)
        }
        if graceful {
            DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(grace)) { [self] in
                state.withLockedValue { state in
                    if let pid = state.processes[uid] { kill(-pid, SIGKILL) }
                }
            }
        }
        return deleted
    }

    /// The Pod's log so far and whether its container has ended (nil:
    /// waiting to start).
    func log(namespace: String, name: String, container: String? = nil) throws(KubeError) -> (path: String, ended: Bool) {
        try locked { state throws(KubeError) in
            guard let record = state.pods["\(namespace)/\(name)"] else { throw KubeError.notFound(name) }
            if let container, !container.isEmpty, container != record.containerName {
                throw KubeError(code: 400, reason: "BadRequest", message: "container \(container) is not valid for pod \(name)")
            }
            if case .waiting(let reason, _) = record.container {
                throw KubeError(code: 400, reason: "BadRequest", message: "container \"\(record.containerName)\" in pod \"\(name)\" is waiting to start: \(reason)")
            }
            return (record.logPath, record.isTerminated)
        }
    }

    /// Whether the Pod's container has ended (or the Pod is gone).
    func hasEnded(namespace: String, name: String, uid: String? = nil) -> Bool {
        state.withLockedValue { state in
            guard let record = state.pods["\(namespace)/\(name)"] else { return true }
            return record.isTerminated
        }
    }

    /// Kills every process still running (the simulator is stopping).
    /// Closes every open watch's connection, as an API server restart or a
    /// load balancer's idle timeout does.
    func dropWatches() {
        let watchers = state.withLockedValue { state in
            defer { state.watchers.removeAll() }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.drop() }
    }

    /// Queues a fault: the next `count` API requests (of `method`, if given)
    /// get `code` as a Status.
    func inject(_ fault: Fault) {
        state.withLockedValue { $0.faults.append(fault) }
    }

    /// The injected fault this request gets, if any.
    func takeFault(method: String) -> KubeError? {
        state.withLockedValue { state in
            guard let index = state.faults.firstIndex(where: { $0.method == nil || $0.method == method }) else { return nil }
            let code = state.faults[index].code
            state.faults[index].count -= 1
            if state.faults[index].count <= 0 { state.faults.remove(at: index) }
            return code == 429
                ? KubeError(code: 429, reason: "TooManyRequests", message: "the server has received too many requests and has asked us to try again later (injected)")
                : KubeError(code: code, reason: "InternalError", message: "an error on the server (\"injected\") has prevented the request from succeeding")
        }
    }

    func killAll() {
        state.withLockedValue { state in
            state.stopped = true
            for pid in state.processes.values { kill(-pid, SIGKILL) }
            state.watchers.removeAll()
        }
    }

    // MARK: Internals

    /// `state.withLockedValue` for a body with typed throws.
    func locked<T>(_ body: (inout State) throws(KubeError) -> T) throws(KubeError) -> T {
        let result: Result<T, KubeError> = state.withLockedValue { state in
            do throws(KubeError) { return .success(try body(&state)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Gives `record` the next resourceVersion, stores it (unless
    /// deleted), records the event and sends it to the matching watches.
    func commit(_ record: inout PodRecord, type: String, in state: inout State, store: Bool = true) {
        state.resourceVersion += 1
        record.resourceVersion = state.resourceVersion
        if store { state.pods[record.key] = record }
        if let deploymentUID = record.deploymentUID { scheduleReconcile(deploymentUID, in: &state) }
        let event = WatchEvent(resourceVersion: record.resourceVersion, type: type, namespace: record.namespace, labels: record.labels, object: record.json())
        state.history.append(event)
        if state.history.count > historyLimit { state.history.removeFirst(state.history.count - historyLimit) }
        for watcher in state.watchers.values where watcher.namespace == record.namespace && watcher.selector.matches(record.labels) {
            watcher.send(event)
        }
    }

    /// Applies `change` to the Pod `key` if it is still the one with `uid`.
    @discardableResult
    func update(key: String, uid: String, _ change: (inout PodRecord) -> Void) -> Bool {
        state.withLockedValue { state in
            guard var record = state.pods[key], record.uid == uid else { return false }
            change(&record)
            commit(&record, type: "MODIFIED", in: &state)
            return true
        }
    }

    /// "Runs" a Pod: its first container's command and args as a local
    /// process, output (both streams) to the Pod's log file.
    /// Images the simulator cannot "pull": the configured ones and any from
    /// a registry under the reserved `.invalid` top-level domain.
    func isUnpullable(_ image: String) -> Bool {
        if unpullableImages.contains(image) { return true }
        guard let slash = image.firstIndex(of: "/") else { return false }
        let registry = image[..<slash].split(separator: ":").first.map(String.init) ?? ""
        return registry.hasSuffix(".invalid")
    }

    /// An image pull failure: the Pod stays Pending, its container waiting
    /// with ErrImagePull, then ImagePullBackOff, as the kubelet reports it.
    private func failPull(key: String, uid: String, image: String, sandbox: String) {
        let message = "rpc error: code = NotFound desc = failed to pull and unpack image \"\(image)\": not found"
        recordPodEvent(key: key, uid: uid, "Warning", "Failed", "Failed to pull image \"\(image)\": \(message)")
        recordPodEvent(key: key, uid: uid, "Warning", "Failed", "Error: ErrImagePull")
        update(key: key, uid: uid) {
            $0.sandboxTime = sandbox
            $0.startTime = sandbox
            $0.container = .waiting(reason: "ErrImagePull", message: message)
        }
        usleep(200_000)
        // As the kubelet reports it: the back-off is Normal, its error Warning.
        recordPodEvent(key: key, uid: uid, "Normal", "BackOff", "Back-off pulling image \"\(image)\"")
        recordPodEvent(key: key, uid: uid, "Warning", "Failed", "Error: ImagePullBackOff")
        update(key: key, uid: uid) { $0.container = .waiting(reason: "ImagePullBackOff", message: "Back-off pulling image \"\(image)\"") }
    }

    private func run(key: String, uid: String, image: String, sandbox: String, command: [String], environment: [String: String], workingDir: String?) {
        let logPath = state.withLockedValue { $0.pods[key]?.logPath }
        guard let logPath else { return }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        _ = FileManager.default.createFile(atPath: logPath + ".timestamps", contents: nil)
        var environment = environment
        let inherited = ProcessInfo.processInfo.environment
        for name in ["PATH", "HOME", "TMPDIR"] where environment[name] == nil { environment[name] = inherited[name] }
        let imageID = Self.imageID(image)
        let containerID = "containerd://" + Self.hexDigest(uid + "/container")
        recordPodEvent(key: key, uid: uid, "Normal", "Pulled", "Successfully pulled image \"\(image)\" in 1ms (1ms including waiting). Image size: 0 bytes.")
        recordPodEvent(key: key, uid: uid, "Normal", "Created", "Created container: \(containerName(key: key))")
        let started = timestamp()
        let fail = { (message: String) -> Void in
            self.recordPodEvent(key: key, uid: uid, "Warning", "Failed", "Error: \(message)")
            _ = self.update(key: key, uid: uid) {
                $0.phase = "Failed"
                $0.startTime = sandbox
                $0.sandboxTime = sandbox
                $0.imageID = imageID
                $0.containerID = containerID
                $0.container = .terminated(exitCode: 128, reason: "StartError", message: message, startedAt: nil, finishedAt: timestamp())
            }
        }
        guard let executable = command.first.flatMap({ Self.resolve($0, path: environment["PATH"]) }) else {
            fail(command.isEmpty
                ? "the simulator needs a command: images' entrypoints are not known"
                : "exec: \"\(command[0])\": executable file not found in $PATH")
            return
        }
        // Spawn under the lock, so a delete in between sees the process.
        let pipe: Spawn.Pipe
        do throws(Spawn.Failure) { pipe = try Spawn.Pipe() } catch { fail(error.description); return }
        let spawned: Result<pid_t, Spawn.Failure>? = state.withLockedValue { state in
            defer { close(pipe.writeEnd) }
            guard !state.stopped, state.pods[key]?.uid == uid else { return nil }
            do throws(Spawn.Failure) {
                let pid = try Spawn.start(
                    executable, Array(command.dropFirst()), argument0: command[0], environment: environment,
                    standardOutput: .descriptor(pipe.writeEnd), standardError: .descriptor(pipe.writeEnd),
                    workingDirectory: workingDir, newProcessGroup: true)
                state.processes[uid] = pid
                return .success(pid)
            } catch {
                return .failure(error)
            }
        }
        let drained = DispatchSemaphore(value: 0)
        Thread.detachNewThread { Self.copyOutput(from: pipe.readEnd, to: logPath); drained.signal() }
        switch spawned {
        case nil:
            return
        case .failure(let failure):
            fail(failure.description)
        case .success(let pid):
            recordPodEvent(key: key, uid: uid, "Normal", "Started", "Started container \(containerName(key: key))")
            update(key: key, uid: uid) {
                $0.phase = "Running"
                $0.runningSince = Date()
                $0.startTime = sandbox
                $0.sandboxTime = sandbox
                $0.imageID = imageID
                $0.containerID = containerID
                $0.container = .running(startedAt: started)
            }
            Spawn.waitUntilExited(pid)
            _ = state.withLockedValue { $0.processes.removeValue(forKey: uid) }
            let termination = Spawn.reap(pid)
            // The output written before the exit is in the log before the
            // container counts as terminated (unless a grandchild keeps the
            // pipe open).
            _ = drained.wait(timeout: .now() + .seconds(2))
            let exitCode: Int32 = switch termination {
            case .exited(let code): code
            case .signalled(let signal): 128 + signal
            }
            update(key: key, uid: uid) {
                $0.phase = exitCode == 0 ? "Succeeded" : "Failed"
                // A simulator-only hook fakes what the runtime would say (OOMKilled).
                let reason = $0.annotations[PodStore.terminateReasonAnnotation] ?? (exitCode == 0 ? "Completed" : "Error")
                $0.container = .terminated(
                    exitCode: exitCode, reason: reason, message: nil,
                    startedAt: started, finishedAt: timestamp())
            }
            // A graceful delete waited for this: now the Pod goes.
            state.withLockedValue { state in
                guard var record = state.pods[key], record.uid == uid, record.deletionTimestamp != nil else { return }
                state.pods.removeValue(forKey: key)
                commit(&record, type: "DELETED", in: &state, store: false)
            }
        }
    }

    /// Copies a container's output from the pipe to its log file and, each
    /// line prefixed with an RFC 3339 timestamp, to `<log>.timestamps`
    /// (for `timestamps=true`), until end of file.
    static func copyOutput(from descriptor: Int32, to logPath: String) {
        defer { close(descriptor) }
        guard let log = FileHandle(forWritingAtPath: logPath),
              let stamped = FileHandle(forWritingAtPath: logPath + ".timestamps") else { return }
        defer { try? log.close(); try? stamped.close() }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var buffer = [UInt8](repeating: 0, count: 65536)
        var atLineStart = true
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            let chunk = Data(buffer[0..<count])
            log.write(chunk)
            let prefix = Data((formatter.string(from: Date()) + " ").utf8)
            var out = Data()
            for byte in chunk {
                if atLineStart { out.append(prefix); atLineStart = false }
                out.append(byte)
                if byte == UInt8(ascii: "\n") { atLineStart = true }
            }
            stamped.write(out)
        }
    }

    /// A simulator-only annotation: the reason a Pod's container reports
    /// when it ends (e.g. `OOMKilled`), instead of Completed or Error.
    static let terminateReasonAnnotation = "simulator.trellis.dev/terminate-reason"

    private func containerName(key: String) -> String {
        state.withLockedValue { $0.pods[key]?.containerName ?? "" }
    }

    /// The QoS class the API server gives a Pod for its containers' resources.
    static func qosClass(_ containers: [[String: Any]]) -> String {
        var any = false, guaranteed = true
        for container in containers {
            let resources = container["resources"] as? [String: Any] ?? [:]
            let requests = resources["requests"] as? [String: Any] ?? [:], limits = resources["limits"] as? [String: Any] ?? [:]
            if !requests.isEmpty || !limits.isEmpty { any = true }
            for resource in ["cpu", "memory"] {
                guard let limit = limits[resource] else { guaranteed = false; continue }
                if let request = requests[resource], "\(request)" != "\(limit)" { guaranteed = false }
            }
        }
        return !any ? "BestEffort" : guaranteed ? "Guaranteed" : "Burstable"
    }

    /// A stable made-up digest for an image (`docker.io/library/busybox@sha256:…`).
    static func imageID(_ image: String) -> String {
        var repository = image
        if let at = repository.firstIndex(of: "@") { repository = String(repository[..<at]) }
        if let colon = repository.lastIndex(of: ":"), !repository[colon...].contains("/") { repository = String(repository[..<colon]) }
        let first = repository.split(separator: "/").first.map(String.init) ?? ""
        if !repository.contains("/") { repository = "docker.io/library/" + repository }
        else if !(first.contains(".") || first.contains(":") || first == "localhost") { repository = "docker.io/" + repository }
        return "\(repository)@sha256:\(hexDigest(image))"
    }

    /// 64 hex digits derived from `text` (FNV-1a, four lanes): not a real
    /// hash, only stable.
    static func hexDigest(_ text: String) -> String {
        (0..<4).map { lane -> String in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325 &+ UInt64(lane)
            for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            let hex = String(hash, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    static func resolve(_ command: String, path: String?) -> String? {
        if command.contains("/") { return command }
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(command)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Kubernetes's `$(NAME)` expansion in command, args and env values:
    /// a defined name is replaced, an undefined one left as written, `$$`
    /// is a literal `$`.
    static func expand(_ text: String, _ environment: [String: String]) -> String {
        guard text.contains("$") else { return text }
        var result = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            let next = text.index(after: index)
            if character == "$", next < text.endIndex {
                if text[next] == "$" {
                    result.append("$")
                    index = text.index(after: next)
                    continue
                }
                if text[next] == "(", let close = text[next...].firstIndex(of: ")") {
                    let name = String(text[text.index(after: next)..<close])
                    if let value = environment[name] {
                        result += value
                    } else {
                        result += text[index...close]
                    }
                    index = text.index(after: close)
                    continue
                }
            }
            result.append(character)
            index = next
        }
        return result
    }

    static func isDNSSubdomain(_ name: String) -> Bool {
        guard name.count <= 253, let first = name.first, let last = name.last,
              first.isLowercase || first.isNumber, last.isLowercase || last.isNumber else { return false }
        return name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" || $0 == "." }
    }
}
