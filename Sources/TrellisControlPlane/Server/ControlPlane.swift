public import Foundation
public import Logging
import NIOCore
import Synchronization
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisWire

/// One `trellisd` replica, assembled from its parts: the database pool, the
/// executor plugins, the scheduler and its leader election, the wire server
/// (client API and agent link) and the operations HTTP port. `trellisd
/// serve` and `trellisd standalone` both run one.
///
/// Start-up is strict and says why it stopped: an unreachable database, a
/// schema that is not current, a port in use. Plugins that cannot be loaded
/// are logged one line each and the others still load. Shutdown is graceful:
/// no new calls, calls in flight get the grace period, the scheduler stops
/// and the leader lock is released so a standby takes over at once.
public final class ControlPlane: Sendable {
    /// Where a started replica listens (the real ports when 0 was asked for).
    public struct Endpoints: Sendable, Hashable {
        public var rpc: ListenAddress
        public var http: ListenAddress?
    }

    /// Why a replica could not start.
    public struct StartError: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    public let configuration: ControlPlaneConfiguration
    /// This replica's name in logs, leases and status (host name by default).
    public let replica: String
    private let logger: Logger
    private let state = Mutex(Running())
    private let startedAt = Date()
    private let leading = Mutex(false)
    /// The schema version found at start.
    private let schemaVersion = Mutex(0)
    /// This replica's metrics, served on `/metrics`.
    public let metrics = ControlPlaneMetrics(registry: MetricsRegistry())

    /// What a started replica holds, for shutdown.
    private struct Running: Sendable {
        var pool: PostgresPool?
        var host: ExecutorHost?
        var leader: LeaderLock?
        var listener: PostgresListener?
        var server: WireServer?
        var ops: OpsHTTPServer?
        var tasks: [Task<Void, Never>] = []
        var inbox: ExecutorEventInbox?
        var shutDown = false
    }

    public init(configuration: ControlPlaneConfiguration, replica: String = ProcessInfo.processInfo.hostName, logger: Logger) {
        self.configuration = configuration
        self.replica = replica
        self.logger = logger
    }

    /// Whether this replica holds the leader lock now.
    public var isLeader: Bool { leading.withLock { $0 } }

