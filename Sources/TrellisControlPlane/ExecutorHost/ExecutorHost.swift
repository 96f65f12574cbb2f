public import Foundation
import Synchronization
public import TrellisProto

/// Loads executor plugins and hands them task attempts: the control plane's
/// only door to executors. Plugins own no database state; the host records
/// what their events say.
///
/// Every plugin file in the configured directories is loaded; a bad file
/// (wrong ABI, missing entry point, duplicate name, failing create) is
/// reported and skipped, and never stops the others. Plugins are never
/// unloaded.
public final class ExecutorHost: Sendable {
    /// What loading found: the executors now available and every file that
    /// could not be used, with its reason.
    public struct LoadReport: Sendable {
        public var loaded: [ExecutorDescription]
        public var problems: [PluginLoadError]
    }

    /// An executor as listings show it.
    public struct ExecutorDescription: Sendable, Hashable {
        public var name: String
        public var version: String
        public var path: String
    }

    private let executors = Mutex<[String: ExecutorPluginInstance]>([:])
    private let events: @Sendable (ExecutorEventRecord) -> Void
    private let log: @Sendable (String, PluginLogLevel, String) -> Void
    private let agents: (any AgentCalling)?
    private let hostID: String

    /// - Parameters:
    ///   - hostID: identifies this control-plane replica to plugins.
    ///   - agents: routes plugins' agent calls; nil when no agents can connect.
    ///   - log: receives (executor, level, message) for plugin log lines.
    ///   - events: receives every event plugins emit, from any thread.
    public init(
        hostID: String,
        agents: (any AgentCalling)? = nil,
        log: @escaping @Sendable (String, PluginLogLevel, String) -> Void,
        events: @escaping @Sendable (ExecutorEventRecord) -> Void
    ) {
        self.hostID = hostID
        self.agents = agents
        self.log = log
        self.events = events
    }

    /// Loads every `*.so` file in `directories` (in name order) and creates
    /// its executor with the settings `configuration` returns for its name
    /// (a JSON object).
    public func loadPlugins(in directories: [String], configuration: (String) -> String) -> LoadReport {
        var report = LoadReport(loaded: [], problems: [])
        for directory in directories {
            let files: [String]
            do {
                files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".so") }.sorted()
            } catch {
                report.problems.append(PluginLoadError(path: directory, reason: "the plugin directory cannot be read: \(error.localizedDescription)"))
                continue
            }
            for file in files {
                let path = (directory as NSString).appendingPathComponent(file)
                do {
                    report.loaded.append(try load(path: path, configuration: configuration))
                } catch {
                    report.problems.append(error)
                }
            }
        }
        return report
    }

    /// Loads one plugin file and creates its executor.
    public func load(path: String, configuration: (String) -> String) throws(PluginLoadError) -> ExecutorDescription {
        let library = try ExecutorPluginLibrary.load(path: path)
        if let existing = executors.withLock({ $0[library.name] }) {
            throw PluginLoadError(path: path, reason: "executor '\(library.name)' is already loaded from \(existing.library.path); executor names must be unique")
        }
        let name = library.name
        let callbacks = HostCallbacks(
            executor: name, events: events, log: { [log] level, message in log(name, level, message) }, agents: agents
        )
        var config = Trellis_V1_ExecutorConfig()
        config.name = name
        config.configJson = configuration(name)
        config.hostID = hostID
        let instance = try ExecutorPluginInstance(library: library, config: config, callbacks: callbacks)
        let raced: ExecutorPluginInstance? = executors.withLock { loaded in
            if let other = loaded[name] { return other }
            loaded[name] = instance
            return nil
        }
        if let raced {
            instance.destroy()
            throw PluginLoadError(path: path, reason: "executor '\(name)' is already loaded from \(raced.library.path); executor names must be unique")
        }
        return ExecutorDescription(name: name, version: library.version, path: path)
    }

    /// The executors loaded, by name.
    public var loaded: [ExecutorDescription] {
        executors.withLock { $0.values.map { ExecutorDescription(name: $0.library.name, version: $0.library.version, path: $0.library.path) } }
            .sorted { $0.name < $1.name }
    }

    /// Starts an attempt on `executor`. Its progress arrives as events.
    public func submit(_ assignment: Trellis_V1_TaskAssignment, to executor: String) throws(ExecutorHostError) {
        try instance(executor).call(\.submit, assignment)
    }

    /// Asks `executor` to stop an attempt; a finished event follows.
    public func cancel(_ request: Trellis_V1_CancelRequest, on executor: String) throws(ExecutorHostError) {
        try instance(executor).call(\.cancel, request)
    }

    /// Hands attempts running before a restart back to `executor`.
    public func adopt(_ request: Trellis_V1_AdoptRequest, on executor: String) throws(ExecutorHostError) {
        try instance(executor).call(\.adopt, request)
    }

    /// The periodic tick, to every executor, each with its own queued and
    /// running counts (`counts` by executor name); failures are logged,
    /// not thrown.
    public func tick(now: Date, counts: [String: (queued: Int, running: Int)] = [:]) {
        for instance in executors.withLock({ Array($0.values) }) {
            var request = Trellis_V1_TickRequest()
            request.now.unixMicros = Int64((now.timeIntervalSince1970 * 1_000_000).rounded())
            request.queued = Int64(counts[instance.library.name]?.queued ?? 0)
            request.running = Int64(counts[instance.library.name]?.running ?? 0)
            do {
                try instance.call(\.tick, request)
            } catch {
                log(instance.library.name, .warning, "tick failed: \(error.message)")
            }
        }
    }

    /// Tells every executor that dispatches to agents (ABI 1.1's
    /// `agents_changed`) which agents are connected now; failures are logged.
    public func agentsChanged(_ update: Trellis_V1_AgentsUpdate) {
        for instance in executors.withLock({ Array($0.values) }) where instance.library.table.pointee.agents_changed != nil {
            do {
                try instance.call(\.agents_changed, update)
            } catch {
                log(instance.library.name, .warning, "agents_changed failed: \(error.message)")
            }
        }
    }

    /// Destroys every executor instance (the libraries stay loaded).
    public func shutdown() {
        let all = executors.withLock { loaded in
            defer { loaded.removeAll() }
            return Array(loaded.values)
        }
        for instance in all { instance.destroy() }
    }

    private func instance(_ name: String) throws(ExecutorHostError) -> ExecutorPluginInstance {
        let (instance, names) = executors.withLock { ($0[name], $0.keys.sorted()) }
        guard let instance else {
            let loaded = names.isEmpty ? "no executors are loaded" : "loaded: \(names.joined(separator: ", "))"
            throw ExecutorHostError(.executorNotLoaded, executor: name, "executor '\(name)' is not loaded (\(loaded)); install its plugin in a plugin directory or change the task's executor")
        }
        return instance
    }
}
