public import TrellisPluginKit

/// scaled-pool's own settings (next to the dispatching ones of
/// PoolSettings, whose `agent_pool` defaults to `scaled` here): the worker
/// Deployment it sizes and how, and how to reach the Kubernetes API.
/// Defaults are the seed ScaledObject's (polling 10 s, cooldown 30 s, max
/// 10), min 0 and 4 tasks per worker.
public struct ScalerSettings: Sendable, Equatable {
    public var deployment = "trellis-worker"
    /// Empty: the kubeconfig context's or the Pod's own namespace.
    public var namespace = ""
    public var minReplicas = 0
    public var maxReplicas = 10
    public var tasksPerWorker = 4
    public var pollingIntervalSeconds = 10
    public var cooldownSeconds = 30
    /// false: only dispatch; the Deployment's size is left to KEDA or a person.
    public var autoscale = true
    public var apiServer = ""
    public var tokenFile = ""
    public var kubeconfig = ""
    public var context = ""

    public init() {}

    public static let keys = [
        "api_server", "autoscale", "context", "cooldown_seconds", "deployment", "kubeconfig", "max_replicas", "min_replicas",
        "namespace", "polling_interval_seconds", "tasks_per_worker", "token_file",
    ]

    public var autoscalerConfiguration: Autoscaler.Configuration {
        Autoscaler.Configuration(
            minReplicas: minReplicas, maxReplicas: maxReplicas, tasksPerWorker: tasksPerWorker,
            pollingIntervalSeconds: pollingIntervalSeconds, cooldownSeconds: cooldownSeconds)
    }

    /// Reads this struct's keys of `object` (the rest are PoolSettings').
    public static func parse(_ object: [String: JSONValue], executor: String) -> Result<ScalerSettings, SettingsError> {
        var settings = ScalerSettings()
        for key in object.keys.sorted() where keys.contains(key) {
            let value = object[key]!
            func wrong(_ expected: String) -> Result<ScalerSettings, SettingsError> {
                .failure(SettingsError("\(executor): setting '\(key)' must be \(expected), got \(value)"))
            }
            func text() -> String? {
                switch value {
                case .string(let text): text.trimmingCharacters(in: .whitespaces)
                case .integer(let number): String(number)
                default: nil
                }
            }
            func whole(_ range: ClosedRange<Int64>) -> Int? {
                guard case .integer(let number) = value, range.contains(number) else { return nil }
                return Int(number)
            }
            switch key {
            case "deployment":
                guard let name = text(), isDNSLabel(name) else { return wrong("a Deployment name (lowercase letters, digits and '-')") }
                settings.deployment = name
            case "namespace":
                guard let name = text(), isDNSLabel(name) else { return wrong("a namespace name (lowercase letters, digits and '-')") }
                settings.namespace = name
            case "min_replicas": guard let number = whole(0...1000) else { return wrong("a whole number from 0 to 1000") }; settings.minReplicas = number
            case "max_replicas": guard let number = whole(1...1000) else { return wrong("a whole number from 1 to 1000") }; settings.maxReplicas = number
            case "tasks_per_worker": guard let number = whole(1...10_000) else { return wrong("a whole number from 1 to 10000") }; settings.tasksPerWorker = number
            case "polling_interval_seconds": guard let number = whole(1...3600) else { return wrong("a whole number of seconds from 1 to 3600") }; settings.pollingIntervalSeconds = number
            case "cooldown_seconds": guard let number = whole(0...86_400) else { return wrong("a whole number of seconds from 0 to 86400") }; settings.cooldownSeconds = number
            case "autoscale":
                switch value {
                case .boolean(let flag): settings.autoscale = flag
                case .string("true"): settings.autoscale = true
                case .string("false"): settings.autoscale = false
                default: return wrong("true or false")
                }
            case "api_server":
                guard let url = text(), url.hasPrefix("http://") || url.hasPrefix("https://") else { return wrong("an http:// or https:// URL") }
                settings.apiServer = url
            case "token_file": guard let path = text() else { return wrong("a file path") }; settings.tokenFile = path
            case "kubeconfig": guard let path = text() else { return wrong("a file path") }; settings.kubeconfig = path
            case "context": guard let name = text() else { return wrong("a context name") }; settings.context = name
            default: break
            }
        }
        if settings.minReplicas > settings.maxReplicas {
            return .failure(SettingsError("\(executor): min_replicas (\(settings.minReplicas)) is above max_replicas (\(settings.maxReplicas))"))
        }
        return .success(settings)
    }

    private static func isDNSLabel(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 63, let first = text.first, let last = text.last else { return false }
        func ok(_ c: Character) -> Bool { c.isASCII && (c.isLowercase || c.isNumber) }
        return ok(first) && ok(last) && text.allSatisfy { ok($0) || $0 == "-" }
    }
}