    /// Starts every part; returns once the ports are open and the scheduler
    /// is waiting for leadership.
    ///
    /// - Parameter migrate: apply missing migrations first (standalone);
    ///   otherwise a schema that is not current stops the start with the
    ///   advice to run `trellisd migrate`.
    public func start(migrate: Bool = false, databaseWait: Duration = .seconds(60)) async throws -> Endpoints {
        guard let url = configuration.databaseURL else {
            throw StartError("no database: set database_url in the file, TRELLIS_DATABASE_URL, or --database-url")
        }
        try await checkSchema(url, migrate: migrate, wait: databaseWait)

        let pool = PostgresPool(url, maximumConnections: 8)
        let store = StateStore(pool: pool)
        state.withLock { $0.pool = pool }
        let tokens = TokenAuthenticator(store: store, agentToken: try agentToken())
        try await bootstrapAdminToken(store)
        try await registerAdminToken(store)
        do {
            try await tokens.refresh()
        } catch {
            throw StartError("cannot read the API tokens: \(error)")
        }

        // Executors: every plugin in the configured directories, and the
        // agents they dispatch to.
        let inbox = ExecutorEventInbox()
        let logger = self.logger
        let hostForAgents = Mutex<ExecutorHost?>(nil)
        let registry = AgentRegistry(
            store: store, heartbeatTTL: .milliseconds(configuration.heartbeatTTLMillis), logger: logger,
            events: { records in await inbox.postAndWait(records) },
            changed: { update in hostForAgents.withLock { $0 }?.agentsChanged(update) })
        let host = ExecutorHost(
            hostID: replica,
            agents: registry,
            log: { executor, level, message in
                logger.log(level: level.loggerLevel, "\(message)", metadata: ["executor": "\(executor)"])
            },
            events: { inbox.post($0) })
        hostForAgents.withLock { $0 = host }
        let report = host.loadPlugins(in: configuration.pluginDirectories) { [configuration] in configuration.executorSettingsJSON(for: $0) }
        for problem in report.problems {
            logger.error("executor plugin not loaded", metadata: ["file": "\(problem.path)", "reason": "\(problem.reason)"])
        }
        for executor in report.loaded {
            logger.info("executor loaded", metadata: ["executor": "\(executor.name)", "version": "\(executor.version)", "file": "\(executor.path)"])
        }
        if !report.loaded.contains(where: { $0.name == configuration.defaultExecutor }) {
            logger.warning("the default executor is not loaded; tasks that name no executor will fail until it is",
                           metadata: ["default_executor": "\(configuration.defaultExecutor)"])
        }
        state.withLock { $0.host = host; $0.inbox = inbox }

        // Scheduling: leader-gated, woken by executor events and NOTIFY.
        let scheduler = Scheduler(store: store, executors: host, settings: .init(
            defaultExecutor: configuration.defaultExecutor,
            taskQueuedTimeout: .milliseconds(configuration.taskQueuedTimeoutMillis),
            parallelism: configuration.parallelism,
            agentLostAfter: .milliseconds(configuration.heartbeatTTLMillis + configuration.agentGraceMillis)),
            metrics: metrics, logger: logger)
        let leader = LeaderLock(url)
        let listener = PostgresListener(url)
        do {
            try await listener.listen(StateStore.runChangedChannel)
        } catch {
            listener.stop()
            throw StartError("cannot LISTEN on the database: \(error)")
        }
        let (wakeups, wake) = AsyncStream<Int64?>.makeStream()
        let loop = SchedulingLoop(
            scheduler: scheduler, leader: leader, events: inbox,
            sweepInterval: .milliseconds(configuration.sweepIntervalMillis), wakeups: wakeups
        ) { [self] isLeading in
            leading.withLock { $0 = isLeading }
            metrics.setLeader(isLeading)
            logger.notice(isLeading ? "leading: this replica schedules" : "no longer leading", metadata: ["replica": "\(replica)"])
        }
        let loopTask = Task {
            do {
                try await loop.run()
            } catch is CancellationError {
            } catch {
                logger.critical("the scheduling loop stopped", metadata: ["error": "\(error)"])
            }
        }
        let wakeTask = Task {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await note in listener.notifications { wake.yield(note.payload == "*" ? nil : Int64(note.payload)) }
                }
                // Notifications sent while the listener reconnected are lost:
                // look at everything once it is back.
                group.addTask { for await _ in listener.reconnects { wake.yield(nil) } }
            }
            wake.finish()
        }
        let tokenTask = Task { await tokens.run() }
        state.withLock {
            $0.leader = leader
            $0.listener = listener
            $0.tasks += [loopTask, wakeTask, tokenTask]
        }

        // The wire server: agents and clients.
        var server = WireServerConfiguration(host: configuration.rpcAddress.host, port: configuration.rpcAddress.port)
        server.maximumFrameLength = configuration.maxFrameBytes
        server.heartbeatTTL = .milliseconds(configuration.heartbeatTTLMillis)
        server.heartbeatGrace = .milliseconds(configuration.agentGraceMillis)
        server.serverVersion = "trellisd \(TrellisVersion.current)"
        let counter = ConnectionCounter()
        let api = TrellisAPIService(
            store: store, executors: host,
            executorLoadProblems: report.problems.map { "\($0.path): \($0.reason)" },
            settings: .init(defaultExecutor: configuration.defaultExecutor),
            tokens: tokens,
            statusProvider: { [self] in
                ServerStatusInfo(
                    serverVersion: "trellisd \(TrellisVersion.current)", startedAt: startedAt,
                    connectedAgents: counter.count(.agent), connectedClients: counter.count(.client),
                    leader: isLeader, schemaVersion: schemaVersion.withLock { $0 }, replica: replica)
            },
            runChanged: { [logger] runID in
                do { try await store.notifyRunChanged(runID) } catch {
                    logger.warning("could not wake the scheduler; the next sweep will see the change", metadata: ["run": "\(runID)", "error": "\(error)"])
                }
            },
            dagUnpaused: { _ in try? await store.notifyRunChanged(nil) },
            poolChanged: { _ in try? await store.notifyRunChanged(nil) })
        var services = WireServices()
        api.register(into: &services)
        registry.register(into: &services)
        let wire = WireServer(configuration: server, services: services, authenticator: tokens) { connection in
            counter.opened(connection)
            registry.connected(connection)
        }
        do {
            try await wire.start()
        } catch {
            throw StartError("cannot listen for agents and clients on \(configuration.rpcAddress): \(error)")
        }
        state.withLock { $0.server = wire }
        let rpc = ListenAddress(host: configuration.rpcAddress.host, port: wire.port ?? configuration.rpcAddress.port)

        // The operations port: health, readiness, metrics.
        let ops = OpsHTTPServer(
            configuration: .init(host: configuration.httpAddress.host, port: configuration.httpAddress.port),
            registry: metrics.registry,
            readiness: { [self] in await readiness(store) },
            beforeMetrics: { [self] in await refreshGauges(store, agents: counter.count(.agent)) })
        do {
            try await ops.start()
        } catch {
            throw StartError("cannot listen for /healthz, /readyz and /metrics on \(configuration.httpAddress): \(error)")
        }
        state.withLock { $0.ops = ops }
        let http = ListenAddress(host: configuration.httpAddress.host, port: ops.port ?? configuration.httpAddress.port)
        logger.notice("serving", metadata: ["rpc_address": "\(rpc)", "http_address": "\(http)", "replica": "\(replica)"])
        return Endpoints(rpc: rpc, http: http)
    }

    /// Graceful shutdown; safe to call more than once.
    public func shutdown() async {
        let running = state.withLock { state -> Running? in
            guard !state.shutDown else { return nil }
            state.shutDown = true
            return state
        }
        guard let running else { return }
        logger.notice("shutting down", metadata: ["grace": "\(configuration.shutdownGraceMillis)ms"])
        await running.server?.shutdown(grace: .milliseconds(configuration.shutdownGraceMillis))
        await running.ops?.shutdown(grace: .seconds(2))
        for task in running.tasks { task.cancel() }
        for task in running.tasks { await task.value }
        running.listener?.stop()
        await running.leader?.release()
        running.host?.shutdown()
        running.inbox?.finish()
        await running.pool?.close()
        logger.notice("stopped")
    }

    // MARK: Parts

    /// Refuses to serve on a schema other than the one this build ships
    /// (after applying it when `migrate`).
    private func checkSchema(_ url: String, migrate: Bool, wait: Duration) async throws {
        let connection = try await DatabaseWait.connect(url, within: wait, logger: logger)
        defer { Task { await connection.close() } }
        do {
            if migrate {
                let applied = try await Migrator.migrate(connection)
                if !applied.isEmpty { logger.notice("migrated", metadata: ["applied": "\(applied)"]) }
            }
            let current = try await Migrator.currentVersion(connection)
            schemaVersion.withLock { $0 = current }
            let shipped = try Migrator.bundled().map(\.version).max() ?? 0
            if current < shipped {
                throw StartError("the database schema is at version \(current), this trellisd needs \(shipped): run `trellisd migrate` first")
            }
            if current > shipped {
                throw StartError("the database schema is at version \(current), newer than this trellisd (\(shipped)): upgrade trellisd")
            }
        } catch let error as StartError {
            throw error
        } catch {
            throw StartError("cannot check the database schema: \(error)")
        }
    }

    /// The agents' join token, from its file; nil when agents cannot join.
    private func agentToken() throws -> String? {
        guard let file = configuration.agentJoinTokenFile else { return nil }
        let token: String
        do {
            token = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw StartError("cannot read the agent join token file \(file): \(error.localizedDescription)")
        }
        if token.isEmpty { throw StartError("the agent join token file \(file) is empty") }
        return token
    }

    /// With `bootstrap_admin_token_file` set and the file missing, creates an
    /// admin token and writes it there (mode 0600), so the first user can
    /// reach the API. An existing file is left alone.
    private func bootstrapAdminToken(_ store: StateStore) async throws {
        guard let file = configuration.bootstrapAdminTokenFile, !FileManager.default.fileExists(atPath: file) else { return }
        let name = "bootstrap-admin-\(Int(Date().timeIntervalSince1970))"
        let token: String
        do {
            token = try await store.createToken(name: name, role: .admin)
        } catch {
            throw StartError("cannot create the bootstrap admin token: \(error)")
        }
        let directory = (file as NSString).deletingLastPathComponent
        if !directory.isEmpty { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        guard FileManager.default.createFile(atPath: file, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            _ = try? await store.revokeToken(name: name)
            throw StartError("cannot write the bootstrap admin token to \(file)")
        }
        logger.notice("created an admin API token", metadata: ["name": "\(name)", "file": "\(file)"])
    }

    /// The name `admin_token_file`'s token is registered under.
    public static let adminTokenName = "deploy-admin"

    /// With `admin_token_file` set, registers the token in it (see
    /// `StateStore.registerToken`): a deployment puts the operator's admin
    /// token in a Secret, and every replica registers it at start.
    private func registerAdminToken(_ store: StateStore) async throws {
        guard let file = configuration.adminTokenFile else { return }
        let token: String
        do {
            token = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        } catch {
            throw StartError("cannot read admin_token_file \(file): \(error.localizedDescription)")
        }
        guard token.count >= 32 else {
            throw StartError("admin_token_file \(file) holds no token of 32 characters or more (deploy/generate-secrets makes one)")
        }
        let name = Self.adminTokenName
        let outcome: StateStore.TokenRegistration
        do {
            outcome = try await store.registerToken(name: name, role: .admin, token: token)
        } catch {
            throw StartError("cannot register the admin token of \(file): \(error)")
        }
        switch outcome {
        case .created:
            logger.notice("registered the admin API token of admin_token_file", metadata: ["name": "\(name)", "file": "\(file)"])
        case .replaced:
            logger.notice("replaced the admin API token by the one in admin_token_file", metadata: ["name": "\(name)", "file": "\(file)"])
        case .unchanged:
            break
        case .revoked:
            logger.warning(
                "the admin API token in admin_token_file was revoked and stays so; put a new token in the file to replace it",
                metadata: ["name": "\(name)", "file": "\(file)"])
        }
    }

    /// Ready when the database answers, the schema is current (checked at
    /// start) and this replica leads: Kubernetes then sends API traffic to
    /// the leader.
    private func readiness(_ store: StateStore) async -> Readiness {
        var reasons: [String] = []
        do {
            try await store.ping()
        } catch {
            reasons.append("database unreachable: \(error)")
        }
        if !isLeader { reasons.append("this replica does not lead (standby)") }
        return Readiness(reasons: reasons)
    }

    /// Measured gauges, read just before `/metrics` is rendered.
    private func refreshGauges(_ store: StateStore, agents: Int) async {
        metrics.setAgentsConnected(agents)
        if let counts = try? await store.activeTaskCounts() {
            for (executor, count) in counts {
                let name = executor.isEmpty ? configuration.defaultExecutor : executor
                metrics.setQueued(executor: name, count: count.queued)
                metrics.setRunning(executor: name, count: count.running)
            }
        }
        if let pools = try? await store.pools() {
            metrics.setPools(Dictionary(uniqueKeysWithValues: pools.map {
                ($0.name, PoolSlots(queued: $0.queuedSlots, running: $0.runningSlots, open: $0.isUnlimited ? nil : $0.openSlots))
            }))
        }
    }
}

/// Counts open wire connections by the role of their peer.
private final class ConnectionCounter: Sendable {
    private let counts = Mutex<[Trellis_V1_PeerRole: Int]>([:])

    func opened(_ connection: WireConnection) {
        guard let role = connection.peer?.role else { return }
        counts.withLock { $0[role, default: 0] += 1 }
        connection.channel.closeFuture.whenComplete { [self] _ in
            counts.withLock { $0[role, default: 1] -= 1 }
        }
    }

    func count(_ role: Trellis_V1_PeerRole) -> Int { counts.withLock { $0[role] ?? 0 } }
}

extension PluginLogLevel {
    var loggerLevel: Logger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error: .error
        }
    }
}
