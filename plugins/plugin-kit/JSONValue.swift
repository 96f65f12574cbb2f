import Foundation

/// One JSON value of an executor's settings, keeping apart what
/// JSONSerialization would blur (true is not 1).
public enum JSONValue: Decodable, Sendable, Equatable, CustomStringConvertible {
    case string(String)
    case integer(Int64)
    case number(Double)
    case boolean(Bool)
    case null
    case object([String: JSONValue])
    case array([JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .boolean(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([String: JSONValue].self) {
            self = .object(value)
        } else {
            self = .array(try container.decode([JSONValue].self))
        }
    }

    public var description: String {
        switch self {
        case .string(let text): "the string \"\(text)\""
        case .integer(let number): "the number \(number)"
        case .number(let number): "the number \(number)"
        case .boolean(let flag): "\(flag)"
        case .null: "null"
        case .object: "an object"
        case .array: "an array"
        }
    }

    /// An executor's settings: the JSON object in ExecutorConfig.config_json
    /// (empty text: no settings).
    public static func settingsObject(_ json: String, executor: String) -> Result<[String: JSONValue], SettingsError> {
        let text = json.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty { return .success([:]) }
        do {
            return .success(try JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8)))
        } catch {
            return .failure(SettingsError("\(executor): its settings are not a JSON object: \(text)"))
        }
    }
}

/// A setting the plugin cannot use; `create` fails with the message.
public struct SettingsError: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}
