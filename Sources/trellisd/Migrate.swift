import ArgumentParser
import Foundation
import TrellisControlPlane
import TrellisCore
import TrellisStore

/// `trellisd migrate`: brings the database schema up to date; the init
/// container of the trellisd Deployment. Safe to run any number of times and
/// from several replicas at once (an advisory lock serializes them).
struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create or upgrade the database schema, then exit.",
        discussion: """
            Applies the numbered migrations this trellisd ships that the database lacks, each in its \
            own transaction, under an advisory lock. Running it again is a no-op. A database newer \
            than this trellisd is refused. Exits 0 when the schema is current, 1 when the database \
            cannot be reached or a migration fails, 2 for a configuration problem.
            """
    )

    @OptionGroup var options: ConfigurationOptions

    @Option(help: "How long to keep retrying while the database is unreachable (e.g. 60s; 0 tries once).")
    var waitTimeout = "60s"

    func run() async throws {
        let configuration = try options.load()
        guard let url = configuration.databaseURL else {
            throw ConfigurationExit.exit(ConfigurationExit("no database: set database_url in the file, TRELLIS_DATABASE_URL, or --database-url"))
        }
        let wait = try DurationOption.parse(waitTimeout, name: "--wait-timeout")

        let connection: PostgresConnection
        do {
            connection = try await DatabaseWait.connect(url, within: wait) { error in
                printError("trellisd migrate: database not reachable yet (\(error.message)); retrying")
            }
        } catch {
            printError("trellisd migrate: \(error)")
            throw ExitCode.failure
        }
        do {
            let applied = try await Migrator.migrate(connection)
            let version = try await Migrator.currentVersion(connection)
            await connection.close()
            if applied.isEmpty {
                print("trellisd migrate: the schema is current (version \(version)); nothing to do")
            } else {
                print("trellisd migrate: applied \(applied.map(String.init).joined(separator: ", ")); the schema is at version \(version)")
            }
        } catch {
            await connection.close()
            printError("trellisd migrate: \(error)")
            throw ExitCode.failure
        }
    }
}

/// Durations given as flags (`60s`, `5m`).
enum DurationOption {
    static func parse(_ text: String, name: String) throws -> Duration {
        do {
            return .milliseconds(try DurationText.millis(text))
        } catch {
            throw ConfigurationExit.exit(ConfigurationExit("\(name): \(error)"))
        }
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
