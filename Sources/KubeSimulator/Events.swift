import Foundation

/// The object an Event is about (`involvedObject`).
struct ObjectReference: Sendable, Equatable {
    var kind: String
    var apiVersion: String
    var namespace: String
    var name: String
    var uid: String
    var resourceVersion: String? = nil
    /// `spec.containers{base}` for what happens to one container.
    var fieldPath: String? = nil

    var object: [String: Any] {
        var object: [String: Any] = ["kind": kind, "apiVersion": apiVersion, "namespace": namespace, "name": name, "uid": uid]
        if let resourceVersion { object["resourceVersion"] = resourceVersion }
        if let fieldPath { object["fieldPath"] = fieldPath }
        return object
    }
}

/// Who reports an event: the scheduler, the kubelet, a controller.
enum EventSource: String, Sendable {
    case scheduler = "default-scheduler"
    case kubelet
    case deploymentController = "deployment-controller"
    case replicaSetController = "replicaset-controller"
}

/// One stored core/v1 Event, as the kubelet's and controllers' event
/// recorders write it (a repeat of the same event raises `count`).
struct EventRecord: Sendable {
    var name: String
    var namespace: String
    var uid: String
    var resourceVersion = 0
    var creationTimestamp: String
    var involved: ObjectReference
    var reason: String
    var message: String
    /// Normal or Warning.
    var type: String
    var count = 1
    var firstTimestamp: String
    var lastTimestamp: String
    var source: EventSource
    var host: String?

    /// The fields a fieldSelector on events can test.
    static let selectableFields: Set<String> = [
        "metadata.name", "metadata.namespace", "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type",
    ]

    var fields: [String: String] {
        [
            "metadata.name": name, "metadata.namespace": namespace, "involvedObject.kind": involved.kind,
            "involvedObject.namespace": involved.namespace, "involvedObject.name": involved.name, "involvedObject.uid": involved.uid,
            "involvedObject.apiVersion": involved.apiVersion, "involvedObject.resourceVersion": involved.resourceVersion ?? "",
            "involvedObject.fieldPath": involved.fieldPath ?? "", "reason": reason, "reportingComponent": source.rawValue,
            "source": source.rawValue, "type": type,
        ]
    }

    func object() -> [String: Any] {
        var sourceObject: [String: Any] = ["component": source.rawValue]
        if let host { sourceObject["host"] = host }
        return [
            "apiVersion": "v1", "kind": "Event",
            "metadata": [
                "name": name, "namespace": namespace, "uid": uid, "resourceVersion": String(resourceVersion),
                "creationTimestamp": creationTimestamp,
            ] as [String: Any],
            "involvedObject": involved.object, "reason": reason, "message": message, "type": type, "count": count,
            "firstTimestamp": firstTimestamp, "lastTimestamp": lastTimestamp, "source": sourceObject,
            "reportingComponent": source.rawValue, "reportingInstance": host ?? "",
        ]
    }

    func json() -> Data { (try? JSONSerialization.data(withJSONObject: object(), options: [.sortedKeys])) ?? Data() }
}

extension PodStore {
    /// Records an event (under the lock): a repeat of the last event with
    /// the same object, reason, message, type and source raises its count.
    func recordEvent(_ involved: ObjectReference, _ type: String, _ reason: String, _ message: String, source: EventSource, in state: inout State) {
        let now = timestamp()
        state.resourceVersion += 1
        if let index = state.events.lastIndex(where: {
            $0.involved.uid == involved.uid && $0.involved.fieldPath == involved.fieldPath && $0.reason == reason
                && $0.message == message && $0.type == type && $0.source == source
        }) {
            state.events[index].count += 1
            state.events[index].lastTimestamp = now
            state.events[index].resourceVersion = state.resourceVersion
            return
        }
        // As client-go names them: the object's name and the time in hex
        // nanoseconds (kept unique here).
        let nanos = max(state.lastEventNanos + 1, UInt64(Date().timeIntervalSince1970 * 1_000_000_000))
        state.lastEventNanos = nanos
        let host: String? = source == .kubelet ? nodeName : nil
        state.events.append(EventRecord(
            name: "\(involved.name).\(String(nanos, radix: 16))", namespace: involved.namespace, uid: UUID().uuidString.lowercased(),
            resourceVersion: state.resourceVersion, creationTimestamp: now, involved: involved, reason: reason, message: message,
            type: type, firstTimestamp: now, lastTimestamp: now, source: source, host: host))
        if state.events.count > eventLimit { state.events.removeFirst(state.events.count - eventLimit) }
    }

    /// Records an event about a Pod (the one stored under `key`, if it is
    /// still the one with `uid`).
    func recordPodEvent(key: String, uid: String, _ type: String, _ reason: String, _ message: String, source: EventSource = .kubelet, container: Bool = true) {
        state.withLockedValue { state in
            guard let record = state.pods[key], record.uid == uid else { return }
            recordEvent(record.reference(container: container), type, reason, message, source: source, in: &state)
        }
    }

    /// `GET /api/v1/namespaces/{ns}/events` (every namespace when nil).
    func listEvents(namespace: String?, fieldSelector: FieldSelector, labelSelector: LabelSelector) -> Data {
        let (items, resourceVersion) = state.withLockedValue { state in
            (state.events.filter { (namespace == nil || $0.namespace == namespace) && fieldSelector.matches($0.fields) && labelSelector.matches([:]) }
                .sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }.map { $0.object() }, state.resourceVersion)
        }
        let object: [String: Any] = [
            "apiVersion": "v1", "kind": "EventList",
            "metadata": ["resourceVersion": String(resourceVersion)], "items": items,
        ]
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    }

    func getEvent(namespace: String, name: String) throws(KubeError) -> Data {
        try locked { state throws(KubeError) in
            guard let event = state.events.first(where: { $0.namespace == namespace && $0.name == name }) else {
                throw KubeError(code: 404, reason: "NotFound", message: "events \"\(name)\" not found", name: name, kind: "events")
            }
            return event.json()
        }
    }
}
