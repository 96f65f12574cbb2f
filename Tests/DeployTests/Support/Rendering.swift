import Foundation

/// What `kubectl kustomize DIR` renders: the objects a user would apply.
struct Rendering: Sendable, CustomStringConvertible {
    /// The kustomization, relative to the repository (`deploy/base`).
    let source: String
    let objects: [KubeValue]
    let yaml: String

    /// Renders a kustomization of the repository (`deploy/base`), or any
    /// directory given by absolute path.
    static func render(_ source: String) async throws -> Rendering {
        let directory = source.hasPrefix("/") ? source : Repository.path(source)
        let result = try await Repository.run(try Repository.tool("kubectl"), ["kustomize", directory])
        return Rendering(source: source, objects: try KubeValue.documents(yaml: result.stdout), yaml: result.stdout)
    }

    /// Every kustomization of the repository, rendered.
    static func all() async throws -> [Rendering] {
        var renderings: [Rendering] = []
        for source in try Repository.kustomizations() { renderings.append(try await render(source)) }
        return renderings
    }

    var description: String { source }

    static let kedaAPIVersion = "keda.sh/v1alpha1"
    /// KEDA's objects: kubernetes-validate has no schema for them.
    var kedaObjects: [KubeValue] { objects.filter { $0["apiVersion"].string == Self.kedaAPIVersion } }
    var kubernetesObjects: [KubeValue] { objects.filter { $0["apiVersion"].string != Self.kedaAPIVersion } }

    func all(_ kind: String) -> [KubeValue] { objects.filter { $0["kind"].string == kind } }

    func one(_ kind: String, _ name: String) throws -> KubeValue {
        let matches = objects.filter { $0["kind"].string == kind && $0["metadata"]["name"].string == name }
        guard matches.count == 1 else { throw Missing(description: "\(source): \(matches.count) \(kind) objects named \(name), not 1") }
        return matches[0]
    }

    func has(_ kind: String, _ name: String) -> Bool {
        objects.contains { $0["kind"].string == kind && $0["metadata"]["name"].string == name }
    }

    /// The one ConfigMap kustomize generated from `name` (its name gets a
    /// content hash).
    func generatedConfigMap(_ name: String) throws -> KubeValue {
        let matches = all("ConfigMap").filter { $0["metadata"]["name"].string?.hasPrefix(name + "-") == true }
        guard matches.count == 1 else { throw Missing(description: "\(source): \(matches.count) ConfigMaps generated from \(name)") }
        return matches[0]
    }

    struct Missing: Error, CustomStringConvertible { var description: String }

    static let workloadKinds: Set<String> = ["Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job", "Pod"]

    /// Objects that run Pods.
    var workloads: [KubeValue] { objects.filter { Self.workloadKinds.contains($0["kind"].string ?? "") } }

    /// Every container and init container of every workload.
    var containers: [Container] {
        workloads.flatMap { workload in
            let pod = Container.podSpec(of: workload)
            return pod["initContainers"].array.map { Container(workload: workload, spec: $0, isInit: true) }
                + pod["containers"].array.map { Container(workload: workload, spec: $0, isInit: false) }
        }
    }

    func container(_ kind: String, _ workload: String, _ name: String) throws -> Container {
        guard let container = containers.first(where: {
            $0.workload["kind"].string == kind && $0.workload["metadata"]["name"].string == workload && $0.name == name
        }) else { throw Missing(description: "\(source): no container \(name) in \(kind) \(workload)") }
        return container
    }
}

/// One container of a rendered workload, with its Pod around it.
struct Container: Sendable, CustomStringConvertible {
    let workload: KubeValue
    let spec: KubeValue
    let isInit: Bool

    static func podSpec(of workload: KubeValue) -> KubeValue {
        workload["kind"].string == "Pod" ? workload["spec"] : workload["spec"]["template"]["spec"]
    }

    var podSpec: KubeValue { Self.podSpec(of: workload) }
    var podMetadata: KubeValue { workload["kind"].string == "Pod" ? workload["metadata"] : workload["spec"]["template"]["metadata"] }
    var name: String { spec["name"].string ?? "?" }
    var workloadName: String { workload["metadata"]["name"].string ?? "?" }
    var description: String { "\(workload["kind"].string ?? "?")/\(workloadName) \(isInit ? "init container" : "container") \(name)" }
    var image: String { spec["image"].string ?? "" }
    /// The image's repository without registry, tag or digest: `trellis`
    /// for `registry.example.com/platform/trellis:0.1.0`.
    var imageName: String {
        var reference = image
        if let at = reference.firstIndex(of: "@") { reference = String(reference[..<at]) }
        let last = reference.split(separator: "/").last.map(String.init) ?? reference
        return last.split(separator: ":").first.map(String.init) ?? last
    }
    var runsTrellisImage: Bool { imageName == "trellis" }

    /// The EnvVar named `name`, or `.null`.
    func env(_ name: String) -> KubeValue {
        spec["env"].array.last { $0["name"].string == name } ?? .null
    }

    /// A literal env value.
    func envValue(_ name: String) -> String? { env(name)["value"].string }

    var envNames: [String] { spec["env"].array.compactMap { $0["name"].string } }

    /// A securityContext field as it applies to this container: its own,
    /// else the Pod's.
    func effectiveSecurity(_ key: String) -> KubeValue {
        let own = spec["securityContext"][key]
        return own.isNull ? podSpec["securityContext"][key] : own
    }

    /// The Pod's volume mounted at `path` (exactly), if any.
    func volume(mountedAt path: String) -> KubeValue? {
        guard let mount = spec["volumeMounts"].array.first(where: { $0["mountPath"].string == path }),
              let name = mount["name"].string else { return nil }
        return podSpec["volumes"].array.first { $0["name"].string == name }
    }

    /// The mount holding `path` (the longest mountPath that is a prefix).
    func mount(holding path: String) -> KubeValue? {
        spec["volumeMounts"].array
            .filter { mount in
                guard let mountPath = mount["mountPath"].string else { return false }
                return path == mountPath || path.hasPrefix(mountPath.hasSuffix("/") ? mountPath : mountPath + "/")
            }
            .max { ($0["mountPath"].string ?? "").count < ($1["mountPath"].string ?? "").count }
    }

    func volume(named name: String) -> KubeValue? {
        podSpec["volumes"].array.first { $0["name"].string == name }
    }
}
