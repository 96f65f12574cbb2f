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
    var labels: [String: String]
    var uid: String
    var resourceVersion: Int = 0
    var creationTimestamp: String
    var deletionTimestamp: String?
    var deletionGracePeriodSeconds: Int?
    var spec: Data
    var containerName: String
    var image: String
    var phase = "Pending"
    var startTime: String?
    var container: ContainerState = .waiting(reason: "ContainerCreating")
    /// Why the scheduler cannot place the Pod, if it cannot.
    var unschedulable: String?
    var logPath: String

    var key: String { "\(namespace)/\(name)" }
    var isTerminated: Bool { if case .terminated = container { true } else { false } }

    func object() -> [String: Any] {
        var metadata: [String: Any] = [
            "name": name, "namespace": namespace, "uid": uid,
            "resourceVersion": String(resourceVersion), "creationTimestamp": creationTimestamp,
        ]
        if !labels.isEmpty { metadata["labels"] = labels }
        if let deletionTimestamp { metadata["deletionTimestamp"] = deletionTimestamp }
        if let deletionGracePeriodSeconds { metadata["deletionGracePeriodSeconds"] = deletionGracePeriodSeconds }
        let specObject = (try? JSONSerialization.jsonObject(with: spec)) ?? [String: Any]()
        var state: [String: Any]
        var started = false
        switch container {
        case .waiting(let reason, let message):
            var waiting: [String: Any] = ["reason": reason]
            if let message { waiting["message"] = message }
            state = ["waiting": waiting]
        case .running(let startedAt):
            state = ["running": ["startedAt": startedAt]]
            started = true
        case .terminated(let exitCode, let reason, let message, let startedAt, let finishedAt):
            var terminated: [String: Any] = ["exitCode": Int(exitCode), "reason": reason, "finishedAt": finishedAt]
            if let startedAt { terminated["startedAt"] = startedAt }
            if let message { terminated["message"] = message }
            state = ["terminated": terminated]
        }
        var status: [String: Any] = [
            "phase": phase,
            "containerStatuses": [[
                "name": containerName, "image": image, "imageID": "", "restartCount": 0,
                "ready": started, "started": started, "state": state,
            ] as [String: Any]],
        ]
        if let startTime { status["startTime"] = startTime }
        if let unschedulable {
            status["containerStatuses"] = nil
            status["conditions"] = [["type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": unschedulable, "lastTransitionTime": creationTimestamp]]
        } else {
            status["conditions"] = [["type": "PodScheduled", "status": "True", "lastTransitionTime": creationTimestamp]]
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

/// `k=v,k2!=v2,k3` label selectors (equality-based; bare keys test existence).
struct LabelSelector: Sendable {
    enum Requirement: Sendable { case equals(String, String), notEquals(String, String), exists(String), notExists(String) }
    var requirements: [Requirement] = []

    init(_ text: String?) throws(KubeError) {
        guard let text, !text.isEmpty else { return }
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            if let range = part.range(of: "!=") {
                requirements.append(.notEquals(String(part[..<range.lowerBound]), String(part[range.upperBound...])))
            } else if let range = part.range(of: "==") ?? part.range(of: "=") {
                requirements.append(.equals(String(part[..<range.lowerBound]), String(part[range.upperBound...])))
            } else if part.hasPrefix("!") {
                requirements.append(.notExists(String(part.dropFirst())))
            } else if part.allSatisfy({ $0.isLetter || $0.isNumber || "-_./".contains($0) }) {
                requirements.append(.exists(part))
            } else {
                throw KubeError(code: 400, reason: "BadRequest", message: "unable to parse requirement: \(part)")
            }
        }
    }

    func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy {
            switch $0 {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .exists(let key): labels[key] != nil
            case .notExists(let key): labels[key] == nil
            }
        }
    }
}

