import ArgumentParser

/// `trellis`: the thin client of the Trellis control plane.
@main
struct TrellisCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trellis",
        abstract: "Submit and inspect DAGs, runs and tasks on a Trellis control plane.",
        discussion: """
            Exit codes: 0 success; 1 the run or task failed; 2 usage or validation error; \
            3 cannot reach or authenticate to the control plane.
            """,
        version: TrellisVersion.current,
        subcommands: [Dags.self]
    )
}

/// The version every Trellis binary reports.
enum TrellisVersion {
    static let current = "0.1.0-dev"
}

/// Exit codes shared by every verb, in the habits of kubectl and the Airflow CLI.
enum TrellisExit {
    static let failed = ExitCode(1)
    static let invalid = ExitCode(2)
    static let unreachable = ExitCode(3)
}
