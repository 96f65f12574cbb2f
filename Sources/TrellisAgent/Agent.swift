public import Foundation
public import Logging
import TrellisProto
public import TrellisWire

/// One trellis-agent: the composition root that builds the outbox, the
/// task runner and the link from the agent's settings, runs the link, and
/// drains on request (SIGTERM): refuse new work, tell the control plane,
/// let running tasks finish within the drain grace, cancel the rest, and
/// flush the outbox before returning.
public final class Agent: Sendable {
    /// Everything an agent is told at start (the command line and
    /// environment of trellis-agent).
    public struct Configuration: Sendable {
        public var controlPlaneHost: String
        public var controlPlanePort: Int
        /// The join token.
        public var token: String
        /// Unique in the deployment: the node name for a DaemonSet, the pod
        /// name for a scaled worker.
        public var name: String
        /// The Kubernetes node, when known.
        public var node: String
        public var pool: String = "default"
        public var labels: [String: String] = [:]
        public var slots: Int = 4
        /// Between SIGTERM and SIGKILL when a task is stopped.
        public var killGrace: Duration = .seconds(10)
        /// How long running tasks may finish after SIGTERM to the agent.
        public var drainGrace: Duration = .seconds(300)
        /// Holds the attempts' scratch directories.
        public var workDirectory: String
        /// The cap on one attempt's unacknowledged log bytes.
        public var logBytesPerAttempt: Int = 1 << 20
        /// How long a drain waits for the last events to be acknowledged.
        public var flushTimeout: Duration = .seconds(10)
        /// Delays between reconnection attempts.
        public var backoff = Backoff()
        public var version: String = TrellisVersion.current

        public init(controlPlaneHost: String, controlPlanePort: Int, token: String, name: String, node: String, workDirectory: String) {
            self.controlPlaneHost = controlPlaneHost
            self.controlPlanePort = controlPlanePort
            self.token = token
            self.name = name
            self.node = node
            self.workDirectory = workDirectory
        }
    }

    public let configuration: Configuration
    public let outbox: Outbox
    public let runner: TaskRunner
    public let link: AgentLink
    private let logger: Logger

    public init(configuration: Configuration, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.configuration = configuration
        self.logger = logger
        outbox = Outbox(logBytesPerAttempt: configuration.logBytesPerAttempt)
        runner = TaskRunner(
            settings: .init(
                agentName: configuration.name, node: configuration.node, slots: configuration.slots, killGrace: configuration.killGrace,
                workDirectory: configuration.workDirectory, environment: environment),
            outbox: outbox)
        var client = WireClientConfiguration(
            host: configuration.controlPlaneHost, port: configuration.controlPlanePort, role: .agent, credentials: configuration.token,
            name: configuration.name)
        client.version = configuration.version
        client.backoff = configuration.backoff
        var info = Trellis_V1_AgentInfo()
        info.name = configuration.name
        info.pool = configuration.pool
        info.labels = configuration.labels
        info.slots = Int32(configuration.slots)
        info.version = configuration.version
        info.node = configuration.node
        link = AgentLink(settings: .init(client: client, info: info), runner: runner, logger: logger)
    }

    /// Runs the link until the calling task is cancelled; throws when the
    /// control plane refuses the agent.
    public func run() async throws {
        try FileManager.default.createDirectory(atPath: configuration.workDirectory, withIntermediateDirectories: true)
        try await link.run()
    }

    /// Drains: no new tasks, Drain to the control plane, running tasks get
    /// the drain grace, then the rest are cancelled (CANCELLED, reason
    /// `Drained`); returns once the outbox is flushed or `flushTimeout`
    /// passed. Whether every event reached the control plane.
    @discardableResult
    public func drain() async -> Bool {
        runner.beginDraining()
        let running = runner.runningCount
        logger.notice("draining", metadata: ["running": "\(running)", "grace": "\(configuration.drainGrace.formatted(.units(allowed: [.minutes, .seconds, .milliseconds], width: .narrow)))"])
        await link.drain(grace: configuration.drainGrace)
        if !(await runner.waitUntilIdle(timeout: configuration.drainGrace)) {
            logger.warning("drain grace over: cancelling the remaining tasks", metadata: ["running": "\(runner.runningCount)"])
            runner.stopAll(.drained(grace: configuration.drainGrace))
            _ = await runner.waitUntilIdle(timeout: configuration.killGrace + .seconds(5))
        }
        let flushed = await outbox.waitUntilEmpty(timeout: configuration.flushTimeout)
        if flushed {
            logger.notice("drained: every event reported")
        } else {
            logger.warning("drained, but events could not be reported in time", metadata: ["unreported": "\(outbox.count)"])
        }
        return flushed
    }
}

