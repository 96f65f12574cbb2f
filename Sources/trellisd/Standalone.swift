import ArgumentParser
import Foundation
import Logging
import TrellisAgent
import TrellisControlPlane
import TrellisCore
import TrellisLog
import TrellisProcess

#if canImport(Glibc)
import Glibc
#endif

/// `trellisd standalone`: everything on one machine, like `airflow
/// standalone`. An embedded PostgreSQL in a data directory of its own
/// (`EmbeddedPostgres`), migrated; the control plane in-process with the
/// executor plugins built beside trellisd; a local agent in-process joined
/// to it; the client's config file written so `trellis` works without
/// flags. SIGINT/SIGTERM stops it all in order (agent drain, control plane,
/// PostgreSQL) and keeps the data for the next start.
struct Standalone: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run everything on this machine: an embedded PostgreSQL, the control plane and a local agent.",
        discussion: """
            The first start makes a PostgreSQL cluster in the data directory; later starts reuse it, \
            with the same admin token. The rpc address and the admin token are written to the trellis \
            client's config file (mode 0600), so `trellis` works in another terminal without flags. \
            Ctrl-C (SIGINT) or SIGTERM drains the agent, stops the control plane and PostgreSQL, keeps \
            the data and exits 0. Exits 1 when it cannot start (PostgreSQL missing, data directory not \
            writable, a port in use), 2 for a configuration problem. The settings of `trellisd serve` \
            apply (docs/configuration.md), with local defaults: rpc 127.0.0.1:7400, http 127.0.0.1:7401.
            """
    )

    @OptionGroup var options: ConfigurationOptions

    @Option(help: "Data directory: the PostgreSQL cluster, tokens, logs (default: $XDG_DATA_HOME/trellis, else ~/.local/share/trellis; /var/lib/trellis as root).", completion: .directory)
    var dataDir: String?

    @Option(help: "Tasks the local agent runs at once (default: the number of CPUs, at least 2).")
    var slots: String?

    @Option(help: "Also serve PostgreSQL on 127.0.0.1:PORT (0: a free port), with the password in <data-dir>/postgres-password (default: a private Unix socket only).")
    var postgresPort: String?

    @Option(help: "Directory of initdb, pg_ctl and postgres (default: the newest /usr/lib/postgresql/*/bin).", completion: .directory)
    var postgresBinDir: String?

    @Option(help: "The trellis client's config file to write (default: $XDG_CONFIG_HOME/trellis/config.yaml, else ~/.config/trellis/config.yaml).", completion: .file())
    var clientConfig: String?

    @Flag(help: "Do not write the client's config file.")
    var noClientConfig = false

    @Option(help: "How long running tasks may finish on Ctrl-C before they are cancelled.")
    var drainGrace = "10s"

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let settings = try resolve(environment: environment)
        var configuration = settings.configuration
        TrellisLogging.bootstrap(format: configuration.logFormat, level: configuration.logLevel)
        let logger = Logger(label: "trellisd")
        // Signals are handled here, not by the default action, so the stop is
        // orderly; one that arrives while starting is acted on once started.
        let stop = SignalWaiter([SIGTERM, SIGINT])

        let data = settings.dataDirectory
        let lock = try Self.lockDataDirectory(data)
        defer { close(lock) }

        let parts = StartedParts()

        // 1. PostgreSQL.
        let listening: EmbeddedPostgres.Listening
        do {
            let server = try EmbeddedPostgres(directory: data, binDirectory: postgresBinDir, tcpPort: settings.postgresPort)
            parts.postgres = server
            let fresh = try await server.prepare()
            if fresh, configuration.bootstrapAdminTokenFile == settings.defaultAdminTokenFile {
                // A token file without the cluster that knew it is useless.
                try? FileManager.default.removeItem(atPath: settings.defaultAdminTokenFile)
            }
            listening = try await server.start()
            let version = ((try? String(contentsOfFile: server.clusterDirectory + "/PG_VERSION", encoding: .utf8)) ?? "?")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            var line = "trellisd standalone: PostgreSQL \(version) in \(server.clusterDirectory) (socket in \(listening.socketDirectory)"
            if listening.tcp { line += ", tcp 127.0.0.1:\(listening.port), user postgres, password in \(server.passwordFile)" }
            Self.say(line + ")")
        } catch {
            throw await parts.abandon(error.description)
        }
        configuration.databaseURL = listening.url

        // 2. Tokens and plugins.
        do {
            try Self.ensureJoinToken(configuration.agentJoinTokenFile, isDefault: configuration.agentJoinTokenFile == settings.defaultJoinTokenFile)
            if settings.pluginDirectoriesDefaulted {
                configuration.pluginDirectories = try Self.bundledPlugins(data: data, defaultExecutor: configuration.defaultExecutor)
            }
        } catch {
            throw await parts.abandon("\(error)")
        }

        // 3. The control plane, migrated.
        let plane = ControlPlane(configuration: configuration, replica: "standalone", logger: logger)
        parts.controlPlane = plane
        let endpoints: ControlPlane.Endpoints
        do {
            endpoints = try await plane.start(migrate: true, databaseWait: .seconds(60))
        } catch {
            throw await parts.abandon("\(error)")
        }

        // 4. The local agent.
        let agentHost = Self.connectableHost(endpoints.rpc.host)
        var agentConfiguration = Agent.Configuration(
            controlPlaneHost: agentHost, controlPlanePort: endpoints.rpc.port,
            token: (try? String(contentsOfFile: configuration.agentJoinTokenFile ?? "", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "",
            name: ProcessInfo.processInfo.hostName, node: ProcessInfo.processInfo.hostName, workDirectory: data + "/agent")
        agentConfiguration.pool = "default"
        agentConfiguration.slots = settings.slots
        agentConfiguration.drainGrace = settings.drainGrace
        let agent = Agent(configuration: agentConfiguration, logger: Logger(label: "trellis-agent"))
        let agentFailure = LinkFailureBox()
        parts.agentRun = Task {
            do {
                try await agent.run()
            } catch is CancellationError {
            } catch {
                agentFailure.set("\(error)")
                stop.fire(0)
            }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while agent.link.registrationCount == 0 {
            if let failure = agentFailure.value { throw await parts.abandon("the local agent could not join: \(failure)") }
            if ContinuousClock.now > deadline { throw await parts.abandon("the local agent did not register within 60s") }
            try? await Task.sleep(for: .milliseconds(50))
        }
        Self.say("trellisd standalone: local agent \(agentConfiguration.name) (pool default, \(settings.slots) slots)")

        // 5. What a client needs.
        let address = ListenAddress(host: agentHost, port: endpoints.rpc.port).description
        guard let tokenFile = configuration.bootstrapAdminTokenFile,
              let token = (try? String(contentsOfFile: tokenFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines),
              !token.isEmpty
        else {
            throw await parts.abandon("no admin API token in \(configuration.bootstrapAdminTokenFile ?? "(no bootstrap_admin_token_file)")")
        }
        Self.say("trellisd standalone: rpc address \(address)")
        Self.say("trellisd standalone: admin API token \(token) (in \(tokenFile))")
        if !noClientConfig {
            let file = clientConfig ?? Self.defaultClientConfig(environment)
            do {
                if let previous = try ClientConfigFile.write(address: address, token: token, to: file) {
                    Self.say("trellisd standalone: replaced \(file) for the trellis client (the previous one is in \(previous))")
                } else {
                    Self.say("trellisd standalone: wrote \(file) for the trellis client")
                }
            } catch {
                printError("trellisd standalone: warning: cannot write the client's config file \(file): \(error); use trellis --address \(address) --token …")
            }
        }
        var ready = "trellisd standalone: ready — rpc \(address)"
        if let http = endpoints.http { ready += ", http \(ListenAddress(host: Self.connectableHost(http.host), port: http.port))" }
        Self.say(ready + ", data \(data)")

        // 6. Run until told to stop, then stop in order.
        let signal = await stop.next()
        if let failure = agentFailure.value {
            throw await parts.abandon("the local agent stopped: \(failure)")
        }
        Self.say("trellisd standalone: \(signal == SIGTERM ? "SIGTERM" : "SIGINT"): stopping (agent, control plane, PostgreSQL)")
        await agent.drain()
        parts.agentRun?.cancel()
        await parts.agentRun?.value
        await plane.shutdown()
        await parts.postgres?.stop()
        Self.say("trellisd standalone: stopped; the data stays in \(data)")
    }

    // MARK: Settings

    struct Settings {
        var configuration: ControlPlaneConfiguration
        var dataDirectory: String
        var slots: Int
        var postgresPort: Int?
        var drainGrace: Duration
        var defaultJoinTokenFile: String
        var defaultAdminTokenFile: String
        var pluginDirectoriesDefaulted: Bool
    }

    /// The configuration over standalone's defaults, and its own flags;
    /// problems exit 2.
    func resolve(environment: [String: String]) throws -> Settings {
        if options.databaseURL != nil {
            throw ConfigurationExit.exit(ConfigurationExit(
                "--database-url: standalone runs a PostgreSQL of its own; to use another database run `trellisd serve --migrate`"))
        }
        var problems: [String] = []
        let data = Self.absolute(dataDir ?? Self.defaultDataDirectory(environment))
        var defaults = ControlPlaneConfiguration()
        defaults.rpcAddress = ListenAddress(host: "127.0.0.1", port: 7400)
        defaults.httpAddress = ListenAddress(host: "127.0.0.1", port: 7401)
        defaults.agentJoinTokenFile = data + "/agent-join-token"
        defaults.bootstrapAdminTokenFile = data + "/admin-token"
        defaults.pluginDirectories = [data + "/executors"]
        defaults.shutdownGraceMillis = 5_000
        defaults.logLevel = .notice
        // database_url from the file or TRELLIS_DATABASE_URL does not apply.
        var withoutDatabase = environment
        withoutDatabase["TRELLIS_DATABASE_URL"] = nil
        let configuration = try options.load(defaults: defaults, environment: withoutDatabase)

        var slots = max(2, ProcessInfo.processInfo.activeProcessorCount)
        if let text = self.slots {
            if let value = Int(text), (1...10_000).contains(value) { slots = value } else { problems.append("--slots: '\(text)' is not a whole number from 1 to 10000") }
        }
        var postgresPort: Int?
        if let text = self.postgresPort {
            if let value = Int(text), (0...65_535).contains(value) { postgresPort = value } else { problems.append("--postgres-port: '\(text)' is not a port from 0 to 65535") }
        }
        var drain = Duration.seconds(10)
        do { drain = .milliseconds(try DurationText.millis(drainGrace)) } catch { problems.append("--drain-grace: \(error)") }
        guard problems.isEmpty else {
            throw ConfigurationExit.exit(ConfigurationExit("invalid options:\n" + problems.map { "  \($0)" }.joined(separator: "\n")))
        }
        return Settings(
            configuration: configuration, dataDirectory: data, slots: slots, postgresPort: postgresPort, drainGrace: drain,
            defaultJoinTokenFile: defaults.agentJoinTokenFile!, defaultAdminTokenFile: defaults.bootstrapAdminTokenFile!,
            pluginDirectoriesDefaulted: configuration.pluginDirectories == defaults.pluginDirectories)
    }

    static func defaultDataDirectory(_ environment: [String: String]) -> String {
        if let xdg = environment["XDG_DATA_HOME"], !xdg.isEmpty { return xdg + "/trellis" }
        // As root, PostgreSQL runs as the user postgres, which cannot enter /root.
        if getuid() == 0 { return "/var/lib/trellis" }
        return home(environment) + "/.local/share/trellis"
    }

    static func defaultClientConfig(_ environment: [String: String]) -> String {
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty { return xdg + "/trellis/config.yaml" }
        return home(environment) + "/.config/trellis/config.yaml"
    }

    private static func home(_ environment: [String: String]) -> String {
        if let home = environment["HOME"], !home.isEmpty { return home }
        return FileManager.default.homeDirectoryForCurrentUser.path
    }

    private static func absolute(_ path: String) -> String {
        let url = path.hasPrefix("/") ? URL(fileURLWithPath: path) : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path)
        var text = url.standardizedFileURL.path
        while text.count > 1, text.hasSuffix("/") { text.removeLast() }
        return text
    }

    /// The host to connect to for a listening host (the wildcard means this machine).
    static func connectableHost(_ host: String) -> String {
        switch host {
        case "0.0.0.0", "": "127.0.0.1"
        case "::": "::1"
        default: host
        }
    }

    // MARK: Data directory

    /// Creates the data directory and takes its lock (`standalone.lock`,
    /// flock): one standalone per data directory. The lock dies with the
    /// process however it ends.
    static func lockDataDirectory(_ data: String) throws -> Int32 {
        do {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            printError("trellisd standalone: cannot create the data directory \(data): \(error.localizedDescription)")
            throw ExitCode.failure
        }
        let lockFile = data + "/standalone.lock"
        let fd = open(lockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            printError("trellisd standalone: the data directory \(data) is not writable: cannot create \(lockFile): \(String(cString: strerror(errno)))")
            throw ExitCode.failure
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = ((try? String(contentsOfFile: lockFile, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            close(fd)
            printError("trellisd standalone: another trellisd standalone\(holder.isEmpty ? "" : " (process \(holder))") is using the data directory \(data)")
            throw ExitCode.failure
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        let written = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == pid.count else {
            printError("trellisd standalone: the data directory \(data) is not writable: \(String(cString: strerror(errno)))")
            close(fd)
            throw ExitCode.failure
        }
        return fd
    }

    /// Generates the agents' join token when the file is the standalone
    /// default and missing.
    static func ensureJoinToken(_ file: String?, isDefault: Bool) throws {
        guard let file, isDefault, !FileManager.default.fileExists(atPath: file) else { return }
        let token = EmbeddedPostgres.randomHex(bytes: 32)
        guard FileManager.default.createFile(atPath: file, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw EmbeddedPostgres.Failure("cannot write the agent join token to \(file)")
        }
    }

    /// The executor plugins built beside trellisd (the build puts
    /// `libtrellis-executor-persistent-pool.so` there; test fixtures such as
    /// c-instant and the broken plugins are left out), linked into
    /// `<data>/executors`, then `/usr/lib/trellis/executors` if it exists.
    /// Refuses to start when the default executor is nowhere to be found.
    static func bundledPlugins(data: String, defaultExecutor: String) throws -> [String] {
        let links = data + "/executors"
        let fileManager = FileManager.default
        try? fileManager.removeItem(atPath: links)
        do {
            try fileManager.createDirectory(atPath: links, withIntermediateDirectories: true)
        } catch {
            throw EmbeddedPostgres.Failure("cannot create \(links): \(error.localizedDescription)")
        }
        let binary = (try? fileManager.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let beside = (binary as NSString).deletingLastPathComponent
        let testFixtures = ["libtrellis-executor-c-instant.so", "libtrellis-executor-broken.so"]
        let found = ((try? fileManager.contentsOfDirectory(atPath: beside)) ?? [])
            .filter { $0.hasPrefix("libtrellis-executor-") && $0.hasSuffix(".so") && !testFixtures.contains($0) }
        for file in found {
            try? fileManager.createSymbolicLink(atPath: links + "/" + file, withDestinationPath: beside + "/" + file)
        }
        var directories = [links]
        let system = "/usr/lib/trellis/executors"
        var isDirectory: ObjCBool = false
        if fileManager.fileExists(atPath: system, isDirectory: &isDirectory), isDirectory.boolValue { directories.append(system) }
        let expected = "libtrellis-executor-\(defaultExecutor).so"
        let available = found + (directories.count > 1 ? ((try? fileManager.contentsOfDirectory(atPath: system)) ?? []) : [])
        if !available.contains(expected) {
            throw EmbeddedPostgres.Failure("""
                the default executor's plugin \(expected) is neither beside trellisd (\(beside)) nor in \(system): \
                build it (swift build --product trellis-executor-\(defaultExecutor)) or name a directory with --plugin-dirs
                """)
        }
        return directories
    }

    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}

/// The trellis client's config file: `address` and `token`, nothing else,
/// mode 0600. The `trellis` client reads it when given no flags.
enum ClientConfigFile {
    static func contents(address: String, token: String) -> String {
        "address: \(address)\ntoken: \(token)\n"
    }

    /// Writes the file atomically (0600). When a different one was there,
    /// it is kept as `<file>.bak`, whose path is returned.
    static func write(address: String, token: String, to file: String) throws -> String? {
        let fileManager = FileManager.default
        let directory = (file as NSString).deletingLastPathComponent
        try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let text = contents(address: address, token: token)
        var backup: String?
        if let previous = try? String(contentsOfFile: file, encoding: .utf8) {
            if previous == text {
                chmod(file, 0o600)
                return nil
            }
            backup = file + ".bak"
            try? fileManager.removeItem(atPath: backup!)
            try fileManager.copyItem(atPath: file, toPath: backup!)
            chmod(backup!, 0o600)
        }
        let temporary = file + ".tmp-\(getpid())"
        guard fileManager.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw EmbeddedPostgres.Failure("cannot create \(temporary)")
        }
        guard rename(temporary, file) == 0 else {
            let reason = String(cString: strerror(errno))
            try? fileManager.removeItem(atPath: temporary)
            throw EmbeddedPostgres.Failure(reason)
        }
        return backup
    }
}

/// What a start got as far as: a failed start undoes it, so nothing is
/// left running. Only the command's own task touches it.
final class StartedParts: @unchecked Sendable {
    var postgres: EmbeddedPostgres?
    var controlPlane: ControlPlane?
    var agentRun: Task<Void, Never>?

    /// Says why the start failed, stops what started (in reverse order);
    /// the exit code to throw.
    func abandon(_ message: String) async -> ExitCode {
        printError("trellisd standalone: \(message)")
        agentRun?.cancel()
        await agentRun?.value
        await controlPlane?.shutdown()
        await postgres?.stop()
        return ExitCode.failure
    }
}

/// Why the in-process agent's link stopped for good, if it did.
final class LinkFailureBox: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var stored: String?

    func set(_ failure: String) { lock.withLock { stored = failure } }
    var value: String? { lock.withLock { stored } }
}
