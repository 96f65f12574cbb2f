import Foundation
import Logging

/// trellis-agent's swift-log handler: one line per event on standard
/// error, text for people (`2026-11-25T19:30:00.123Z info trellis-agent:
/// message key=value`) or one JSON object for log collectors (`ts`,
/// `level`, `logger`, `msg`, then the metadata as string fields): the same
/// shapes as trellisd's, without depending on the control plane.
struct AgentLogHandler: LogHandler {
    enum Format: String {
        case text, json
    }

    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level
    let label: String
    let format: Format

    static func bootstrap(format: Format, level: Logger.Level) {
        LoggingSystem.bootstrap { label in AgentLogHandler(logLevel: level, label: label, format: format) }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let explicit = event.metadata { merged.merge(explicit) { _, explicit in explicit } }
        let fields = merged.map { ($0.key, "\($0.value)") }.sorted { $0.0 < $1.0 }
        let timestamp = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        var line: String
        switch format {
        case .text:
            line = "\(timestamp) \(event.level.rawValue) \(label): \(Self.oneLine(event.message.description))"
            for (key, value) in fields {
                let plain = !value.isEmpty && !value.contains(where: { $0.isWhitespace || $0 == "=" || $0 == "\"" })
                line += " \(key)=\(plain ? value : Self.quoted(value))"
            }
        case .json:
            line = "{\"ts\":\(Self.quoted(timestamp)),\"level\":\(Self.quoted(event.level.rawValue)),\"logger\":\(Self.quoted(label)),\"msg\":\(Self.quoted(event.message.description))"
            for (key, value) in fields where !["ts", "level", "logger", "msg"].contains(key) {
                line += ",\(Self.quoted(key)):\(Self.quoted(value))"
            }
            line += "}"
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// A JSON string literal.
    static func quoted(_ text: String) -> String {
        var output = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output + "\""
    }

    /// Control characters escaped, so a message never spans lines.
    static func oneLine(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 }) else { return text }
        let quoted = quoted(text)
        return String(quoted.dropFirst().dropLast())
    }
}
