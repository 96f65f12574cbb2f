import Foundation
import TrellisTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Runs a rendered container on this machine roughly as the kubelet would,
/// so tests can run what the manifests say rather than a copy of it:
///
/// - volumes become directories under a scratch directory per Pod: Secrets
///   from the given data (a missing Secret or key fails, as the Pod would),
///   ConfigMaps from the rendering, emptyDirs empty; files get the volume's
///   defaultMode and the Pod's fsGroup as their group;
/// - the environment is the container's: literal values with `$(VAR)`
///   expanded, Secret keys, the downward API (metadata.name,
///   metadata.namespace, spec.nodeName); nothing else but PATH and, for the
///   Trellis image, the loader path of its ld.so.conf.d entry;
/// - `$(VAR)` in command and args is expanded; container paths in the
///   environment and arguments are mapped to the volume directories or,
///   for the Trellis image, to its staged file tree (StagedImage); other
///   images' commands are looked up on this machine's PATH (psql);
/// - as root, the process runs as the container's runAsUser, runAsGroup and
///   fsGroup (setpriv), so file modes and ownership matter as they would.
///
/// Not emulated: networking (tests override listen addresses and map
/// Service names to the ports the processes chose), probes (tests make the
/// requests), resource limits, seccomp, capabilities, read-only roots.
struct PodEmulator {
    let rendering: Rendering
    /// Secret name → key → value.
    let secrets: [String: [String: String]]
    /// The staged Trellis image (StagedImage.stage()).
    let imageRoot: URL
    let scratch: URL
    /// `service:port` → `127.0.0.1:port`, applied to whole env values.
    var services: [String: String] = [:]

    /// A Pod of `workload`: its name and node, its volumes made.
    struct Pod {
        let workload: KubeValue
        let name: String
        let nodeName: String
        let volumes: URL
    }

    struct Prepared: CustomStringConvertible {
        var executable: String
        var arguments: [String]
        var environment: [String: String]
        var description: String { ([executable] + arguments).joined(separator: " ") }
    }

