public import Foundation
import SwiftProtobuf
public import TrellisProto
public import TrellisStore
public import TrellisWire

/// What `ServerStatus` reports about the replica answering, supplied by the
/// composition root (it knows leadership, connections and the schema).
public struct ServerStatusInfo: Sendable, Hashable {
    public var serverVersion: String
    public var startedAt: Date
    public var connectedAgents: Int
    public var connectedClients: Int
    /// This replica holds the leader lock and schedules.
    public var leader: Bool
    public var schemaVersion: Int
    /// The replica's name (host name unless configured).
    public var replica: String

    public init(
        serverVersion: String, startedAt: Date, connectedAgents: Int = 0, connectedClients: Int = 0,
        leader: Bool = false, schemaVersion: Int = 0, replica: String = ""
    ) {
        self.serverVersion = serverVersion
        self.startedAt = startedAt
        self.connectedAgents = connectedAgents
        self.connectedClients = connectedClients
        self.leader = leader
        self.schemaVersion = schemaVersion
        self.replica = replica
    }
}

/// The client API of trellisd: a handler for every method of
/// `service TrellisAPI` (proto/trellis/v1/api.proto), registered into the
/// wire server's `WireServices` under `/trellis.v1.TrellisAPI/<Method>`.
///
/// Every handler first checks the caller's role (`APIAuthorization`), then
/// works on the store alone, so any replica answers, leader or not. Actions
/// that change a run call `runChanged` (the composition root turns it into
/// a NOTIFY that wakes the leader's scheduler) and end attempts in flight
/// through `cancelAttempt`. `WatchRun` and `GetTaskLog` poll the database
/// every `Settings.pollInterval`.
///
/// ```swift
/// var services = WireServices()
/// TrellisAPIService(store: store, executors: host, statusProvider: { status() },
///                   tokens: authenticator, runChanged: { notify($0) }).register(into: &services)
/// let server = WireServer(configuration: …, services: services, authenticator: authenticator)
/// ```
public struct TrellisAPIService: Sendable {
    /// Knobs of the API.
    public struct Settings: Sendable {
        /// The executor of tasks that name none; DAG files are validated with
        /// it, as `trellis dags validate --default-executor` does.
        public var defaultExecutor: String?
        /// How often `WatchRun` and a followed `GetTaskLog` look for news.
        public var pollInterval: Duration
        /// `ListRuns` answers at most this many runs.
        public var maximumRunsListed: Int

        public init(defaultExecutor: String? = nil, pollInterval: Duration = .milliseconds(250), maximumRunsListed: Int = 1_000) {
            self.defaultExecutor = defaultExecutor
            self.pollInterval = pollInterval
            self.maximumRunsListed = maximumRunsListed
        }
    }

    let store: StateStore
    let executors: ExecutorHost
    let executorLoadProblems: [String]
    let settings: Settings
    let tokens: TokenAuthenticator?
    let statusProvider: @Sendable () async -> ServerStatusInfo
    let runChanged: @Sendable (Int64) async -> Void
    let dagUnpaused: @Sendable (String) async -> Void
    let poolChanged: @Sendable (String) async -> Void
    let cancelAttempt: @Sendable (_ executor: String, _ request: Trellis_V1_CancelRequest) -> Void

    /// - Parameters:
    ///   - store: the state everything is read from and written to.
    ///   - executors: the loaded executors `ListExecutors` lists.
    ///   - executorLoadProblems: plugin files that failed to load, with the
    ///     reason (`ExecutorHost.LoadReport.problems`' descriptions).
    ///   - tokens: the DB-backed authenticator; refreshed at once after
    ///     `CreateToken` and `RevokeToken` so a revoked token stops working.
    ///   - statusProvider: what `ServerStatus` reports about this replica.
    ///   - runChanged: called with a run's database id after TriggerRun,
    ///     ClearTasks, MarkTask and CancelRun, to wake the scheduler.
    ///   - dagUnpaused: called with a DAG id when SetDagPaused unpaused it.
    ///   - poolChanged: called with a pool's name after SetPool created or
    ///     resized it, to wake the scheduler for the tasks waiting on it.
    ///   - cancelAttempt: asks an executor to stop an attempt the API ended
    ///     (executor name, request); nil uses `executors.cancel`.
    public init(
        store: StateStore,
        executors: ExecutorHost,
        executorLoadProblems: [String] = [],
        settings: Settings = Settings(),
        tokens: TokenAuthenticator? = nil,
        statusProvider: @escaping @Sendable () async -> ServerStatusInfo,
        runChanged: @escaping @Sendable (Int64) async -> Void = { _ in },
        dagUnpaused: @escaping @Sendable (String) async -> Void = { _ in },
        poolChanged: @escaping @Sendable (String) async -> Void = { _ in },
        cancelAttempt: (@Sendable (_ executor: String, _ request: Trellis_V1_CancelRequest) -> Void)? = nil
    ) {
        self.store = store
        self.executors = executors
        self.executorLoadProblems = executorLoadProblems
        self.settings = settings
        self.tokens = tokens
        self.statusProvider = statusProvider
        self.runChanged = runChanged
        self.dagUnpaused = dagUnpaused
        self.poolChanged = poolChanged
        self.cancelAttempt = cancelAttempt ?? { [executors] executor, request in
            // An executor that is gone has nothing left to stop.
            try? executors.cancel(request, on: executor)
        }
    }

