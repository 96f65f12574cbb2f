import Foundation
import Logging
import TrellisAgent
import TrellisCore
import TrellisLog

/// trellis-agent's options resolved from flags, then environment variables,
/// then defaults, with every problem collected so that one run reports
/// them all.
struct AgentSettings {
    var configuration: Agent.Configuration
    var logFormat: LogFormat
    var logLevel: Logger.Level

    struct Problems: Error {
        var problems: [String]
    }

    static func resolve(options: TrellisAgentCommand, environment: [String: String]) throws(Problems) -> AgentSettings {
        var problems: [String] = []
        /// The flag, else the variable (empty counts as unset).
        func value(_ flag: String?, _ variable: String) -> String? {
            if let flag { return flag }
            if let value = environment[variable], !value.isEmpty { return value }
            return nil
        }

        var host = "", port = 0
        if let address = value(options.controlPlane, "TRELLIS_AGENT_CONTROL_PLANE") {
            if let (parsedHost, parsedPort) = parseAddress(address) {
                (host, port) = (parsedHost, parsedPort)
            } else {
                problems.append("--control-plane: '\(address)' is not HOST:PORT with a port from 1 to 65535")
            }
        } else {
            problems.append("--control-plane (TRELLIS_AGENT_CONTROL_PLANE) is required: trellisd's wire address, HOST:PORT")
        }

        var token = ""
        if let file = value(options.tokenFile, "TRELLIS_AGENT_TOKEN_FILE") {
            if !FileManager.default.fileExists(atPath: file) {
                problems.append("--token-file: \(file) does not exist")
            } else if let text = try? String(contentsOfFile: file, encoding: .utf8) {
                token = text.trimmingCharacters(in: .whitespacesAndNewlines)
                if token.isEmpty { problems.append("--token-file: \(file) is empty") }
            } else {
                problems.append("--token-file: cannot read \(file) as UTF-8 text")
            }
        } else {
            problems.append("--token-file (TRELLIS_AGENT_TOKEN_FILE) is required: the file holding the join token")
        }

        var slots = 4
        if let text = value(options.slots, "TRELLIS_AGENT_SLOTS") {
            if let parsed = Int(text), parsed > 0, parsed <= 10_000 {
                slots = parsed
            } else {
                problems.append("--slots: '\(text)' is not a positive integer (at most 10000)")
            }
        }

        var labels: [String: String] = [:]
        let environmentLabels = environment["TRELLIS_AGENT_LABELS"].map { $0.split(separator: ",").map(String.init) } ?? []
        for (source, items) in [("TRELLIS_AGENT_LABELS", environmentLabels), ("--label", options.labels)] {
            for item in items {
                let trimmed = item.trimmingCharacters(in: .whitespaces)
                guard let equals = trimmed.firstIndex(of: "="), equals != trimmed.startIndex,
                      !trimmed[..<equals].contains(where: { $0.isWhitespace || $0 == "," })
                else {
                    problems.append("\(source): '\(item)' is not a label k=v")
                    continue
                }
                labels[String(trimmed[..<equals])] = String(trimmed[trimmed.index(after: equals)...])
            }
        }

        func duration(_ flag: String?, _ variable: String, _ name: String, default fallback: Duration) -> Duration {
            guard let text = value(flag, variable) else { return fallback }
            do {
                return .milliseconds(try DurationText.millis(text))
            } catch {
                problems.append("\(name): \(error)")
                return fallback
            }
        }
        let killGrace = duration(options.killGrace, "TRELLIS_AGENT_KILL_GRACE", "--kill-grace", default: .seconds(10))
        let drainGrace = duration(options.drainGrace, "TRELLIS_AGENT_DRAIN_GRACE", "--drain-grace", default: .seconds(300))

        var logFormat = LogFormat.text
        if let text = value(options.logFormat, "TRELLIS_AGENT_LOG_FORMAT") {
            if let format = LogFormat(rawValue: text) { logFormat = format } else { problems.append("--log-format: '\(text)' is not text or json") }
        }
        var logLevel = Logger.Level.info
        if let text = value(options.logLevel, "TRELLIS_AGENT_LOG_LEVEL") {
            if let level = Logger.Level(rawValue: text) {
                logLevel = level
            } else {
                problems.append("--log-level: '\(text)' is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        let node = value(options.nodeName, "TRELLIS_AGENT_NODE_NAME") ?? ""
        let name = value(options.name, "TRELLIS_AGENT_NAME") ?? (node.isEmpty ? ProcessInfo.processInfo.hostName : node)
        let pool = value(options.pool, "TRELLIS_AGENT_POOL") ?? "default"
        let workDirectory = value(options.workDir, "TRELLIS_AGENT_WORK_DIR")
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("trellis-agent").path

        guard problems.isEmpty else { throw Problems(problems: problems) }
        var configuration = Agent.Configuration(
            controlPlaneHost: host, controlPlanePort: port, token: token, name: name, node: node, workDirectory: workDirectory)
        configuration.pool = pool
        configuration.labels = labels
        configuration.slots = slots
        configuration.killGrace = killGrace
        configuration.drainGrace = drainGrace
        return AgentSettings(configuration: configuration, logFormat: logFormat, logLevel: logLevel)
    }

    /// `host:port` or `[v6]:port`.
    static func parseAddress(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65_535).contains(port) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        return (host, port)
    }
}
