public import Foundation

// The Kubernetes objects Trellis reads and writes, as Codable subsets of the
// API's JSON (core/v1 Pod and Event, apps/v1 Deployment's autoscaling/v1
// Scale, metav1 Status and lists). Field names are the API's; absent
// optionals are left out of the JSON, so what Trellis sends is exactly what it
// set. Unknown fields in responses are ignored.

/// metav1.ObjectMeta.
public struct ObjectMeta: Codable, Sendable, Equatable {
    public var name: String?
    public var generateName: String?
    public var namespace: String?
    public var uid: String?
    public var resourceVersion: String?
    public var creationTimestamp: String?
    public var deletionTimestamp: String?
    public var deletionGracePeriodSeconds: Int?
    public var labels: [String: String]?
    public var annotations: [String: String]?

    public init(
        name: String? = nil, namespace: String? = nil,
        labels: [String: String]? = nil, annotations: [String: String]? = nil
    ) {
        self.name = name
        self.namespace = namespace
        self.labels = labels
        self.annotations = annotations
    }
}

/// metav1.ListMeta.
public struct ListMeta: Codable, Sendable, Equatable {
    public var resourceVersion: String?
    public var `continue`: String?
}

// MARK: Pod

/// core/v1 Pod.
public struct Pod: Codable, Sendable, Equatable {
    public var apiVersion: String = "v1"
    public var kind: String = "Pod"
    public var metadata: ObjectMeta
    public var spec: PodSpec?
    public var status: PodStatus?

    public init(metadata: ObjectMeta, spec: PodSpec) {
        self.metadata = metadata
        self.spec = spec
    }

    public var name: String { metadata.name ?? "" }
    public var namespace: String { metadata.namespace ?? "" }
    public var labels: [String: String] { metadata.labels ?? [:] }
}

public struct PodSpec: Codable, Sendable, Equatable {
    public var containers: [Container]
    public var restartPolicy: String?
    public var serviceAccountName: String?
    public var nodeSelector: [String: String]?
    public var tolerations: [Toleration]?
    public var securityContext: PodSecurityContext?
    public var nodeName: String?
    public var terminationGracePeriodSeconds: Int?
    public var activeDeadlineSeconds: Int?

    public init(containers: [Container]) {
        self.containers = containers
    }
}

public struct Container: Codable, Sendable, Equatable {
    public var name: String
    public var image: String?
    public var command: [String]?
    public var args: [String]?
    public var env: [EnvVar]?
    public var imagePullPolicy: String?
    public var resources: ResourceRequirements?
    public var securityContext: SecurityContext?

    public init(name: String, image: String?) {
        self.name = name
        self.image = image
    }
}

public struct EnvVar: Codable, Sendable, Equatable {
    public var name: String
    public var value: String?

    public init(name: String, value: String?) {
        self.name = name
        self.value = value
    }
}

public struct ResourceRequirements: Codable, Sendable, Equatable {
    /// Quantities as the API writes them ("500m", "1Gi").
    public var requests: [String: String]?
    public var limits: [String: String]?

    public init(requests: [String: String]? = nil, limits: [String: String]? = nil) {
        self.requests = requests
        self.limits = limits
    }
}

public struct Toleration: Codable, Sendable, Equatable {
    public var key: String?
    public var `operator`: String?
    public var value: String?
    public var effect: String?
    public var tolerationSeconds: Int?

    public init(key: String?, operator: String?, value: String?, effect: String?, tolerationSeconds: Int?) {
        self.key = key
        self.operator = `operator`
        self.value = value
        self.effect = effect
        self.tolerationSeconds = tolerationSeconds
    }
}

public struct PodSecurityContext: Codable, Sendable, Equatable {
    public var runAsUser: Int?
    public var runAsGroup: Int?
    public var runAsNonRoot: Bool?
    public var fsGroup: Int?

    public init(runAsUser: Int? = nil, runAsGroup: Int? = nil, runAsNonRoot: Bool? = nil, fsGroup: Int? = nil) {
        self.runAsUser = runAsUser
        self.runAsGroup = runAsGroup
        self.runAsNonRoot = runAsNonRoot
        self.fsGroup = fsGroup
    }
}

