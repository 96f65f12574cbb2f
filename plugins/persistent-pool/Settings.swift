#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The executor's settings: the JSON object in ExecutorConfig.config_json,
/// from the configuration file's `executors: persistent-pool:` section or
/// `TRELLIS__EXECUTOR__PERSISTENT_POOL__<KEY>` variables (where `true`,
/// `false` and integers arrive as JSON literals). docs/executors.md lists
/// them; an unknown key or a wrong type makes `create` fail naming the key.
struct Settings: Sendable, Equatable {
    /// Agents whose AgentState.pool equals this take the executor's tasks.
    var agentPool = "default"
    /// How long an adopted attempt without an agent waits for an agent to
    /// report it running before it is dispatched again.
    var adoptGraceSeconds: Int64 = 45
    /// How long queued tasks wait without any agent that could ever take
    /// them before a warning is logged (once per selector).
    var noAgentWarningSeconds: Int64 = 60

    static let keys = ["adopt_grace_seconds", "agent_pool", "no_agent_warning_seconds"]

    static func parse(_ json: String, executor: String) -> Result<Settings, SettingsError> {
        var settings = Settings()
        let text = json.trimmingSpaces
        if text.isEmpty { return .success(settings) }
        let object: [String: JSONValue]
        do {
            object = try JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8))
        } catch {
            return .failure(SettingsError("\(executor): its settings are not a JSON object: \(text)"))
        }
        for key in object.keys.sorted() {
            let value = object[key]!
            switch key {
            case "agent_pool":
                switch value {
                case .string(let name) where !name.trimmingSpaces.isEmpty: settings.agentPool = name.trimmingSpaces
                // TRELLIS__EXECUTOR__..._AGENT_POOL=7 arrives as the literal 7.
                case .integer(let number): settings.agentPool = String(number)
                default: return .failure(SettingsError("\(executor): setting 'agent_pool' must be a non-empty pool name, got \(value)"))
                }
            case "adopt_grace_seconds":
                guard case .integer(let seconds) = value, seconds >= 0 else {
                    return .failure(SettingsError("\(executor): setting 'adopt_grace_seconds' must be a whole number of seconds, 0 or more, got \(value)"))
                }
                settings.adoptGraceSeconds = seconds
            case "no_agent_warning_seconds":
                guard case .integer(let seconds) = value, seconds >= 1 else {
                    return .failure(SettingsError("\(executor): setting 'no_agent_warning_seconds' must be a whole number of seconds, 1 or more, got \(value)"))
                }
                settings.noAgentWarningSeconds = seconds
            default:
                return .failure(SettingsError("\(executor): unknown setting '\(key)' (known: \(keys.joined(separator: ", ")))"))
            }
        }
        return .success(settings)
    }
}

struct SettingsError: Error, Sendable {
    var message: String
    init(_ message: String) { self.message = message }
}

/// One JSON value, keeping apart what JSONSerialization would blur
/// (true is not 1).
enum JSONValue: Decodable, Sendable, CustomStringConvertible {
    case string(String)
    case integer(Int64)
    case number(Double)
    case boolean(Bool)
    case null
    case structured

    init(from decoder: any Decoder) throws {
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
        } else {
            self = .structured
        }
    }

    var description: String {
        switch self {
        case .string(let text): "the string \"\(text)\""
        case .integer(let number): "the number \(number)"
        case .number(let number): "the number \(number)"
        case .boolean(let flag): "\(flag)"
        case .null: "null"
        case .structured: "an object or array"
        }
    }
}
