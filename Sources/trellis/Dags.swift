import ArgumentParser

/// `trellis dags …`
struct Dags: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with DAG files and the DAGs on the control plane.",
        subcommands: [Validate.self]
    )
}
