public import Foundation
public import Logging
import Synchronization
import SwiftProtobuf
public import TrellisProto
public import TrellisStore
public import TrellisWire

/// The agents connected to this replica.
///
/// It serves `AgentControl` (agent.proto) to connections of role agent:
/// registrations and heartbeats go to the database (where lost agents are
/// found by their heartbeat's age), attempt events go to the scheduler like
/// any executor's, and whenever an agent joins, leaves, reports its load or
/// drains, every agent-dispatching executor gets the new list
/// (`agents_changed`). It also routes the executors' calls to agents
/// (`AgentCalling`) over the connection each agent opened.
///
/// On every (re)registration it reconciles: an attempt the database has on
/// the agent that the agent neither runs nor still has to report ends
/// `lost`; an attempt the agent runs that the database no longer expects
/// there (cancelled, or retried elsewhere while the agent was away) is
/// cancelled on the agent.
public final class AgentRegistry: AgentCalling, Sendable {
    public static let service = "trellis.v1.AgentControl"

    /// An agent's connection, and what it said about itself.
    private struct Connected {
        var connection: WireConnection
        /// Nil until it registered on this connection.
        var info: Trellis_V1_AgentInfo?
        var load = Trellis_V1_AgentLoad()
        /// Attempts it said at registration had ended without being
        /// reported, until their end is reported: placed on this agent, so
        /// an executor must not start them anywhere again.
        var endedUnreported: Set<String> = []
    }

    private let store: StateStore
    private let heartbeatTTL: Duration
    private let events: @Sendable ([ExecutorEventRecord]) async -> Bool
    private let changed: @Sendable (Trellis_V1_AgentsUpdate) -> Void
    private let logger: Logger
    private let now: @Sendable () -> Date
    private let agents = Mutex<[String: Connected]>([:])
    /// Serializes change notifications, so executors never get an older
    /// list after a newer one.
    private let notifying = Mutex(())

    /// - Parameters:
    ///   - events: where attempt events reported by agents go (the
    ///     scheduler's inbox); true once they are recorded in the database.
    ///     An agent's report is acknowledged only then, so a crash in
    ///     between loses nothing: the agent reports the events again.
    ///   - changed: told the whole list of registered agents whenever it
    ///     changes (the executor host's `agentsChanged`).
    public init(
        store: StateStore, heartbeatTTL: Duration, logger: Logger,
        events: @escaping @Sendable ([ExecutorEventRecord]) async -> Bool,
        changed: @escaping @Sendable (Trellis_V1_AgentsUpdate) -> Void,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.store = store
        self.heartbeatTTL = heartbeatTTL
        self.logger = logger
        self.events = events
        self.changed = changed
        self.now = now
    }

    /// The names of the agents registered on this replica now.
    public var registered: [String] {
        agents.withLock { $0.filter { $0.value.info != nil }.keys.sorted() }
    }

    // MARK: Connections

    /// Every connection whose handshake succeeded (`WireServer`'s
    /// `onConnection`); agents are kept by the name they said hello with.
    public func connected(_ connection: WireConnection) {
        guard let peer = connection.peer, peer.role == .agent else { return }
        let replaced = agents.withLock { agents in
            defer { agents[peer.name] = Connected(connection: connection) }
            return agents[peer.name]?.connection
        }
        if let replaced {
            // A reconnect (the old connection is dead or dying) or a second
            // agent claiming the name: the newest connection is the agent.
            logger.notice("agent connected again; closing its previous connection", metadata: ["agent": "\(peer.name)"])
            Task { await replaced.close() }
        }
        connection.channel.closeFuture.whenComplete { [self] _ in
            let gone = agents.withLock { agents -> Bool in
                guard let current = agents[peer.name], current.connection === connection else { return false }
                agents[peer.name] = nil
                return current.info != nil
            }
            if gone {
                logger.notice("agent disconnected", metadata: ["agent": "\(peer.name)"])
                notifyChanged()
            }
        }
    }

    // MARK: AgentControl

