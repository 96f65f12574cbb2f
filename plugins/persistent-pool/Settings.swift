import TrellisPluginKit

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
        let object: [String: JSONValue]
        switch JSONValue.settingsObject(json, executor: executor) {
        case .success(let parsed): object = parsed
        case .failure(let error): return .failure(error)
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
