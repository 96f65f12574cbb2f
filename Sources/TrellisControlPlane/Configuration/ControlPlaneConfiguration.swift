import Foundation
import TrellisCore
public import TrellisLog
import Yams

/// Everything `trellisd` is configured with: one YAML file, overridden by
/// environment variables (`TRELLIS_<KEY>`), overridden by flags
/// (`--<key>`). Every key, its meaning and default is listed in
/// `ConfigurationKey.all` and documented in docs/configuration.md.
public struct ControlPlaneConfiguration: Sendable, Hashable {
    /// libpq connection string or URI of the database.
    public var databaseURL: String?
    /// Where the wire protocol (agents and clients) listens.
    public var rpcAddress = ListenAddress(host: "0.0.0.0", port: 7400)
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    public var httpAddress = ListenAddress(host: "0.0.0.0", port: 7401)
    /// A file holding the token agents present to join.
    public var agentJoinTokenFile: String?
    /// A file holding an admin API token created at start if it does not exist yet.
    public var bootstrapAdminTokenFile: String?
    /// A file holding an admin API token someone else made (a mounted
    /// Secret), registered at every start as `ControlPlane.adminTokenName`.
    public var adminTokenFile: String?
    /// Where executor plugins (`*.so`) are loaded from, in order.
    public var pluginDirectories = ["/usr/lib/trellis/executors"]
    /// The executor of tasks that name none.
    public var defaultExecutor = "persistent-pool"
    /// Task instances running at once across the deployment (Airflow's `core.parallelism`).
    public var parallelism = 32
    /// How often agents must show signs of life.
    public var heartbeatTTLMillis: Int64 = 30_000
    /// How long past the TTL an agent may stay silent before it is lost.
    public var agentGraceMillis: Int64 = 15_000
    /// A task queued longer than this fails (Airflow's `task_queued_timeout`).
    public var taskQueuedTimeoutMillis: Int64 = 600_000
    /// The scheduler's timer sweep (cron runs, retries, timeouts).
    public var sweepIntervalMillis: Int64 = 1_000
    /// How long calls in flight may take to finish on shutdown.
    public var shutdownGraceMillis: Int64 = 30_000
    /// The largest wire frame accepted.
    public var maxFrameBytes = 4 * 1024 * 1024
    public var logFormat = LogFormat.text
    public var logLevel = LogLevel.info
    /// Per-executor settings, by executor name (the file's `executors:`
    /// section, then `TRELLIS__EXECUTOR__<NAME>__<KEY>` variables).
    public var executors: [String: [String: String]] = [:]

    public init() {}

    public typealias LogFormat = TrellisLog.LogFormat
    public typealias LogLevel = TrellisLog.LogLevel

    /// Reads the configuration: `defaults` (the built-in ones unless a
    /// command has its own, as `trellisd standalone` does), then `file` (YAML
    /// text and the name to report it by), then `environment`, then `flags`
    /// (key → value, keys as in the file). Every problem from every source is
    /// reported at once; nothing is half-applied.
    public static func load(
        defaults: ControlPlaneConfiguration = ControlPlaneConfiguration(),
        file: (text: String, name: String)? = nil,
        environment: [String: String] = [:],
        flags: [String: String] = [:]
    ) throws(ConfigurationError) -> ControlPlaneConfiguration {
        var configuration = defaults
        var problems: [String] = []

        if let file { configuration.apply(file: file, problems: &problems) }

        for key in ConfigurationKey.all {
            guard let value = environment[key.environmentVariable] else { continue }
            do {
                try key.apply(&configuration, key.kind == .list ? .list(value.split(separator: ":").map(String.init)) : .text(value))
            } catch {
                problems.append("environment \(key.environmentVariable): \(ConfigurationProblem.message(of: error))")
            }
        }
        configuration.applyExecutorEnvironment(environment)

        for (name, value) in flags.sorted(by: { $0.key < $1.key }) {
            guard let key = ConfigurationKey.named(name) else {
                problems.append("flag --\(name.replacingOccurrences(of: "_", with: "-")): unknown setting")
                continue
            }
            do {
                try key.apply(&configuration, key.kind == .list ? .list(value.split(separator: ":").map(String.init)) : .text(value))
            } catch {
                problems.append("flag \(key.flag): \(ConfigurationProblem.message(of: error))")
            }
        }
        guard problems.isEmpty else { throw ConfigurationError(problems: problems) }
        return configuration
    }

    /// The settings of one executor as the JSON object its plugin receives.
    public func executorSettingsJSON(for executor: String) -> String {
        let members = (executors[executor] ?? [:]).sorted { $0.key < $1.key }.map { "\(JSONString.quoted($0.key)):\(JSONText.literal($0.value))" }
        return "{" + members.joined(separator: ",") + "}"
    }

