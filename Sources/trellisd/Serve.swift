import ArgumentParser
import Dispatch
import Foundation
import Logging
import TrellisControlPlane
import TrellisLog
import TrellisProcess

/// `trellisd serve`: runs one control-plane replica until SIGTERM or SIGINT.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the control plane: scheduler, client API, agent link, executors.",
        discussion: """
            Several replicas may serve one database: they elect a leader through PostgreSQL and only \
            the leader schedules; a standby takes over when the leader's database session ends. \
            SIGTERM or SIGINT shuts down gracefully (calls in flight get shutdown_grace). Exits 0 after \
            a clean shutdown, 1 when it cannot start (database, schema, port), 2 for a configuration problem.
            """
    )

    @OptionGroup var options: ConfigurationOptions

    @Flag(help: "Apply missing database migrations before serving (the embedded default does).")
    var migrate = false

    @Option(help: "How long to keep retrying while the database is unreachable (e.g. 60s).")
    var waitTimeout = "60s"

    @Option(help: "Name of this replica in logs and status (default: the host name).")
    var replicaName: String?

    func run() async throws {
        let configuration = try options.load()
        let wait = try DurationOption.parse(waitTimeout, name: "--wait-timeout")
        TrellisLogging.bootstrap(format: configuration.logFormat, level: configuration.logLevel)
        let logger = Logger(label: "trellisd")

        // Signals are handled here, not by the default action, so shutdown is graceful.
        let stop = SignalWaiter([SIGTERM, SIGINT])
        let controlPlane = ControlPlane(
            configuration: configuration, replica: replicaName ?? ProcessInfo.processInfo.hostName, logger: logger)
        let endpoints: ControlPlane.Endpoints
        do {
            endpoints = try await controlPlane.start(migrate: migrate, databaseWait: wait)
        } catch {
            logger.critical("cannot start", metadata: ["reason": "\(error)"])
            printError("trellisd serve: \(error)")
            await controlPlane.shutdown()
            throw ExitCode.failure
        }
        // A stable line for scripts and tests, whatever the log format.
        var ready = "trellisd: serving rpc on \(endpoints.rpc)"
        if let http = endpoints.http { ready += ", http on \(http)" }
        FileHandle.standardOutput.write(Data((ready + "\n").utf8))

        let signal = await stop.next()
        logger.notice("received \(signal == SIGTERM ? "SIGTERM" : "SIGINT"); shutting down")
        await controlPlane.shutdown()
    }
}