    func pod(_ kind: String, _ name: String, podName: String, nodeName: String = "node-a") throws -> Pod {
        let workload = try rendering.one(kind, name)
        let volumes = scratch.appendingPathComponent(podName)
        try FileManager.default.createDirectory(at: volumes, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let pod = Pod(workload: workload, name: podName, nodeName: nodeName, volumes: volumes)
        let spec = Container.podSpec(of: workload)
        let fsGroup = spec["securityContext"]["fsGroup"].int
        for volume in spec["volumes"].array {
            try materialize(volume, in: volumes.appendingPathComponent(volume["name"].string ?? "?"), fsGroup: fsGroup)
        }
        return pod
    }

    private func materialize(_ volume: KubeValue, in directory: URL, fsGroup: Int?) throws {
        let files = FileManager.default
        try files.createDirectory(at: directory, withIntermediateDirectories: true)
        try files.setAttributes([.posixPermissions: volume["emptyDir"].isNull ? 0o755 : 0o777], ofItemAtPath: directory.path)
        var contents: [String: String] = [:]
        var source: KubeValue
        if !volume["secret"].isNull {
            source = volume["secret"]
            let name = source["secretName"].string ?? ""
            guard let data = secrets[name] else { throw Refused(description: "Secret \(name) does not exist (volume \(volume["name"]))") }
            contents = data
        } else if !volume["configMap"].isNull {
            source = volume["configMap"]
            let name = source["name"].string ?? ""
            let map = try rendering.one("ConfigMap", name)
            contents = (map["data"].object ?? [:]).compactMapValues(\.string)
        } else if !volume["emptyDir"].isNull || !volume["persistentVolumeClaim"].isNull {
            if let fsGroup { try setGroup(directory.path, fsGroup) }
            return
        } else {
            throw Refused(description: "volume \(volume["name"]) of a kind the emulator does not know: \(volume)")
        }
        let mode = source["defaultMode"].int ?? 0o644
        let items: [(key: String, path: String)] = source["items"].array.isEmpty
            ? contents.keys.sorted().map { ($0, $0) }
            : source["items"].array.map { ($0["key"].string ?? "", $0["path"].string ?? "") }
        for item in items {
            guard let value = contents[item.key] else { throw Refused(description: "no key \(item.key) in the source of volume \(volume["name"])") }
            let file = directory.appendingPathComponent(item.path)
            try files.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(value.utf8).write(to: file)
            try files.setAttributes([.posixPermissions: mode], ofItemAtPath: file.path)
            if let fsGroup { try setGroup(file.path, fsGroup) }
        }
    }

    /// The group the kubelet gives volume files with fsGroup set.
    private func setGroup(_ path: String, _ group: Int) throws {
        guard getuid() == 0 else { return }
        guard chown(path, 0, gid_t(group)) == 0 else { throw Refused(description: "chown \(path): \(errno)") }
    }

    /// The command line and environment of `container` in `pod`.
    func prepare(_ container: Container, in pod: Pod, overrides: [String: String] = [:]) throws -> Prepared {
        var environment: [String: String] = [:]
        for entry in container.spec["env"].array {
            let name = entry["name"].string ?? ""
            if let value = entry["value"].string {
                environment[name] = Self.expand(value, environment)
            } else if let secret = entry["valueFrom"]["secretKeyRef"].object {
                let secretName = secret["name"]?.string ?? ""
                let key = secret["key"]?.string ?? ""
                guard let value = secrets[secretName]?[key] else { throw Refused(description: "\(container): Secret \(secretName) has no key \(key)") }
                environment[name] = value
            } else if let field = entry["valueFrom"]["fieldRef"]["fieldPath"].string {
                switch field {
                case "metadata.name": environment[name] = pod.name
                case "metadata.namespace": environment[name] = pod.workload["metadata"]["namespace"].string ?? ""
                case "spec.nodeName": environment[name] = pod.nodeName
                default: throw Refused(description: "\(container): the emulator has no downward API field \(field)")
                }
            } else {
                throw Refused(description: "\(container): env \(name) of an unknown form: \(entry)")
            }
        }
        let command = container.spec["command"].strings.map { Self.expand($0, environment) }
        let arguments = container.spec["args"].strings.map { Self.expand($0, environment) }
        guard let first = command.first else { throw Refused(description: "\(container) has no command (the image's entrypoint is not emulated)") }

        let trellisImage = container.runsTrellisImage
        func map(_ path: String) -> String {
            if let mount = container.mount(holding: path), let name = mount["name"].string, let mountPath = mount["mountPath"].string {
                return pod.volumes.appendingPathComponent(name).path + path.dropFirst(mountPath.count)
            }
            return trellisImage ? imageRoot.path + path : path
        }
        func mapWord(_ word: String) -> String {
            if word.hasPrefix("/") { return word.split(separator: ":", omittingEmptySubsequences: false).map { map(String($0)) }.joined(separator: ":") }
            // --flag=/path, --set=name=/path
            if word.hasPrefix("--"), let equals = word.range(of: "=/") {
                return String(word[..<equals.upperBound].dropLast()) + map(String(word[word.index(before: equals.upperBound)...]))
            }
            return word
        }
        for (name, value) in environment {
            environment[name] = services[value] ?? mapWord(value)
        }
        for (name, value) in overrides { environment[name] = value }
        environment["PATH"] = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        if container.mount(holding: "/tmp") != nil { environment["TMPDIR"] = map("/tmp") }
        if trellisImage { environment["LD_LIBRARY_PATH"] = try StagedImage.libraryPath(imageRoot) }

        var executable = first.hasPrefix("/") ? (trellisImage ? imageRoot.path + first : first) : try Repository.tool(first)
        var argv = Array(command.dropFirst()) + arguments
        argv = argv.map(mapWord)
        // As root, drop to the container's user like the runtime does.
        if getuid() == 0, let user = container.effectiveSecurity("runAsUser").int {
            let group = container.effectiveSecurity("runAsGroup").int ?? user
            var groups = [group]
            if let fsGroup = container.podSpec["securityContext"]["fsGroup"].int, fsGroup != group { groups.append(fsGroup) }
            argv = ["--reuid=\(user)", "--regid=\(group)", "--groups=\(groups.map(String.init).joined(separator: ","))", "--", executable] + argv
            executable = try Repository.tool("setpriv")
        }
        return Prepared(executable: executable, arguments: argv, environment: environment)
    }

    /// Runs an init container to completion; throws with its output unless
    /// it exits 0.
    @discardableResult
    func runToCompletion(_ container: Container, in pod: Pod) async throws -> ChildProcess.Result {
        let prepared = try prepare(container, in: pod)
        return try await Repository.run(prepared.executable, prepared.arguments, environment: prepared.environment)
    }

    /// Starts a long-running container.
    func start(_ container: Container, in pod: Pod, overrides: [String: String] = [:]) throws -> BackgroundProcess {
        let prepared = try prepare(container, in: pod, overrides: overrides)
        return try BackgroundProcess(prepared.executable, prepared.arguments, environment: prepared.environment, name: "\(pod.name)/\(container.name)")
    }

    /// Kubernetes's `$(VAR)` expansion: a reference to a variable defined
    /// earlier is replaced, `$$` is a literal `$`, anything else is kept.
    static func expand(_ text: String, _ environment: [String: String]) -> String {
        var result = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            let after = rest[rest.index(after: dollar)...]
            if after.hasPrefix("$") {
                result += "$"
                rest = after.dropFirst()
            } else if after.hasPrefix("("), let close = after.firstIndex(of: ")"),
                      let value = environment[String(after[after.index(after: after.startIndex)..<close])] {
                result += value
                rest = after[after.index(after: close)...]
            } else {
                result += "$"
                rest = after
            }
        }
        return result + rest
    }

    struct Refused: Error, CustomStringConvertible { var description: String }
}