    /// Registers the AgentControl methods into the wire server's services.
    public func register(into services: inout WireServices) {
        services.unary("/\(Self.service)/Register", Trellis_V1_RegisterAgentRequest.self) { [self] request, context in
            try await register(request, from: try Self.agentName(context))
        }
        services.unary("/\(Self.service)/Heartbeat", Trellis_V1_AgentHeartbeatRequest.self) { [self] request, context in
            let name = try Self.agentName(context)
            try update(name, load: request.load)
            try await store.agentSeen(name: name, draining: request.load.draining, now: now())
            return Trellis_V1_AgentHeartbeatResponse()
        }
        services.unary("/\(Self.service)/ReportEvents", Trellis_V1_ReportEventsRequest.self) { [self] request, context in
            let name = try Self.agentName(context)
            let records = request.events.filter(\.hasEvent).map {
                ExecutorEventRecord(executor: $0.executor, event: $0.event, agent: name)
            }
            guard await events(records) else {
                throw WireError(.unavailable, "the events could not be recorded now; report them again")
            }
            let reportedEnds = Set(records.filter { if case .finished? = $0.event.event { true } else { false } }
                .map(\.event.attempt.attemptID))
            try update(name, load: request.hasLoad ? request.load : nil, reportedEnds: reportedEnds)
            return Trellis_V1_ReportEventsResponse()
        }
        services.unary("/\(Self.service)/Drain", Trellis_V1_DrainAgentRequest.self) { [self] request, context in
            let name = try Self.agentName(context)
            var load = try agents.withLock { agents throws(WireError) in try Self.registeredAgent(agents, name).load }
            load.draining = true
            try update(name, load: load)
            try await store.agentSeen(name: name, draining: true, now: now())
            logger.notice("agent draining: no more work goes to it", metadata: [
                "agent": "\(name)", "running": "\(load.running.count)", "grace_ms": "\(request.grace.millis)",
            ])
            return Trellis_V1_DrainAgentResponse()
        }
    }

    private static func agentName(_ context: WireCallContext) throws(WireError) -> String {
        guard let peer = context.peer, peer.role == .agent else {
            throw WireError(.permissionDenied, "\(context.method) is for agents; this connection is not an agent's")
        }
        return peer.name
    }

    private static func registeredAgent(_ agents: [String: Connected], _ name: String) throws(WireError) -> Connected {
        guard let agent = agents[name], agent.info != nil else {
            throw WireError(.failedPrecondition, "agent '\(name)' has not registered on this connection: call Register first")
        }
        return agent
    }

    private func register(_ request: Trellis_V1_RegisterAgentRequest, from name: String) async throws -> Trellis_V1_RegisterAgentResponse {
        let info = request.agent
        var problems: [String] = []
        if info.name != name { problems.append("agent.name '\(info.name)' differs from the name '\(name)' the connection said hello with") }
        if info.slots < 1 { problems.append("agent.slots is \(info.slots); an agent needs at least 1 slot") }
        if info.pool.isEmpty { problems.append("agent.pool is empty") }
        for key in info.labels.keys.sorted() where key.isEmpty || key.contains(where: { $0 == "," || $0 == "=" || $0.isWhitespace }) {
            problems.append("label key '\(key)' is empty or contains ',', '=' or whitespace")
        }
        guard problems.isEmpty else { throw WireError(.invalidArgument, "cannot register agent '\(name)': " + problems.joined(separator: "; ")) }

        let labels = String(decoding: (try? JSONSerialization.data(withJSONObject: info.labels, options: [.sortedKeys])) ?? Data("{}".utf8), as: UTF8.self)
        try await store.registerAgent(
            name: name, pool: info.pool, labels: labels, slots: Int(info.slots), version: info.version, node: info.node, now: now())
        if request.load.draining { try await store.agentSeen(name: name, draining: true, now: now()) }
        try await reconcile(name, running: request.load.running, endedUnreported: request.endedUnreported)
        let known = agents.withLock { agents -> Bool in
            guard agents[name] != nil else { return false }
            agents[name]?.info = info
            agents[name]?.load = request.load
            agents[name]?.endedUnreported = Set(request.endedUnreported.map(\.attempt.attemptID))
            return true
        }
        guard known else { throw WireError(.unavailable, "agent '\(name)' disconnected while registering") }
        logger.notice("agent registered", metadata: [
            "agent": "\(name)", "pool": "\(info.pool)", "slots": "\(info.slots)", "labels": "\(labels)",
            "running": "\(request.load.running.count)", "version": "\(info.version)",
        ])
        notifyChanged()
        var response = Trellis_V1_RegisterAgentResponse()
        response.heartbeatTtl.millis = heartbeatTTL.milliseconds
        return response
    }

