import TrellisCore

/// A value for a setting, as a file, an environment variable or a flag gives it.
enum ConfigurationValue {
    case text(String)
    case list([String])
}

/// One setting of `trellisd`: its name in the file, its environment variable
/// and flag, what it means, and how its text becomes a value. The one table
/// the file, the environment, the flags and docs/configuration.md follow.
struct ConfigurationKey: Sendable {
    enum Kind: Sendable { case single, list }

    /// The key in the YAML file (`database_url`).
    let name: String
    let kind: Kind
    let help: String
    let apply: @Sendable (inout ControlPlaneConfiguration, ConfigurationValue) throws -> Void

    /// `TRELLIS_DATABASE_URL`
    var environmentVariable: String { "TRELLIS_" + name.uppercased() }
    /// `--database-url`
    var flag: String { "--" + name.replacingOccurrences(of: "_", with: "-") }

    static func named(_ name: String) -> ConfigurationKey? {
        let normalized = name.replacingOccurrences(of: "-", with: "_")
        return all.first { $0.name == normalized }
    }

    static let all: [ConfigurationKey] = [
        text("database_url", "libpq connection string or URI of the PostgreSQL database.") { $0.databaseURL = $1 },
        single("rpc_address", "host:port the wire protocol (agents and clients) listens on.") {
            $0.rpcAddress = try ListenAddress(parsing: $1)
        },
        single("http_address", "host:port serving /healthz, /readyz and /metrics.") {
            $0.httpAddress = try ListenAddress(parsing: $1)
        },
        text("agent_join_token_file", "File holding the token agents present to join.") { $0.agentJoinTokenFile = $1 },
        text("bootstrap_admin_token_file", "File holding an admin API token, created at start when missing.") {
            $0.bootstrapAdminTokenFile = $1
        },
        text("admin_token_file", "File holding an admin API token to register at start (a mounted Secret), as deploy-admin.") {
            $0.adminTokenFile = $1
        },
        ConfigurationKey(name: "plugin_dirs", kind: .list, help: "Directories executor plugins (*.so) are loaded from; ':'-separated in the environment and flags.") { configuration, value in
            guard case .list(let directories) = value, !directories.isEmpty, directories.allSatisfy({ !$0.isEmpty }) else {
                throw ConfigurationProblem("must name at least one directory, none empty")
            }
            configuration.pluginDirectories = directories
        },
        single("default_executor", "Executor of tasks that name none.") { configuration, name in
            if let problem = BuiltInExecutor.nameProblem(name) { throw ConfigurationProblem(problem) }
            configuration.defaultExecutor = name
        },
        single("parallelism", "Task instances running at once across the deployment (Airflow's core.parallelism).") {
            $0.parallelism = try whole($1, atLeast: 1)
        },
        single("heartbeat_ttl", "How often agents must show signs of life.") { $0.heartbeatTTLMillis = try duration($1) },
        single("agent_grace", "How long past the heartbeat TTL a silent agent is lost.") { $0.agentGraceMillis = try duration($1) },
        single("task_queued_timeout", "A task queued longer than this fails (Airflow's task_queued_timeout).") {
            $0.taskQueuedTimeoutMillis = try duration($1)
        },
        single("sweep_interval", "The scheduler's timer sweep (cron runs, retries, timeouts).") {
            $0.sweepIntervalMillis = try duration($1)
        },
        single("shutdown_grace", "How long calls in flight may take to finish on shutdown.") {
            $0.shutdownGraceMillis = try duration($1)
        },
        single("max_frame_bytes", "Largest wire frame accepted, in bytes.") { $0.maxFrameBytes = try whole($1, atLeast: 1024) },
        single("log_format", "text or json (one JSON object per line).") { configuration, text in
            guard let format = ControlPlaneConfiguration.LogFormat(rawValue: text) else {
                throw ConfigurationProblem("'\(text)' is not text or json")
            }
            configuration.logFormat = format
        },
        single("log_level", "trace, debug, info, notice, warning, error or critical.") { configuration, text in
            guard let level = ControlPlaneConfiguration.LogLevel(rawValue: text) else {
                throw ConfigurationProblem("'\(text)' is not one of \(ControlPlaneConfiguration.LogLevel.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            configuration.logLevel = level
        },
    ]

    /// A single value parsed by `parse`.
    private static func single(
        _ name: String, _ help: String,
        _ parse: @escaping @Sendable (inout ControlPlaneConfiguration, String) throws -> Void
    ) -> ConfigurationKey {
        ConfigurationKey(name: name, kind: .single, help: help) { configuration, value in
            guard case .text(let text) = value else { throw ConfigurationProblem("must be a single value, not a list") }
            try parse(&configuration, text)
        }
    }

    /// A non-empty string.
    private static func text(
        _ name: String, _ help: String, _ set: @escaping @Sendable (inout ControlPlaneConfiguration, String) -> Void
    ) -> ConfigurationKey {
        single(name, help) { configuration, text in
            guard !text.isEmpty else { throw ConfigurationProblem("must not be empty") }
            set(&configuration, text)
        }
    }

    private static func whole(_ text: String, atLeast minimum: Int) throws -> Int {
        guard let value = Int(text), value >= minimum else {
            throw ConfigurationProblem("must be a whole number of at least \(minimum), not '\(text)'")
        }
        return value
    }

    private static func duration(_ text: String) throws -> Int64 {
        let millis: Int64
        do {
            millis = try DurationText.millis(text)
        } catch {
            throw ConfigurationProblem(error.message)
        }
        guard millis > 0 else { throw ConfigurationProblem("must be longer than 0s") }
        return millis
    }
}