    private mutating func apply(file: (text: String, name: String), problems: inout [String]) {
        let root: Node?
        do {
            root = try Yams.compose(yaml: file.text, .basic)
        } catch {
            problems.append("\(file.name): not valid YAML: \(error)")
            return
        }
        guard let root else { return }
        guard case .mapping(let mapping) = root else {
            problems.append("\(file.name): must be a mapping of settings, not a list or a single value")
            return
        }
        for (keyNode, valueNode) in mapping {
            let place = "\(file.name):\(keyNode.mark.map { "\($0.line):\($0.column)" } ?? "?")"
            guard case .scalar(let keyScalar) = keyNode else {
                problems.append("\(place): setting names must be strings")
                continue
            }
            let name = keyScalar.string
            if name == "executors" {
                applyExecutors(valueNode, place: place, file: file.name, problems: &problems)
                continue
            }
            guard let key = ConfigurationKey.named(name) else {
                var message = "\(place): unknown setting '\(name)'"
                if let close = closestMatch(name, in: ConfigurationKey.all.map(\.name) + ["executors"]) {
                    message += " (did you mean '\(close)'?)"
                }
                problems.append(message)
                continue
            }
            let value: ConfigurationValue
            switch valueNode {
            case .scalar(let scalar): value = key.kind == .list ? .list([scalar.string]) : .text(scalar.string)
            case .sequence(let items):
                let strings = items.compactMap { if case .scalar(let item) = $0 { item.string } else { nil } }
                guard strings.count == items.count, key.kind == .list else {
                    problems.append("\(place): \(name): must be \(key.kind == .list ? "a list of strings" : "a single value")")
                    continue
                }
                value = .list(strings)
            default:
                problems.append("\(place): \(name): must be \(key.kind == .list ? "a list of strings" : "a single value"), not a mapping")
                continue
            }
            do {
                try key.apply(&self, value)
            } catch {
                problems.append("\(place): \(name): \(ConfigurationProblem.message(of: error))")
            }
        }
    }

    private mutating func applyExecutors(_ node: Node, place: String, file: String, problems: inout [String]) {
        guard case .mapping(let executors) = node else {
            problems.append("\(place): executors: must map executor names to their settings")
            return
        }
        for (nameNode, settingsNode) in executors {
            guard case .scalar(let name) = nameNode, case .mapping(let settings) = settingsNode else {
                problems.append("\(file):\(nameNode.mark?.line ?? 0): executors: each executor's settings must be a mapping")
                continue
            }
            if let problem = BuiltInExecutor.nameProblem(name.string) {
                problems.append("\(file):\(nameNode.mark?.line ?? 0): executors: \(problem)")
                continue
            }
            for (key, value) in settings {
                guard case .scalar(let keyScalar) = key, case .scalar(let valueScalar) = value else {
                    problems.append("\(file):\(key.mark?.line ?? 0): executors.\(name.string): settings must be simple key: value pairs")
                    continue
                }
                self.executors[name.string, default: [:]][keyScalar.string] = valueScalar.string
            }
        }
    }

    /// `TRELLIS__EXECUTOR__<NAME>__<KEY>=value`, in the style of Airflow's
    /// `AIRFLOW__SECTION__KEY`; NAME is the executor name upper-cased with
    /// '-' written '_'. It applies to executors named in the file or
    /// built in, and to any other name as written lower-cased.
    private mutating func applyExecutorEnvironment(_ environment: [String: String]) {
        let prefix = "TRELLIS__EXECUTOR__"
        let known = Set(executors.keys).union(BuiltInExecutor.allCases.map(\.rawValue))
        for (variable, value) in environment where variable.hasPrefix(prefix) {
            let rest = variable.dropFirst(prefix.count)
            guard let separator = rest.range(of: "__") else { continue }
            let encodedName = String(rest[..<separator.lowerBound])
            let key = String(rest[separator.upperBound...]).lowercased()
            guard !encodedName.isEmpty, !key.isEmpty else { continue }
            let name = known.first { $0.uppercased().replacingOccurrences(of: "-", with: "_") == encodedName }
                ?? encodedName.lowercased().replacingOccurrences(of: "_", with: "-")
            executors[name, default: [:]][key] = value
        }
    }
}

/// A `host:port` to listen on.
public struct ListenAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, `:port` (all interfaces) or `[v6]:port`.
    public init(parsing text: String) throws {
        guard let colon = text.lastIndex(of: ":") else {
            throw ConfigurationProblem("'\(text)' is not host:port (example: 0.0.0.0:7400)")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
            throw ConfigurationProblem("'\(text)' has no valid port (0 to 65535)")
        }
        self.init(host: host.isEmpty ? "0.0.0.0" : host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Every problem of a configuration, from every source, at once.
public struct ConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [String]
    public var description: String { problems.joined(separator: "\n") }
}

/// Why one value was refused.
public struct ConfigurationProblem: Error, Sendable, Hashable {
    public var message: String
    public init(_ message: String) { self.message = message }

    static func message(of error: any Error) -> String {
        (error as? ConfigurationProblem)?.message ?? "\(error)"
    }
}

/// JSON spellings for settings handed to plugins: true, false and integers
/// become literals, anything else a string.
enum JSONText {
    static func literal(_ value: String) -> String {
        if value == "true" || value == "false" { return value }
        if let number = Int64(value) { return String(number) }
        return JSONString.quoted(value)
    }
}
