public import Foundation
public import Logging
import TrellisCore

/// Trellis's swift-log handler (trellisd and trellis-agent): one line per event, either text for people
/// (`2026-11-25T19:30:00.123Z info trellisd: message key=value`) or one
/// JSON object for log collectors (`ts`, `level`, `logger`, `msg` and each
/// metadata entry as a string field).
///
/// Every event is exactly one line, whatever its message holds: the text
/// format escapes control characters (a newline becomes `\n`) and quotes
/// metadata values that contain spaces, `=` or quotes; the JSON format
/// escapes as JSON does. Metadata keys are sorted, so lines are stable.
/// A metadata key that collides with one of the JSON fields is written as
/// `metadata.<key>`.
///
/// It can be built directly (tests do, with their own sink and clock);
/// `TrellisLogging.bootstrap` installs it for the whole process.
public struct TrellisLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    public var metadataProvider: Logger.MetadataProvider?

    /// The logger's label, written as `logger`.
    public let label: String
    /// Text or JSON.
    public let format: LogFormat
    private let sink: LogLineSink
    private let clock: @Sendable () -> Date

    public init(
        label: String,
        format: LogFormat,
        level: Logger.Level = .info,
        sink: LogLineSink = .standardError,
        metadataProvider: Logger.MetadataProvider? = nil,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.sink = sink
        self.metadataProvider = metadataProvider
        self.clock = clock
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        sink(line(for: event))
    }

    /// The line `event` is written as, newline included.
    func line(for event: LogEvent) -> String {
        var merged = metadata
        if let provided = metadataProvider?.get() {
            merged.merge(provided) { _, provided in provided }
        }
        if let explicit = event.metadata {
            merged.merge(explicit) { _, explicit in explicit }
        }
        var fields = merged.map { (key: $0.key, value: "\($0.value)") }
        if let error = event.error, merged["error"] == nil {
            fields.append((key: "error", value: "\(error)"))
        }
        fields.sort { $0.key < $1.key }

        let timestamp = LogTimestamp.rfc3339(clock())
        switch format {
        case .text:
            var line = "\(timestamp) \(event.level.rawValue) \(Self.escapeControlCharacters(label)): \(Self.escapeControlCharacters(event.message.description))"
            for field in fields {
                line += " \(Self.escapeControlCharacters(field.key))=\(Self.textValue(field.value))"
            }
            return line + "\n"
        case .json:
            var line = "{\"ts\":\"\(timestamp)\",\"level\":\"\(event.level.rawValue)\""
            line += ",\"logger\":" + JSONString.quoted(label)
            line += ",\"msg\":" + JSONString.quoted(event.message.description)
            for field in fields {
                let key = Self.reservedJSONKeys.contains(field.key) ? "metadata." + field.key : field.key
                line += "," + JSONString.quoted(key) + ":" + JSONString.quoted(field.value)
            }
            return line + "}\n"
        }
    }

    private static let reservedJSONKeys: Set<String> = ["ts", "level", "logger", "msg"]

    /// A metadata value in the text format: bare when it is one plain word,
    /// else a JSON string literal.
    private static func textValue(_ value: String) -> String {
        let plain = !value.isEmpty && value.unicodeScalars.allSatisfy { scalar in
            scalar.value > 0x20 && scalar.value != 0x7F && scalar != "=" && scalar != "\"" && scalar != "\\"
        }
        return plain ? value : JSONString.quoted(value)
    }

    /// Control characters as escapes (`\n`, `\r`, `\t`, `\u001b`), so a
    /// message never spans lines; everything else is kept as written.
    private static func escapeControlCharacters(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else { return text }
        var output = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output
    }
}
