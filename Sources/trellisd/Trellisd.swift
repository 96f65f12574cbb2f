import ArgumentParser
import TrellisControlPlane
import TrellisWire

/// `trellisd`: the Trellis control plane.
@main
struct Trellisd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trellisd",
        abstract: "The Trellis control plane.",
        discussion: """
            Settings come from a YAML file (--config), then TRELLIS_* environment variables, then \
            flags; docs/configuration.md lists them all.
            """,
        version: TrellisVersion.current,
        subcommands: [Serve.self, Migrate.self, Standalone.self]
    )
}
