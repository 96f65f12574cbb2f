public import TrellisPluginKit

/// The dispatching settings of an agent-pool executor (persistent-pool,
/// scaled-pool): part of the JSON object in ExecutorConfig.config_json, from
/// the configuration file's `executors: NAME:` section or
/// `TRELLIS__EXECUTOR__<NAME>__<KEY>` variables (where `true`, `false` and
/// integers arrive as JSON literals). docs/executors.md lists them; an
/// unknown key or a wrong type makes `create` fail naming the key.
public struct PoolSettings: Sendable, Equatable {
    /// Agents whose AgentState.pool equals this take the executor's tasks.
    public var agentPool = "default"
    /// How long an adopted attempt without an agent waits for an agent to
    /// report it running before it is dispatched again.
    public var adoptGraceSeconds: Int64 = 45
    /// How long queued tasks wait without any agent that could ever take
    /// them before a warning is logged (once per selector).
    public var noAgentWarningSeconds: Int64 = 60

    public init(agentPool: String = "default") {
        self.agentPool = agentPool
    }

    public static let keys = ["adopt_grace_seconds", "agent_pool", "no_agent_warning_seconds"]

    /// Reads the dispatching keys of `object`; keys in `otherKeys` belong to
    /// the caller and are skipped, any other is an error listing both.
    public static func parse(
        _ object: [String: JSONValue], executor: String, defaults: PoolSettings = PoolSettings(), otherKeys: [String] = []
    ) -> Result<PoolSettings, SettingsError> {
        var settings = defaults
        for key in object.keys.sorted() where !otherKeys.contains(key) {
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
                let known = (keys + otherKeys).sorted()
                return .failure(SettingsError("\(executor): unknown setting '\(key)' (known: \(known.joined(separator: ", ")))"))
            }
        }
        return .success(settings)
    }
}