/// An API error, rendered as a Kubernetes `Status`.
struct KubeError: Error, Sendable {
    var code: Int
    var reason: String
    var message: String
    var name: String? = nil

    var status: Data {
        var object: [String: Any] = [
            "kind": "Status", "apiVersion": "v1", "metadata": [String: Any](),
            "status": "Failure", "message": message, "reason": reason, "code": code,
        ]
        if let name { object["details"] = ["name": name, "kind": "pods"] }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }

    static func notFound(_ name: String) -> KubeError {
        KubeError(code: 404, reason: "NotFound", message: "pods \"\(name)\" not found", name: name)
    }
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
    }

    let state = NIOLockedValueBox(State())
    let historyLimit: Int
    let logDirectory: String
    let unpullableImages: Set<String>
    let nodeLabels: [String: String]
    let startDelay: Duration

    init(historyLimit: Int, logDirectory: String, unpullableImages: Set<String> = [], nodeLabels: [String: String] = [:], startDelay: Duration = .zero) {
        self.historyLimit = historyLimit
        self.unpullableImages = unpullableImages
        self.nodeLabels = nodeLabels
        self.startDelay = startDelay
        self.logDirectory = logDirectory
    }

    var resourceVersion: Int { state.withLockedValue { $0.resourceVersion } }

    // MARK: Operations

    func create(namespace: String, body: Data) throws(KubeError) -> Data {
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
        if name.isEmpty, let generateName = metadata["generateName"] as? String, !generateName.isEmpty {
            name = generateName + String((0..<5).map { _ in "bcdfghjklmnpqrstvwxz2456789".randomElement()! })
        }
        var causes: [String] = []
        if name.isEmpty { causes.append("metadata.name: Required value: name or generateName is required") }
        else if !Self.isDNSSubdomain(name) { causes.append("metadata.name: Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'") }
        let labels = metadata["labels"] as? [String: String] ?? [:]
        if metadata["labels"] != nil && metadata["labels"] as? [String: String] == nil {
            causes.append("metadata.labels: Invalid value: label values must be strings")
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
            name: name, namespace: namespace, labels: labels, uid: uid, creationTimestamp: timestamp(),
            spec: specData, containerName: containers[0]["name"] as? String ?? "",
            image: containers[0]["image"] as? String ?? "",
            logPath: "\(logDirectory)/\(namespace)_\(name)_\(uid).log"
        )
        let nodeSelector = spec?["nodeSelector"] as? [String: String] ?? [:]
        if nodeSelector.contains(where: { nodeLabels[$0.key] != $0.value }) {
            record.unschedulable = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        }
        let created: Data = try locked { state throws(KubeError) in
            guard state.pods[record.key] == nil else {
                throw KubeError(code: 409, reason: "AlreadyExists", message: "pods \"\(name)\" already exists", name: name)
            }
            commit(&record, type: "ADDED", in: &state)
            return record.json()
        }
        let command = (containers[0]["command"] as? [String] ?? []) + (containers[0]["args"] as? [String] ?? [])
        let environment = (containers[0]["env"] as? [[String: Any]] ?? []).reduce(into: [String: String]()) {
            if let name = $1["name"] as? String { $0[name] = $1["value"] as? String ?? "" }
        }
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
            if isUnpullable(image) { failPull(key: key, uid: uid, image: image) }
            else { run(key: key, uid: uid, command: command, environment: environment, workingDir: workingDir) }
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
        let grace = max(0, gracePeriodSeconds ?? 30)
        let (deleted, uid, graceful): (Data, String, Bool) = try locked { state throws(KubeError) in
            let key = "\(namespace)/\(name)"
            guard var record = state.pods[key] else { throw KubeError.notFound(name) }
            if grace > 0, let pid = state.processes[record.uid] {
                // Graceful: the Pod stays, terminating (a MODIFIED with
                // deletionTimestamp), until its process ends; then DELETED.
                if record.deletionTimestamp == nil {
                    record.deletionTimestamp = timestamp(Date().addingTimeInterval(Double(grace)))
                    record.deletionGracePeriodSeconds = grace
                    commit(&record, type: "MODIFIED", in: &state)
                    kill(-pid, SIGTERM)
                }
                return (record.json(), record.uid, true)
            }
            state.pods.removeValue(forKey: key)
            if record.deletionTimestamp == nil {
                record.deletionTimestamp = timestamp()
                record.deletionGracePeriodSeconds = 0
            }
            commit(&record, type: "DELETED", in: &state, store: false)
            if let pid = state.processes[record.uid] { kill(-pid, SIGKILL) }
            return (record.json(), record.uid, false)
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
            for pid in state.processes.values { kill(-pid, SIGKILL) }
            state.watchers.removeAll()
        }
    }

    // MARK: Internals

    /// `state.withLockedValue` for a body with typed throws.
    private func locked<T>(_ body: (inout State) throws(KubeError) -> T) throws(KubeError) -> T {
        let result: Result<T, KubeError> = state.withLockedValue { state in
            do throws(KubeError) { return .success(try body(&state)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Gives `record` the next resourceVersion, stores it (unless
    /// deleted), records the event and sends it to the matching watches.
    private func commit(_ record: inout PodRecord, type: String, in state: inout State, store: Bool = true) {
        state.resourceVersion += 1
        record.resourceVersion = state.resourceVersion
        if store { state.pods[record.key] = record }
        let event = WatchEvent(resourceVersion: record.resourceVersion, type: type, namespace: record.namespace, labels: record.labels, object: record.json())
        state.history.append(event)
        if state.history.count > historyLimit { state.history.removeFirst(state.history.count - historyLimit) }
        for watcher in state.watchers.values where watcher.namespace == record.namespace && watcher.selector.matches(record.labels) {
            watcher.send(event)
        }
    }

    /// Applies `change` to the Pod `key` if it is still the one with `uid`.
    @discardableResult
    private func update(key: String, uid: String, _ change: (inout PodRecord) -> Void) -> Bool {
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
    private func failPull(key: String, uid: String, image: String) {
        let message = "rpc error: code = NotFound desc = failed to pull and unpack image \"\(image)\": not found"
        update(key: key, uid: uid) { $0.container = .waiting(reason: "ErrImagePull", message: message) }
        usleep(200_000)
        update(key: key, uid: uid) { $0.container = .waiting(reason: "ImagePullBackOff", message: "Back-off pulling image \"\(image)\"") }
    }

    private func run(key: String, uid: String, command: [String], environment: [String: String], workingDir: String?) {
        let logPath = state.withLockedValue { $0.pods[key]?.logPath }
        guard let logPath else { return }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        _ = FileManager.default.createFile(atPath: logPath + ".timestamps", contents: nil)
        var environment = environment
        let inherited = ProcessInfo.processInfo.environment
        for name in ["PATH", "HOME", "TMPDIR"] where environment[name] == nil { environment[name] = inherited[name] }
        let started = timestamp()
        let fail = { (message: String) -> Void in
            _ = self.update(key: key, uid: uid) {
                $0.phase = "Failed"
                $0.startTime = started
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
            guard state.pods[key]?.uid == uid else { return nil }
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
            update(key: key, uid: uid) {
                $0.phase = "Running"
                $0.startTime = started
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
                $0.container = .terminated(
                    exitCode: exitCode, reason: exitCode == 0 ? "Completed" : "Error", message: nil,
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

    static func resolve(_ command: String, path: String?) -> String? {
        if command.contains("/") { return command }
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(directory)/\(command)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    static func isDNSSubdomain(_ name: String) -> Bool {
        guard name.count <= 253, let first = name.first, let last = name.last,
              first.isLowercase || first.isNumber, last.isLowercase || last.isNumber else { return false }
        return name.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" || $0 == "." }
    }
}
