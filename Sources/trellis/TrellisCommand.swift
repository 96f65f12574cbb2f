import ArgumentParser
import Foundation
import TrellisClient
import TrellisWire

/// `trellis`: the thin client of the Trellis control plane.
struct TrellisCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trellis",
        abstract: "Submit and inspect DAGs, runs and tasks on a Trellis control plane.",
        discussion: """
            trellis talks to trellisd's client API (its wire port, 7400 by default) with an API \
            token. Where it connects and with which token comes from, first wins: --address and \
            --token / --token-file; TRELLIS_ADDRESS and TRELLIS_TOKEN; the config file \
            ${XDG_CONFIG_HOME:-$HOME/.config}/trellis/config.yaml (`address:` and `token:`, \
            written by `trellisd standalone`); the address 127.0.0.1:7400.

            Runs are named by DAG and run id (two arguments, `DAG RUN`); `latest` stands for the \
            DAG's newest run. Reading verbs take -o table|json|yaml.

            Examples:
              trellis dags submit examples/*.yaml
              trellis pools set etl 8
              trellis dags trigger etl --wait
              trellis runs show etl latest
              trellis tasks logs etl latest extract --follow

            \(ClientError.exitCodeSummary)
            """,
        version: TrellisVersion.current,
        subcommands: [Dags.self, Runs.self, Tasks.self, Pools.self, Agents.self, Executors.self, Tokens.self, Status.self]
    )
}

/// Exit codes shared by every verb, in the habits of kubectl and the Airflow CLI.
enum TrellisExit {
    static let failed = ExitCode(1)
    static let invalid = ExitCode(2)
    static let unreachable = ExitCode(3)
}

/// Runs the command line with the client's exit codes: ArgumentParser's
/// usage errors (its 64) become 2, a `ClientError` exits with its own code
/// after printing its message.
@main
enum TrellisMain {
    static func main() async {
        do {
            var command = try TrellisCommand.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as ClientError {
            printError("trellis: \(error.message)")
            exit(error.exitCode)
        } catch {
            let code = TrellisCommand.exitCode(for: error)
            let message = TrellisCommand.fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
                exit(0)
            }
            if !message.isEmpty { printError(message) }
            exit(code == .validationFailure ? TrellisExit.invalid.rawValue : code.rawValue)
        }
    }
}
