import Foundation
import Logging
import SwiftProtobuf
import Testing
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisTestSupport
import TrellisWire

@testable import TrellisControlPlane

/// The agent registry served for real: a `WireServer` with AgentControl on
/// 127.0.0.1, a fresh database, and the test playing agents with
/// `WireClient` connections of role agent that serve AgentWorker.
@Suite struct AgentRegistryTests {
    struct Fixture {
        let store: StateStore
        let registry: AgentRegistry
        let server: WireServer
        let events: Shared<[ExecutorEventRecord]>
        let updates: Shared<[Trellis_V1_AgentsUpdate]>

        /// Connects as agent `name`; `worker` answers the control plane's calls.
        func agent(_ name: String, worker: WireServices = WireServices(), token: String = "join-secret") async throws -> WireConnection {
            var configuration = WireClientConfiguration(host: "127.0.0.1", port: server.port!, role: .agent, credentials: token, name: name)
            configuration.connectTimeout = .seconds(10)
            return try await WireClient.connect(configuration: configuration, services: worker)
        }

        var lastUpdate: Trellis_V1_AgentsUpdate? { updates.withLock { $0.last } }
    }

    static func with(_ body: (Fixture) async throws -> Void) async throws {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 4)
            let store = StateStore(pool: pool)
            let events = Shared<[ExecutorEventRecord]>([])
            let updates = Shared<[Trellis_V1_AgentsUpdate]>([])
            let registry = AgentRegistry(
                store: store, heartbeatTTL: .seconds(30), logger: Logger(label: "test"),
                events: { records in
                    events.withLock { $0 += records }
                    return true
                },
                changed: { update in updates.withLock { $0.append(update) } })
            let authenticator = TokenAuthenticator(store: store, agentToken: "join-secret", refreshInterval: .seconds(3_600))
            try await authenticator.refresh()
            var services = WireServices()
            registry.register(into: &services)
            let server = WireServer(configuration: WireServerConfiguration(host: "127.0.0.1", port: 0), services: services,
                                    authenticator: authenticator) { registry.connected($0) }
            try await server.start()
            let fixture = Fixture(store: store, registry: registry, server: server, events: events, updates: updates)
            do {
                try await body(fixture)
            } catch {
                await server.shutdown(grace: .seconds(2))
                await pool.close()
                throw error
            }
            await server.shutdown(grace: .seconds(2))
            await pool.close()
        }
    }

    static func registration(_ name: String, slots: Int32 = 4, pool: String = "default", labels: [String: String] = [:]) -> Trellis_V1_RegisterAgentRequest {
        var request = Trellis_V1_RegisterAgentRequest()
        request.agent.name = name
        request.agent.pool = pool
        request.agent.slots = slots
        request.agent.labels = labels
        request.agent.version = "test"
        request.agent.node = "node-of-\(name)"
        request.load.freeSlots = slots
        return request
    }

    static func call<Response: SwiftProtobuf.Message>(
        _ connection: WireConnection, _ method: String, _ request: some SwiftProtobuf.Message, as: Response.Type = Response.self
    ) async throws -> Response {
        try await connection.unary("/trellis.v1.AgentControl/\(method)", request, as: Response.self, timeout: .seconds(20))
    }

    @Test func registerHeartbeatReportDrainAndLeave() async throws {
        try await Self.with { fixture in
            let agent = try await fixture.agent("node-1")
            let response: Trellis_V1_RegisterAgentResponse = try await Self.call(
                agent, "Register", Self.registration("node-1", slots: 3, labels: ["gpu": "a100", "zone": "b"]))
            #expect(response.heartbeatTtl.millis == 30_000)

            let stored = try #require(try await fixture.store.agents().first)
            #expect(stored.name == "node-1" && stored.pool == "default" && stored.slots == 3 && stored.node == "node-of-node-1")
            #expect(stored.labels.contains(#""gpu": "a100""#) || stored.labels.contains(#""gpu":"a100""#))
            #expect(fixture.lastUpdate?.agents.map(\.name) == ["node-1"])
            #expect(fixture.lastUpdate?.agents.first?.freeSlots == 3)

            // A heartbeat with a new load tells the executors.
            var heartbeat = Trellis_V1_AgentHeartbeatRequest()
            heartbeat.load.freeSlots = 2
            heartbeat.load.running = [Trellis_V1_AgentAttempt.with { $0.attempt.attemptID = "5.9"; $0.executor = "persistent-pool" }]
            let _: Trellis_V1_AgentHeartbeatResponse = try await Self.call(agent, "Heartbeat", heartbeat)
            #expect(fixture.lastUpdate?.agents.first?.runningAttemptIds == ["5.9"])
            #expect(fixture.lastUpdate?.agents.first?.freeSlots == 2)

            // Events go to the scheduler with the agent named.
            var report = Trellis_V1_ReportEventsRequest()
            report.events = [Trellis_V1_AgentEvent.with {
                $0.executor = "persistent-pool"
                $0.event.attempt.attemptID = "5.9"
                $0.event.attempt.fencingToken = 12
                $0.event.started.externalID = "node-1"
            }]
            report.load.freeSlots = 3
            let _: Trellis_V1_ReportEventsResponse = try await Self.call(agent, "ReportEvents", report)
            let events = fixture.events.withLock { $0 }
            #expect(events.map(\.agent) == ["node-1"])
            #expect(events.map(\.executor) == ["persistent-pool"])
            #expect(fixture.lastUpdate?.agents.first?.freeSlots == 3)

            let _: Trellis_V1_DrainAgentResponse = try await Self.call(agent, "Drain", Trellis_V1_DrainAgentRequest())
            #expect(fixture.lastUpdate?.agents.first?.draining == true)
            #expect(try await fixture.store.agents().first?.isDraining == true)

            // Gone from the executors' list as soon as its connection closes.
            await agent.close()
            try await eventually("the agent leaves the list", timeout: .seconds(20)) { fixture.lastUpdate?.agents.isEmpty == true }
            #expect(fixture.registry.registered.isEmpty)
        }
    }

    @Test func badCallsAreRefusedAndChangeNothing() async throws {
        try await Self.with { fixture in
            let agent = try await fixture.agent("node-2")
            // Heartbeat before Register.
            await #expect {
                let _: Trellis_V1_AgentHeartbeatResponse = try await Self.call(agent, "Heartbeat", Trellis_V1_AgentHeartbeatRequest())
            } throws: { ($0 as? WireError)?.code == .failedPrecondition && "\($0)".contains("call Register first") }

            // Every problem of a bad registration at once.
            var bad = Self.registration("someone-else", slots: 0, pool: "")
            bad.agent.labels = ["bad key": "x"]
            await #expect {
                let _: Trellis_V1_RegisterAgentResponse = try await Self.call(agent, "Register", bad)
            } throws: { error in
                let text = "\(error)"
                return (error as? WireError)?.code == .invalidArgument
                    && text.contains("differs from the name 'node-2'") && text.contains("at least 1 slot")
                    && text.contains("agent.pool is empty") && text.contains("label key 'bad key'")
            }
            #expect(try await fixture.store.agents().isEmpty)
            #expect(fixture.updates.withLock { $0.isEmpty })
            await agent.close()
        }
    }

    @Test func callsReachTheAgentAndAnAcceptedStartIsRecordedOnTheAttempt() async throws {
        try await Self.with { fixture in
            let dag = try DagFile.parse("dag_id: calls\ntasks:\n  - {task_id: t, command: [\"true\"]}\n", file: "calls.yaml")
            try await fixture.store.submitDag(dag)
            let (run, _) = try await fixture.store.createRun(dagID: "calls", logicalDate: Date(timeIntervalSince1970: 1_767_225_600))
            try await fixture.store.startQueuedRuns()
            let instance = try #require(try await fixture.store.taskInstances(runID: run.id).first)
            _ = try await fixture.store.transition(TransitionRequest(taskInstanceID: instance.id, event: .schedule, expected: .none))
            let claim = try #require(try await fixture.store.claimReady(limit: 1).first)
            let attemptID = AttemptIdentity(taskInstanceID: claim.taskInstanceID, attemptID: claim.attemptID).text

            let received = Shared<[String]>([])
            var worker = WireServices()
            worker.unary("/trellis.v1.AgentWorker/StartTask", Trellis_V1_StartTaskRequest.self) { request, _ in
                received.withLock { $0.append(request.assignment.attempt.attemptID) }
                return Trellis_V1_StartTaskResponse()
            }
            let agent = try await fixture.agent("node-3", worker: worker)
            let _: Trellis_V1_RegisterAgentResponse = try await Self.call(agent, "Register", Self.registration("node-3"))

            var start = Trellis_V1_StartTaskRequest()
            start.assignment.attempt.attemptID = attemptID
            start.assignment.attempt.fencingToken = claim.fencingToken
            start.executor = "persistent-pool"
            let result = await fixture.registry.call(AgentCallRequest(
                agent: "node-3", method: "/trellis.v1.AgentWorker/StartTask", payload: try start.serializedBytes()))
            #expect(result.status == 0, "\(result.message)")
            #expect(received.withLock { $0 } == [attemptID])
            // Lost before it reports the start, the attempt would be found.
            #expect(try await fixture.store.attemptsInFlight(agentName: "node-3").map(\.id) == [claim.attemptID])

            let missing = await fixture.registry.call(AgentCallRequest(agent: "nobody", method: "/trellis.v1.AgentWorker/StartTask", payload: []))
            #expect(missing.status == Int32(Trellis_V1_StatusCode.unavailable.rawValue))
            #expect(missing.message == "agent 'nobody' is not connected")
            await agent.close()
        }
    }

    @Test func reRegistrationReconcilesWithTheDatabase() async throws {
        try await Self.with { fixture in
            let dag = try DagFile.parse("""
                dag_id: rec
                tasks:
                  - {task_id: forgotten, command: ["true"]}
                  - {task_id: stale, command: ["true"]}
                  - {task_id: kept, command: ["true"]}
                """, file: "rec.yaml")
            try await fixture.store.submitDag(dag)
            let (run, _) = try await fixture.store.createRun(dagID: "rec", logicalDate: Date(timeIntervalSince1970: 1_767_225_600))
            try await fixture.store.startQueuedRuns()
            for instance in try await fixture.store.taskInstances(runID: run.id) {
                _ = try await fixture.store.transition(TransitionRequest(taskInstanceID: instance.id, event: .schedule, expected: .none))
            }
            var claims: [String: ClaimedTask] = [:]
            for claim in try await fixture.store.claimReady(limit: 3) {
                claims[claim.taskID] = claim
                _ = try await fixture.store.startAttempt(taskInstanceID: claim.taskInstanceID, fencingToken: claim.fencingToken, agentName: "node-4")
            }
            func ref(_ task: String, token: Int64? = nil) -> Trellis_V1_AgentAttempt {
                let claim = claims[task]!
                return Trellis_V1_AgentAttempt.with {
                    $0.attempt.attemptID = AttemptIdentity(taskInstanceID: claim.taskInstanceID, attemptID: claim.attemptID).text
                    $0.attempt.fencingToken = token ?? claim.fencingToken
                    $0.executor = "persistent-pool"
                }
            }

            let cancelled = Shared<[String]>([])
            var worker = WireServices()
            worker.unary("/trellis.v1.AgentWorker/CancelTask", Trellis_V1_CancelTaskRequest.self) { request, _ in
                cancelled.withLock { $0.append(request.attempt.attemptID) }
                return Trellis_V1_CancelTaskResponse.with { $0.wasRunning = true }
            }
            let agent = try await fixture.agent("node-4", worker: worker)
            // It comes back running `kept`, and `stale` under a token the
            // database no longer has; it says nothing of `forgotten`.
            var registration = Self.registration("node-4")
            registration.load.running = [ref("kept"), ref("stale", token: 999_999)]
            let _: Trellis_V1_RegisterAgentResponse = try await Self.call(agent, "Register", registration)

            let lost = fixture.events.withLock { $0 }
            #expect(lost.map(\.event.attempt.attemptID) == [ref("forgotten").attempt.attemptID])
            #expect(lost.first?.event.finished.outcome == .lost)
            #expect(lost.first?.event.finished.reason == "AgentLost")
            try await eventually("the stale attempt is cancelled on the agent", timeout: .seconds(20)) {
                cancelled.withLock { $0 } == [ref("stale").attempt.attemptID]
            }
            await agent.close()
        }
    }

    /// An attempt an agent ran while the control plane was away stays
    /// "placed" on it until its end is reported, so no executor starts it
    /// anywhere again (found by the restart end-to-end test: a held
    /// attempt that had already run was started a second time).
    @Test func attemptsEndedWhileAwayStayPlacedUntilReported() async throws {
        try await Self.with { fixture in
            let agent = try await fixture.agent("node-5")
            var registration = Self.registration("node-5")
            registration.endedUnreported = [Trellis_V1_AgentAttempt.with { $0.attempt.attemptID = "8.8"; $0.executor = "persistent-pool" }]
            let _: Trellis_V1_RegisterAgentResponse = try await Self.call(agent, "Register", registration)
            #expect(fixture.lastUpdate?.agents.first?.runningAttemptIds == ["8.8"])

            // A log chunk of it changes nothing; its end does.
            var report = Trellis_V1_ReportEventsRequest()
            report.events = [Trellis_V1_AgentEvent.with {
                $0.executor = "persistent-pool"
                $0.event.attempt.attemptID = "8.8"
                $0.event.log.data = Data("tail\n".utf8)
            }]
            let _: Trellis_V1_ReportEventsResponse = try await Self.call(agent, "ReportEvents", report)
            #expect(fixture.lastUpdate?.agents.first?.runningAttemptIds == ["8.8"])
            report.events = [Trellis_V1_AgentEvent.with {
                $0.executor = "persistent-pool"
                $0.event.attempt.attemptID = "8.8"
                $0.event.finished.outcome = .succeeded
            }]
            let _: Trellis_V1_ReportEventsResponse = try await Self.call(agent, "ReportEvents", report)
            #expect(fixture.lastUpdate?.agents.first?.runningAttemptIds == [])
            await agent.close()
        }
    }

    @Test func aClientCannotCallAgentMethods() async throws {
        try await Self.with { fixture in
            let token = try await fixture.store.createToken(name: "admin", role: .admin)
            let authenticatorRefresh = TokenAuthenticator(store: fixture.store, agentToken: nil, refreshInterval: .seconds(3_600))
            try await authenticatorRefresh.refresh()
            // The fixture's authenticator read the tokens before this one existed: a fresh server.
            var services = WireServices()
            fixture.registry.register(into: &services)
            let server = WireServer(configuration: WireServerConfiguration(host: "127.0.0.1", port: 0), services: services,
                                    authenticator: authenticatorRefresh)
            try await server.start()
            let client = try await WireClient.connect(configuration: WireClientConfiguration(
                host: "127.0.0.1", port: server.port!, role: .client, credentials: token, name: "cli"))
            await #expect {
                let _: Trellis_V1_RegisterAgentResponse = try await Self.call(client, "Register", Self.registration("cli"))
            } throws: { ($0 as? WireError)?.code == .permissionDenied }
            await client.close()
            await server.shutdown(grace: .seconds(2))
            #expect(try await fixture.store.agents().isEmpty)
        }
    }
}
