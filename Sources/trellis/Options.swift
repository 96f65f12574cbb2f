public import ArgumentParser
import Foundation
import TrellisClient
import TrellisWire

/// Where to connect and with which token: every verb that talks to trellisd.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The control plane's wire address (default: TRELLIS_ADDRESS, the config file, 127.0.0.1:7400).",
        valueName: "host:port"))
    var address: String?

    @Option(name: .long, help: ArgumentHelp("The API token (default: TRELLIS_TOKEN, then the config file).", valueName: "token"))
    var token: String?

    @Option(name: .long, help: ArgumentHelp("Read the API token from this file.", valueName: "path"), completion: .file())
    var tokenFile: String?

    /// The settings after flags, environment and config file.
    func settings() throws -> ClientSettings {
        try ClientSettings.resolve(
            flags: .init(address: address, token: token, tokenFile: tokenFile),
            environment: ProcessInfo.processInfo.environment)
    }

    /// Connects for `verb`, runs `body`, closes.
    func with<T>(_ verb: String, _ body: (APIClient) async throws -> T) async throws -> T {
        let api = try await APIClient.connect(try settings(), verb: verb, version: TrellisVersion.current)
        do {
            let result = try await body(api)
            await api.close()
            return result
        } catch {
            await api.close()
            throw error
        }
    }
}

/// `-o table|json|yaml` of the reading verbs.
struct OutputOptions: ParsableArguments {
    @Option(name: [.short, .long], help: "Output format: table, json or yaml.")
    var output: OutputFormat = .table
}

extension OutputFormat: ExpressibleByArgument {}

/// Prints `document` as JSON or YAML, or the `table` lines.
func emit(_ format: OutputFormat, _ document: @autoclosure () -> Document, table: () -> [String]) {
    if let text = format.render(document()) {
        write(text.hasSuffix("\n") ? text : text + "\n")
    } else {
        write(table().joined(separator: "\n") + "\n")
    }
}

/// Writes to standard output at once (no buffering: progress redraws in place).
@Sendable func write(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// The terminal standard output goes to.
var terminal: Terminal { Terminal.standardOutput() }