    /// Registers every method of `TrellisAPI` into `services`.
    public func register(into services: inout WireServices) {
        unary(&services, "Ping", ping)
        unary(&services, "ServerStatus", serverStatus)
        unary(&services, "SubmitDag", submitDag)
        unary(&services, "ListDags", listDags)
        unary(&services, "GetDag", getDag)
        unary(&services, "SetDagPaused", setDagPaused)
        unary(&services, "DeleteDag", deleteDag)
        unary(&services, "TriggerRun", triggerRun)
        unary(&services, "ListRuns", listRuns)
        unary(&services, "GetRun", getRun)
        streaming(&services, "WatchRun", watchRun)
        unary(&services, "CancelRun", cancelRun)
        streaming(&services, "GetTaskLog", getTaskLog)
        unary(&services, "ClearTasks", clearTasks)
        unary(&services, "MarkTask", markTask)
        unary(&services, "ListAgents", listAgents)
        unary(&services, "ListExecutors", listExecutors)
        unary(&services, "CreateToken", createToken)
        unary(&services, "ListTokens", listTokens)
        unary(&services, "RevokeToken", revokeToken)
        unary(&services, "ListPools", listPools)
        unary(&services, "GetPool", getPool)
        unary(&services, "SetPool", setPool)
        unary(&services, "DeletePool", deletePool)
    }

    /// The methods `register(into:)` registers, by name (for tests and docs).
    public static let methods = [
        "Ping", "ServerStatus", "SubmitDag", "ListDags", "GetDag", "SetDagPaused", "DeleteDag", "TriggerRun", "ListRuns",
        "GetRun", "WatchRun", "CancelRun", "GetTaskLog", "ClearTasks", "MarkTask", "ListAgents", "ListExecutors",
        "CreateToken", "ListTokens", "RevokeToken", "ListPools", "GetPool", "SetPool", "DeletePool",
    ]

    // MARK: Registration with the role check

    private func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ services: inout WireServices, _ method: String,
        _ handler: @escaping @Sendable (Request, APICaller) async throws -> Response
    ) {
        precondition(APIAuthorization.requiredRole[method] != nil, "\(method) has no role in APIAuthorization.requiredRole")
        services.unary(APIAuthorization.path(method), Request.self) { request, context in
            let caller = APICaller(role: try APIAuthorization.authorize(context.peer, method: method), name: context.peer?.name ?? "")
            do {
                return try await handler(request, caller)
            } catch {
                throw APIErrors.wire(error)
            }
        }
    }

    private func streaming<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ services: inout WireServices, _ method: String,
        _ handler: @escaping @Sendable (Request, APICaller, (Response) async throws -> Void) async throws -> Void
    ) {
        precondition(APIAuthorization.requiredRole[method] != nil, "\(method) has no role in APIAuthorization.requiredRole")
        services.serverStreaming(APIAuthorization.path(method), Request.self, Response.self) { request, context, send in
            let caller = APICaller(role: try APIAuthorization.authorize(context.peer, method: method), name: context.peer?.name ?? "")
            do {
                try await handler(request, caller, send)
            } catch {
                throw APIErrors.wire(error)
            }
        }
    }

    // MARK: Lookups shared by the handlers

    /// The DAG, or NOT_FOUND naming the known ones.
    func requireDag(_ dagID: String) async throws -> DagRecord {
        guard !dagID.isEmpty else { throw WireError(.invalidArgument, "dag_id is empty") }
        if let dag = try await store.dag(dagID) { return dag }
        throw APIErrors.notFound("DAG", dagID, known: try await store.dags().map(\.dagID))
    }

    /// The run, or NOT_FOUND naming the DAG's newest runs.
    func requireRun(dagID: String, runID: String) async throws -> DagRunRecord {
        guard !runID.isEmpty else { throw WireError(.invalidArgument, "run_id is empty") }
        _ = try await requireDag(dagID)
        if let run = try await store.run(dagID: dagID, runID: runID) { return run }
        let newest = try await store.listRuns(dagID: dagID, limit: 50).map(\.runID)
        throw APIErrors.notFound("run", runID, known: newest, in: " in DAG '\(dagID)'")
    }

    /// The run as a message with its task counts.
    func runMessage(_ run: DagRunRecord) async throws -> Trellis_V1_DagRun {
        APIMapping.run(run, counts: try await store.taskCounts(runIDs: [run.id])[run.id] ?? [:])
    }

    /// Asks each attempt's executor to stop it.
    func cancel(_ attempts: [AttemptInFlight], reason: String) {
        for attempt in attempts {
            var request = Trellis_V1_CancelRequest()
            request.attempt.attemptID = AttemptIdentity(taskInstanceID: attempt.taskInstanceID, attemptID: attempt.attemptID).text
            request.attempt.fencingToken = attempt.fencingToken
            request.reason = reason
            let executor = attempt.executor.isEmpty ? (settings.defaultExecutor ?? "") : attempt.executor
            cancelAttempt(executor, request)
        }
    }
}

/// The authenticated caller of one API call.
struct APICaller: Sendable {
    var role: APIRole
    /// The name the client gave in its Hello.
    var name: String
}
