public import Logging
public import TrellisProto
public import TrellisWire
import NIOCore
import Synchronization

/// The agent's one connection to the control plane, kept up for the
/// agent's whole life: connect (handshake role agent, the join token),
/// `Register` (who it is, what it runs, which ends it still owes), then
/// heartbeats at a third of the TTL and `ReportEvents` whenever the outbox
/// holds something, while serving `AgentWorker` on the same connection.
/// When the connection drops it reconnects with backoff and registers
/// again; tasks keep running meanwhile and their events wait in the outbox.
///
/// The sender wakes when an event is queued (no polling), sends everything
/// queued in one call with the current load, and acknowledges the events
/// only when the call succeeded.
public final class AgentLink: Sendable {
    /// Who the agent is and where it connects.
    public struct Settings: Sendable {
        /// Host, port, join token (`credentials`), agent name, backoff.
        public var client: WireClientConfiguration
        /// Sent in every Register.
        public var info: Trellis_V1_AgentInfo
        /// The deadline of each control call.
        public var callTimeout: Duration = .seconds(30)
        /// Used when neither Register nor Welcome sent a heartbeat TTL.
        public var defaultHeartbeatTTL: Duration = .seconds(30)

        public init(client: WireClientConfiguration, info: Trellis_V1_AgentInfo) {
            self.client = client
            self.info = info
        }
    }

    public static let register = "/trellis.v1.AgentControl/Register"
    public static let heartbeat = "/trellis.v1.AgentControl/Heartbeat"
    public static let reportEvents = "/trellis.v1.AgentControl/ReportEvents"
    public static let drain = "/trellis.v1.AgentControl/Drain"

    public let settings: Settings
    private let runner: TaskRunner
    private let services: WireServices
    private let logger: Logger
    private let current = Mutex<WireConnection?>(nil)
    private let registrations = Mutex(0)

    public init(settings: Settings, runner: TaskRunner, logger: Logger) {
        var settings = settings
        settings.client.role = .agent
        self.settings = settings
        self.runner = runner
        self.services = AgentWorkerService.services(runner: runner)
        self.logger = logger
    }

    /// Whether the agent is registered on a live connection now.
    public var isConnected: Bool { current.withLock { $0 != nil } }

    /// Successful registrations so far (the first connection and every
    /// reconnect).
    public var registrationCount: Int { registrations.withLock { $0 } }

    /// Keeps the link up until the calling task is cancelled. Throws when
    /// the control plane refuses the handshake (a wrong join token, an
    /// incompatible version): retrying would not help.
    public func run() async throws {
        var attempt = 0
        let endpoint = "\(settings.client.host):\(settings.client.port)"
        while !Task.isCancelled {
            let connection: WireConnection
            do {
                connection = try await WireClient.connect(configuration: settings.client, services: services) { [self] in
                    // The server is going away: reconnect (to it or a peer).
                    current.withLock { $0 }?.channel.close(promise: nil)
                }
            } catch let error as WireError where [.unauthenticated, .permissionDenied, .failedPrecondition, .invalidArgument].contains(error.code) {
                logger.critical("the control plane refused the agent", metadata: ["endpoint": "\(endpoint)", "reason": "\(error.message)"])
                throw error
            } catch {
                logger.warning(
                    "cannot reach the control plane", metadata: ["endpoint": "\(endpoint)", "reason": "\(error)", "attempt": "\(attempt + 1)"])
                guard (try? await Task.sleep(for: settings.client.backoff.delay(attempt: attempt))) != nil else { break }
                attempt += 1
                continue
            }
            attempt = 0
            do {
                try await session(connection)
            } catch is CancellationError {
            } catch {
                if !Task.isCancelled {
                    logger.warning("lost the control plane", metadata: ["endpoint": "\(endpoint)", "reason": "\(error)"])
                }
            }
            current.withLock { $0 = nil }
            await connection.close()
            if Task.isCancelled { break }
            guard (try? await Task.sleep(for: settings.client.backoff.delay(attempt: 0))) != nil else { break }
        }
    }

    /// Tells the control plane the agent takes no more work, if it is
    /// connected; best effort (the load sent with every call says so too).
    public func drain(grace: Duration) async {
        guard let connection = current.withLock({ $0 }) else { return }
        var request = Trellis_V1_DrainAgentRequest()
        request.grace.millis = Int64(grace.components.seconds * 1000 + grace.components.attoseconds / 1_000_000_000_000_000)
        do {
            _ = try await connection.unary(Self.drain, request, as: Trellis_V1_DrainAgentResponse.self, timeout: .seconds(5))
        } catch {
            logger.warning("could not tell the control plane about the drain", metadata: ["reason": "\(error)"])
        }
    }

    /// One connection: register, then heartbeat and report until it closes.
    private func session(_ connection: WireConnection) async throws {
        let (load, ended) = runner.registration()
        var request = Trellis_V1_RegisterAgentRequest()
        request.agent = settings.info
        request.load = load
        request.endedUnreported = ended
        let response = try await connection.unary(
            Self.register, request, as: Trellis_V1_RegisterAgentResponse.self, timeout: settings.callTimeout)
        let ttl = heartbeatTTL(response: response, welcome: connection.welcome)
        current.withLock { $0 = connection }
        registrations.withLock { $0 += 1 }
        logger.info(
            "registered with the control plane",
            metadata: [
                "endpoint": "\(settings.client.host):\(settings.client.port)", "running": "\(load.running.count)",
                "ended_unreported": "\(ended.count)", "heartbeat_ttl": "\(ttl.formatted(.units(allowed: [.seconds, .milliseconds], width: .narrow)))",
            ])

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                let channel = connection.channel
                try await withTaskCancellationHandler {
                    try await channel.closeFuture.get()
                } onCancel: {
                    channel.close(promise: nil)
                }
            }
            group.addTask { try await self.heartbeats(connection, every: ttl / 3) }
            // On the connection's event loop: one thread hop less per report.
            group.addTask(executorPreference: connection.taskExecutor) { try await self.reports(connection) }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    private func heartbeats(_ connection: WireConnection, every interval: Duration) async throws {
        while true {
            try await Task.sleep(for: interval)
            var request = Trellis_V1_AgentHeartbeatRequest()
            request.load = runner.load()
            _ = try await connection.unary(Self.heartbeat, request, as: Trellis_V1_AgentHeartbeatResponse.self, timeout: settings.callTimeout)
        }
    }

    /// Sends everything the outbox holds, whenever it holds something.
    private func reports(_ connection: WireConnection) async throws {
        let outbox = runner.outbox
        while true {
            await outbox.waitForEvents()
            try Task.checkCancellation()
            guard let batch = outbox.nextBatch() else { continue }
            var request = Trellis_V1_ReportEventsRequest()
            request.events = batch.events
            request.load = runner.load()
            do {
                _ = try await connection.unary(Self.reportEvents, request, as: Trellis_V1_ReportEventsResponse.self, timeout: settings.callTimeout)
            } catch {
                outbox.sendFailed()
                throw error
            }
            outbox.acknowledge(through: batch.through)
        }
    }

    private func heartbeatTTL(response: Trellis_V1_RegisterAgentResponse, welcome: Trellis_V1_Welcome?) -> Duration {
        if response.hasHeartbeatTtl, response.heartbeatTtl.millis > 0 { return .milliseconds(response.heartbeatTtl.millis) }
        if let welcome, welcome.hasHeartbeatTtl, welcome.heartbeatTtl.millis > 0 { return .milliseconds(welcome.heartbeatTtl.millis) }
        return settings.defaultHeartbeatTTL
    }
}
