import Foundation
import TrellisCore

/// Settings the rendered containers give the processes, read the way the
/// processes read them (environment, else their defaults).
enum Settings {
    /// `TRELLIS__EXECUTOR__<NAME>__<KEY>`, as trellisd spells executor
    /// settings (docs/configuration.md).
    static func executorVariable(_ executor: String, _ key: String) -> String {
        "TRELLIS__EXECUTOR__\(executor.uppercased().replacingOccurrences(of: "-", with: "_"))__\(key.uppercased())"
    }

    /// scaled-pool's defaults, from the contract the executor is written to
    /// (its settings' defaults match deploy/keda's ScaledObject).
    static let scaledPoolDefaults: [String: String] = [
        "deployment": "trellis-worker", "agent_pool": "scaled", "min_replicas": "0", "max_replicas": "10",
        "tasks_per_worker": "4", "polling_interval_seconds": "10", "cooldown_seconds": "30", "autoscale": "true",
    ]

    /// persistent-pool's default pool (docs/executors.md).
    static let persistentPoolDefaults: [String: String] = ["agent_pool": "default"]

    static func scaledPool(_ trellisd: Container, _ key: String) -> String {
        trellisd.envValue(executorVariable("scaled-pool", key)) ?? scaledPoolDefaults[key]!
    }

    static func persistentPool(_ trellisd: Container, _ key: String) -> String {
        trellisd.envValue(executorVariable("persistent-pool", key)) ?? persistentPoolDefaults[key]!
    }

    /// trellisd's `parallelism` (default 32).
    static func parallelism(_ trellisd: Container) -> Int {
        trellisd.envValue("TRELLIS_PARALLELISM").flatMap(Int.init) ?? 32
    }

    /// An agent duration setting in milliseconds (the agent's own parser).
    static func agentMillis(_ agent: Container, _ variable: String, default defaultMillis: Int64) throws -> Int64 {
        guard let text = agent.envValue(variable) else { return defaultMillis }
        return try DurationText.millis(text)
    }

    /// The agent's slots (default 4).
    static func agentSlots(_ agent: Container) -> Int {
        agent.envValue("TRELLIS_AGENT_SLOTS").flatMap(Int.init) ?? 4
    }
}