    /// Lines the database up with what a (re)registering agent says.
    private func reconcile(_ name: String, running: [Trellis_V1_AgentAttempt], endedUnreported: [Trellis_V1_AgentAttempt]) async throws {
        let reported = Set((running + endedUnreported).map(\.attempt.attemptID))
        var lost: [ExecutorEventRecord] = []
        for attempt in try await store.attemptsInFlight(agentName: name) {
            let id = AttemptIdentity(taskInstanceID: attempt.taskInstanceID, attemptID: attempt.id)
            guard !reported.contains(id.text) else { continue }
            var event = Trellis_V1_ExecutorEvent()
            event.attempt.attemptID = id.text
            event.attempt.fencingToken = attempt.fencingToken
            event.finished.outcome = .lost
            event.finished.reason = "AgentLost"
            event.finished.message = "agent '\(name)' came back without this attempt (it restarted or never started it)"
            lost.append(ExecutorEventRecord(executor: attempt.executor, event: event, agent: name))
        }
        if !lost.isEmpty {
            logger.warning("agent re-registered without attempts the database had on it; they end lost",
                           metadata: ["agent": "\(name)", "attempts": "\(lost.map(\.event.attempt.attemptID))"])
            guard await events(lost) else {
                throw WireError(.unavailable, "could not record the attempts agent '\(name)' came back without; register again")
            }
        }

        // Attempts it runs that are no longer wanted: the instance moved on
        // to another attempt (or none) while the agent was away.
        let identities = running.compactMap { running in AttemptIdentity(running.attempt.attemptID).map { (running, $0) } }
        guard !identities.isEmpty else { return }
        let current = Dictionary(
            uniqueKeysWithValues: try await store.taskInstances(ids: identities.map(\.1.taskInstanceID)).map { ($0.id, $0.fencingToken) })
        for (attempt, identity) in identities where current[identity.taskInstanceID] ?? nil != attempt.attempt.fencingToken {
            var cancel = Trellis_V1_CancelTaskRequest()
            cancel.attempt = attempt.attempt
            cancel.reason = "the control plane no longer expects this attempt (it was cancelled, cleared or retried while the agent was away)"
            logger.notice("cancelling a stale attempt on a re-registered agent", metadata: ["agent": "\(name)", "attempt": "\(identity.text)"])
            let payload = (try? cancel.serializedBytes()) ?? []
            Task { _ = await call(AgentCallRequest(agent: name, method: "/trellis.v1.AgentWorker/CancelTask", payload: payload)) }
        }
    }

    /// Records an agent's new load; tells the executors when it changed.
    private func update(_ name: String, load: Trellis_V1_AgentLoad?, reportedEnds: Set<String> = []) throws(WireError) {
        let changed = try agents.withLock { agents throws(WireError) -> Bool in
            let agent = try Self.registeredAgent(agents, name)
            var changed = false
            if !reportedEnds.isDisjoint(with: agent.endedUnreported) {
                agents[name]?.endedUnreported.subtract(reportedEnds)
                changed = true
            }
            if let load, load != agent.load {
                agents[name]?.load = load
                changed = true
            }
            return changed
        }
        if changed { notifyChanged() }
    }

    /// The registered agents as executors see them.
    public func snapshot() -> Trellis_V1_AgentsUpdate {
        var update = Trellis_V1_AgentsUpdate()
        update.agents = agents.withLock { agents in
            agents.values.compactMap { agent -> Trellis_V1_AgentState? in
                guard let info = agent.info else { return nil }
                var state = Trellis_V1_AgentState()
                state.name = info.name
                state.pool = info.pool
                state.labels = info.labels
                state.slots = info.slots
                state.freeSlots = agent.load.freeSlots
                state.draining = agent.load.draining
                // Ended but not yet reported counts as placed here too.
                state.runningAttemptIds = agent.load.running.map(\.attempt.attemptID) + agent.endedUnreported.sorted()
                return state
            }
        }.sorted { $0.name < $1.name }
        return update
    }

    private func notifyChanged() {
        notifying.withLock { _ in changed(snapshot()) }
    }

    // MARK: AgentCalling

    /// Calls `request.method` on the agent over its connection. An accepted
    /// StartTask is recorded on the attempt at once, so the attempt is found
    /// if the agent is lost before it reports the start.
    public func call(_ request: AgentCallRequest) async -> AgentCallResult {
        guard let connection = agents.withLock({ $0[request.agent]?.connection }) else {
            return AgentCallResult(status: Int32(WireError.Code.unavailable.status.rawValue), message: "agent '\(request.agent)' is not connected")
        }
        let reply: Data
        do {
            reply = try await connection.unary(request.method, Data(request.payload), timeout: .seconds(30))
        } catch let error as WireError {
            return AgentCallResult(status: Int32(error.code.status.rawValue), message: error.message)
        } catch {
            return AgentCallResult(status: Int32(WireError.Code.unavailable.status.rawValue), message: "\(error)")
        }
        if request.method.hasSuffix("/StartTask"),
           let start = try? Trellis_V1_StartTaskRequest(serializedBytes: request.payload),
           let identity = AttemptIdentity(start.assignment.attempt.attemptID) {
            do {
                try await store.assignAgent(attemptID: identity.attemptID, agentName: request.agent)
            } catch {
                logger.warning("could not record the agent of an accepted attempt", metadata: [
                    "agent": "\(request.agent)", "attempt": "\(identity.text)", "error": "\(error)",
                ])
            }
        }
        return AgentCallResult(status: 0, payload: Array(reply))
    }
}