public struct SecurityContext: Codable, Sendable, Equatable {
    public var runAsUser: Int?
    public var runAsNonRoot: Bool?
    public var allowPrivilegeEscalation: Bool?
    public var readOnlyRootFilesystem: Bool?

    public init(runAsUser: Int? = nil, runAsNonRoot: Bool? = nil, allowPrivilegeEscalation: Bool? = nil, readOnlyRootFilesystem: Bool? = nil) {
        self.runAsUser = runAsUser
        self.runAsNonRoot = runAsNonRoot
        self.allowPrivilegeEscalation = allowPrivilegeEscalation
        self.readOnlyRootFilesystem = readOnlyRootFilesystem
    }
}

public struct PodStatus: Codable, Sendable, Equatable {
    /// Pending, Running, Succeeded, Failed or Unknown.
    public var phase: String?
    public var reason: String?
    public var message: String?
    public var hostIP: String?
    public var podIP: String?
    public var startTime: String?
    public var conditions: [PodCondition]?
    public var containerStatuses: [ContainerStatus]?
    public var initContainerStatuses: [ContainerStatus]?
}

public struct PodCondition: Codable, Sendable, Equatable {
    public var type: String
    public var status: String
    public var reason: String?
    public var message: String?
    public var lastTransitionTime: String?
}

public struct ContainerStatus: Codable, Sendable, Equatable {
    public var name: String
    public var ready: Bool?
    public var restartCount: Int?
    public var image: String?
    public var state: ContainerState?
    public var lastState: ContainerState?
}

public struct ContainerState: Codable, Sendable, Equatable {
    public var waiting: ContainerStateWaiting?
    public var running: ContainerStateRunning?
    public var terminated: ContainerStateTerminated?
}

public struct ContainerStateWaiting: Codable, Sendable, Equatable {
    public var reason: String?
    public var message: String?
}

public struct ContainerStateRunning: Codable, Sendable, Equatable {
    public var startedAt: String?
}

public struct ContainerStateTerminated: Codable, Sendable, Equatable {
    public var exitCode: Int32
    public var signal: Int32?
    public var reason: String?
    public var message: String?
    public var startedAt: String?
    public var finishedAt: String?
}

/// core/v1 PodList.
public struct PodList: Codable, Sendable {
    public var metadata: ListMeta
    public var items: [Pod]
}

// MARK: Event

/// core/v1 Event (what `kubectl describe pod` lists at the end).
public struct Event: Codable, Sendable, Equatable {
    public var metadata: ObjectMeta
    public var involvedObject: ObjectReference?
    public var reason: String?
    public var message: String?
    /// Normal or Warning.
    public var type: String?
    public var count: Int?
    public var firstTimestamp: String?
    public var lastTimestamp: String?
}

public struct ObjectReference: Codable, Sendable, Equatable {
    public var kind: String?
    public var namespace: String?
    public var name: String?
    public var uid: String?
}

public struct EventList: Codable, Sendable {
    public var metadata: ListMeta
    public var items: [Event]
}

// MARK: Scale

/// autoscaling/v1 Scale, a Deployment's scale subresource.
public struct Scale: Codable, Sendable, Equatable {
    public var apiVersion: String? = "autoscaling/v1"
    public var kind: String? = "Scale"
    public var metadata: ObjectMeta
    public var spec: ScaleSpec
    public var status: ScaleStatus?
}

public struct ScaleSpec: Codable, Sendable, Equatable {
    public var replicas: Int?
}

public struct ScaleStatus: Codable, Sendable, Equatable {
    public var replicas: Int
    /// The label selector of the scaled pods, in string form.
    public var selector: String?
}

// MARK: Status

/// metav1.Status, the body of every API error.
public struct Status: Codable, Sendable, Equatable {
    public var status: String?
    public var message: String?
    /// A CamelCase cause: NotFound, AlreadyExists, Conflict, Expired, Gone...
    public var reason: String?
    public var code: Int?
    /// Seconds the server asked to wait (its Retry-After header); not part
    /// of the Status JSON.
    public var retryAfterSeconds: Int?

    private enum CodingKeys: String, CodingKey { case status, message, reason, code }
}

/// One event of a watch stream: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR
/// (whose object is a Status).
public struct WatchEvent<Object: Decodable & Sendable>: Sendable {
    public var type: String
    public var object: Object
}
