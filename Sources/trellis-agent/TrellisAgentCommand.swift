import ArgumentParser
import Foundation
import Logging
import TrellisAgent
import TrellisLog
import TrellisProcess
import TrellisWire

/// `trellis-agent`: runs on every node (a DaemonSet) or as a scaled worker;
/// connects out to trellisd, registers, runs tasks as child processes,
/// streams their logs, reports their ends, and drains on SIGTERM.
@main
struct TrellisAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trellis-agent",
        abstract: "Run tasks from the Trellis control plane as child processes on this node.",
        discussion: """
            Every option can also be set by an environment variable (in parentheses); a flag wins \
            over its variable. SIGTERM or SIGINT drains: no new tasks, running ones get --drain-grace, \
            the rest are cancelled, every event is reported, then exit 0. Exits 1 when the control \
            plane refuses the agent (wrong join token), 2 for bad options. docs/agent.md has the details.
            """,
        version: TrellisVersion.current
    )

    @Option(help: "host:port of trellisd's wire port (TRELLIS_AGENT_CONTROL_PLANE).")
    var controlPlane: String?
    @Option(help: "File holding the agents' join token (TRELLIS_AGENT_TOKEN_FILE).", completion: .file())
    var tokenFile: String?
    @Option(help: "Worker pool this agent serves (TRELLIS_AGENT_POOL; default: default).")
    var pool: String?
    @Option(help: "Tasks run at once (TRELLIS_AGENT_SLOTS; default: 4).")
    var slots: String?
    @Option(name: .customLong("label"), help: "A label k=v matched by task queues; repeatable (TRELLIS_AGENT_LABELS=k=v,k2=v2).")
    var labels: [String] = []
    @Option(help: "The Kubernetes node it runs on (TRELLIS_AGENT_NODE_NAME, from the downward API).")
    var nodeName: String?
    @Option(help: "Agent name, unique in the deployment (TRELLIS_AGENT_NAME; default: the node name, else the host name).")
    var name: String?
    @Option(help: "Between SIGTERM and SIGKILL when a task is stopped (TRELLIS_AGENT_KILL_GRACE; default: 10s).")
    var killGrace: String?
    @Option(help: "How long running tasks may finish after SIGTERM (TRELLIS_AGENT_DRAIN_GRACE; default: 5m).")
    var drainGrace: String?
    @Option(help: "Directory for the tasks' scratch directories (TRELLIS_AGENT_WORK_DIR; default: $TMPDIR/trellis-agent).", completion: .directory)
    var workDir: String?
    @Option(help: "text or json (TRELLIS_AGENT_LOG_FORMAT; default: text).")
    var logFormat: String?
    @Option(help: "trace, debug, info, notice, warning, error or critical (TRELLIS_AGENT_LOG_LEVEL; default: info).")
    var logLevel: String?

    /// Usage errors (an unknown flag, a missing value) exit 2 like every
    /// other bad option, not ArgumentParser's 64.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }

    func run() async throws {
        let settings: AgentSettings
        do {
            settings = try AgentSettings.resolve(options: self, environment: ProcessInfo.processInfo.environment)
        } catch {
            FileHandle.standardError.write(Data("trellis-agent: invalid options:\n\(error.problems.map { "  \($0)" }.joined(separator: "\n"))\n".utf8))
            throw ExitCode(2)
        }
        LoggingSystem.bootstrap { [settings] label in
            TrellisLogHandler(label: label, format: settings.logFormat, level: settings.logLevel)
        }
        let logger = Logger(label: "trellis-agent")
        let configuration = settings.configuration

        // Signals are handled here, not by the default action, so the agent drains.
        let events = SignalWaiter([SIGTERM, SIGINT])
        let agent = Agent(configuration: configuration, logger: logger)
        let linkFailure = LinkFailure()
        let link = Task {
            do {
                try await agent.run()
            } catch {
                linkFailure.set(error)
                events.fire(0)
            }
        }
        // A stable line for scripts and tests, whatever the log format.
        print("trellis-agent: \(configuration.name) (pool \(configuration.pool), \(configuration.slots) slots) connecting to \(configuration.controlPlaneHost):\(configuration.controlPlanePort)")
        fflush(nil)

        let signal = await events.next()
        if let error = linkFailure.error {
            FileHandle.standardError.write(Data("trellis-agent: \(error)\n".utf8))
            // Refused after a reconnect (a rotated token): leave no task
            // running unsupervised.
            agent.runner.beginDraining()
            agent.runner.stopAll(.cancelled(reason: "the control plane refused the agent"))
            _ = await agent.runner.waitUntilIdle(timeout: configuration.killGrace + .seconds(2))
            throw ExitCode.failure
        }
        logger.notice("received \(signal == SIGINT ? "SIGINT" : "SIGTERM"); draining")
        await agent.drain()
        link.cancel()
        await link.value
        print("trellis-agent: drained")
        fflush(nil)
    }
}

/// Why the link stopped for good, if it did.
final class LinkFailure: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var stored: (any Error)?

    func set(_ error: any Error) { lock.withLock { stored = error } }
    var error: (any Error)? { lock.withLock { stored } }
}
