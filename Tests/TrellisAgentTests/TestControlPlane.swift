import Foundation
import Logging
import Synchronization
import TrellisAgent
import TrellisProto
import TrellisTestSupport
import TrellisWire

/// A real wire server playing the control plane's side of the agent link:
/// it serves AgentControl, records every call, and calls the agent's
/// AgentWorker over the connection the agent opened. It can be stopped and
/// started again on the same port, keeping what it recorded.
final class TestControlPlane: RecordsAgentEvents, Sendable {
    static let token = "join-token"

    struct Record {
        var registrations: [Trellis_V1_RegisterAgentRequest] = []
        var heartbeats: [Trellis_V1_AgentHeartbeatRequest] = []
        var reports: [Trellis_V1_ReportEventsRequest] = []
        var drains: [Trellis_V1_DrainAgentRequest] = []
    }

    let port: Int
    let heartbeatTTL: Duration
    private let record = Mutex(Record())
    private let server = Mutex<WireServer?>(nil)
    private let agentConnection = Mutex<WireConnection?>(nil)

    private init(port: Int, heartbeatTTL: Duration) {
        self.port = port
        self.heartbeatTTL = heartbeatTTL
    }

    /// A server on a free port below the ephemeral range (so that it can be
    /// restarted on the same port).
    static func start(heartbeatTTL: Duration = .seconds(3)) async throws -> TestControlPlane {
        var lastError: (any Error)?
        for _ in 0..<50 {
            let plane = TestControlPlane(port: Int.random(in: 20_000..<32_768), heartbeatTTL: heartbeatTTL)
            do {
                try await plane.start()
                return plane
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }

    /// (Re)starts listening on `port`.
    func start() async throws {
        var services = WireServices()
        let ttl = heartbeatTTL
        services.unary(AgentLink.register, Trellis_V1_RegisterAgentRequest.self) { [self] request, _ in
            record.withLock { $0.registrations.append(request) }
            var response = Trellis_V1_RegisterAgentResponse()
            response.heartbeatTtl.millis = millis(ttl)
            return response
        }
        services.unary(AgentLink.heartbeat, Trellis_V1_AgentHeartbeatRequest.self) { [self] request, _ in
            record.withLock { $0.heartbeats.append(request) }
            return Trellis_V1_AgentHeartbeatResponse()
        }
        services.unary(AgentLink.reportEvents, Trellis_V1_ReportEventsRequest.self) { [self] request, _ in
            record.withLock { $0.reports.append(request) }
            return Trellis_V1_ReportEventsResponse()
        }
        services.unary(AgentLink.drain, Trellis_V1_DrainAgentRequest.self) { [self] request, _ in
            record.withLock { $0.drains.append(request) }
            return Trellis_V1_DrainAgentResponse()
        }
        var configuration = WireServerConfiguration(host: "127.0.0.1", port: port)
        configuration.heartbeatTTL = .milliseconds(millis(heartbeatTTL))
        let server = WireServer(
            configuration: configuration, services: services,
            authenticator: StaticTokenAuthenticator(agentToken: Self.token),
            onConnection: { [self] connection in agentConnection.withLock { $0 = connection } })
        try await server.start()
        self.server.withLock { $0 = server }
    }

    /// Stops listening and drops the agent's connection.
    func stop() async {
        let server = self.server.withLock { server in
            defer { server = nil }
            return server
        }
        agentConnection.withLock { $0 = nil }
        await server?.shutdown(grace: .milliseconds(200))
    }

    var recorded: Record { record.withLock { $0 } }

    /// Every event reported so far, in order.
    var events: [Trellis_V1_AgentEvent] { recorded.reports.flatMap(\.events) }

    /// Waits until the agent has registered `count` times.
    func registration(_ count: Int, timeout: Duration = .seconds(60)) async throws -> Trellis_V1_RegisterAgentRequest {
        try await eventually("registration \(count)", timeout: timeout) { recorded.registrations.count >= count }
        return recorded.registrations[count - 1]
    }

    /// The agent's connection, once it has one.
    func agent() async throws -> WireConnection {
        var connection: WireConnection?
        try await eventually("the agent connected") {
            connection = agentConnection.withLock { $0 }
            return connection != nil
        }
        return connection!
    }

    func startTask(_ request: Trellis_V1_StartTaskRequest) async throws {
        _ = try await agent().unary(AgentWorkerService.startTask, request, as: Trellis_V1_StartTaskResponse.self, timeout: .seconds(30))
    }

    func cancelTask(_ attemptID: String, reason: String) async throws -> Bool {
        var request = Trellis_V1_CancelTaskRequest()
        request.attempt.attemptID = attemptID
        request.reason = reason
        return try await agent().unary(AgentWorkerService.cancelTask, request, as: Trellis_V1_CancelTaskResponse.self, timeout: .seconds(30))
            .wasRunning
    }
}

/// An agent (the library, in this process) pointed at `plane`.
func makeAgent(
    _ plane: TestControlPlane, token: String = TestControlPlane.token, slots: Int = 2, workDirectory: URL,
    configure: (inout Agent.Configuration) -> Void = { _ in }
) -> Agent {
    var configuration = Agent.Configuration(
        controlPlaneHost: "127.0.0.1", controlPlanePort: plane.port, token: token, name: "agent-a", node: "node-a",
        workDirectory: workDirectory.path)
    configuration.pool = "etl"
    configuration.labels = ["zone": "a", "gpu": "false"]
    configuration.slots = slots
    configuration.killGrace = .milliseconds(300)
    configuration.backoff = Backoff(initial: .milliseconds(50), multiplier: 1.6, maximum: .milliseconds(300), jitter: 0.2)
    configure(&configuration)
    var logger = Logger(label: "test-agent")
    logger.logLevel = .warning
    return Agent(configuration: configuration, logger: logger)
}

func temporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("trellis-agent-link-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

func millis(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}
