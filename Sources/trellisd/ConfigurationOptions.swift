import ArgumentParser
import Foundation
import TrellisControlPlane

/// The settings every `trellisd` subcommand accepts as flags, plus the
/// configuration file. Each flag mirrors a key of docs/configuration.md.
struct ConfigurationOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "YAML configuration file.", completion: .file(extensions: ["yaml", "yml"]))
    var configFile: String?

    @Option(help: "libpq connection string or URI of the database (TRELLIS_DATABASE_URL).")
    var databaseURL: String?
    @Option(help: "host:port of the wire protocol (TRELLIS_RPC_ADDRESS).")
    var rpcAddress: String?
    @Option(help: "host:port of /healthz, /readyz, /metrics (TRELLIS_HTTP_ADDRESS).")
    var httpAddress: String?
    @Option(help: "File holding the agents' join token (TRELLIS_AGENT_JOIN_TOKEN_FILE).")
    var agentJoinTokenFile: String?
    @Option(help: "File holding an admin API token, created when missing (TRELLIS_BOOTSTRAP_ADMIN_TOKEN_FILE).")
    var bootstrapAdminTokenFile: String?
    @Option(help: "File holding an admin API token to register as deploy-admin (TRELLIS_ADMIN_TOKEN_FILE).")
    var adminTokenFile: String?
    @Option(help: "':'-separated executor plugin directories (TRELLIS_PLUGIN_DIRS).")
    var pluginDirs: String?
    @Option(help: "Executor of tasks that name none (TRELLIS_DEFAULT_EXECUTOR).")
    var defaultExecutor: String?
    @Option(help: "Task instances running at once (TRELLIS_PARALLELISM).")
    var parallelism: String?
    @Option(help: "Agent heartbeat TTL, e.g. 30s (TRELLIS_HEARTBEAT_TTL).")
    var heartbeatTTL: String?
    @Option(help: "Grace past the TTL before an agent is lost (TRELLIS_AGENT_GRACE).")
    var agentGrace: String?
    @Option(help: "A task queued longer fails (TRELLIS_TASK_QUEUED_TIMEOUT).")
    var taskQueuedTimeout: String?
    @Option(help: "The scheduler's timer sweep (TRELLIS_SWEEP_INTERVAL).")
    var sweepInterval: String?
    @Option(help: "Time calls in flight get on shutdown (TRELLIS_SHUTDOWN_GRACE).")
    var shutdownGrace: String?
    @Option(help: "Largest wire frame in bytes (TRELLIS_MAX_FRAME_BYTES).")
    var maxFrameBytes: String?
    @Option(help: "text or json (TRELLIS_LOG_FORMAT).")
    var logFormat: String?
    @Option(help: "trace … critical (TRELLIS_LOG_LEVEL).")
    var logLevel: String?

    /// The flags given, keyed as in the configuration file.
    var flags: [String: String] {
        let given: [(String, String?)] = [
            ("database_url", databaseURL), ("rpc_address", rpcAddress), ("http_address", httpAddress),
            ("agent_join_token_file", agentJoinTokenFile), ("bootstrap_admin_token_file", bootstrapAdminTokenFile),
            ("admin_token_file", adminTokenFile),
            ("plugin_dirs", pluginDirs), ("default_executor", defaultExecutor), ("parallelism", parallelism),
            ("heartbeat_ttl", heartbeatTTL), ("agent_grace", agentGrace), ("task_queued_timeout", taskQueuedTimeout),
            ("sweep_interval", sweepInterval), ("shutdown_grace", shutdownGrace), ("max_frame_bytes", maxFrameBytes),
            ("log_format", logFormat), ("log_level", logLevel),
        ]
        return Dictionary(uniqueKeysWithValues: given.compactMap { key, value in value.map { (key, $0) } })
    }

    /// Loads the configuration over `defaults`; a problem in any source
    /// exits 2 with every problem listed.
    func load(
        defaults: ControlPlaneConfiguration = ControlPlaneConfiguration(),
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ControlPlaneConfiguration {
        do {
            return try loadOrDescribe(defaults: defaults, environment: environment)
        } catch let error as ConfigurationExit {
            throw ConfigurationExit.exit(error)
        }
    }

    private func loadOrDescribe(defaults: ControlPlaneConfiguration, environment: [String: String]) throws -> ControlPlaneConfiguration {
        var file: (text: String, name: String)?
        if let configFile {
            do {
                file = (try String(contentsOfFile: configFile, encoding: .utf8), configFile)
            } catch {
                throw ConfigurationExit("cannot read the configuration file \(configFile): \(error.localizedDescription)")
            }
        }
        do {
            return try ControlPlaneConfiguration.load(defaults: defaults, file: file, environment: environment, flags: flags)
        } catch {
            throw ConfigurationExit("invalid configuration:\n" + error.problems.map { "  \($0)" }.joined(separator: "\n"))
        }
    }
}

/// A configuration problem: printed to standard error, exit code 2.
struct ConfigurationExit: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

extension ConfigurationExit {
    /// Reports the problem and ends the command with exit code 2.
    static func exit(_ error: ConfigurationExit) -> ExitCode {
        printError("trellisd: \(error.description)")
        return ExitCode(2)
    }
}
