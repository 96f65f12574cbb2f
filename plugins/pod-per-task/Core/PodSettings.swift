public import TrellisPluginKit

/// pod-per-task's settings: the JSON object from the configuration file's
/// `executors: pod-per-task:` section or `TRELLIS__EXECUTOR__POD_PER_TASK__*`
/// variables. docs/executors.md lists them; an unknown key or a wrong type
/// makes `create` fail naming the key.
public struct PodSettings: Sendable, Equatable {
    // How to reach the API.
    /// A kubeconfig file; empty: in-cluster when running in a Pod, else
    /// KUBECONFIG or ~/.kube/config.
    public var kubeconfig = ""
    /// The kubeconfig context; empty: its current-context.
    public var context = ""
    /// An API server URL used as is, without the kubeconfig (the simulator,
    /// `kubectl proxy`); with `token_file` if it needs a token.
    public var apiServer = ""
    public var tokenFile = ""

    // Pod defaults (a task's own fields win).
    /// Empty: the kubeconfig context's or the Pod's own namespace, else "default".
    public var namespace = ""
    public var serviceAccount = ""
    public var imagePullPolicy = ""
    /// nil: the image's user.
    public var runAsUser: Int?
    public var extraLabels: [String: String] = [:]

    // Behaviour.
    /// Pod creations in flight at once.
    public var maxConcurrentCreations = 16
    /// A task's startup_timeout_seconds when it gives none.
    public var startupTimeoutSeconds = 120
    /// Grace period (SIGTERM to SIGKILL) for pods of cancelled tasks.
    public var cancelGraceSeconds = 30
    /// How long to wait, after a pod ended, for its followed log to end
    /// before reading the log whole instead.
    public var logWaitSeconds = 10

    public init() {}

    static let keys = [
        "api_server", "cancel_grace_seconds", "context", "extra_labels", "image_pull_policy", "kubeconfig",
        "log_wait_seconds", "max_concurrent_creations", "namespace", "run_as_user", "service_account",
        "startup_timeout_seconds", "token_file",
    ]

    /// From the settings' JSON text.
    public static func parse(_ json: String, executor: String) -> Result<PodSettings, SettingsError> {
        JSONValue.settingsObject(json, executor: executor).flatMap { parse($0, executor: executor) }
    }

    public static func parse(_ object: [String: JSONValue], executor: String) -> Result<PodSettings, SettingsError> {
        var settings = PodSettings()
        for key in object.keys.sorted() {
            let value = object[key]!
            func text() -> String? {
                switch value {
                case .string(let text): text.trimmingCharacters(in: .whitespaces)
                case .integer(let number): String(number)
                default: nil
                }
            }
            func wrong(_ expected: String) -> Result<PodSettings, SettingsError> {
                .failure(SettingsError("\(executor): setting '\(key)' must be \(expected), got \(value)"))
            }
            func whole(_ range: ClosedRange<Int64>) -> Int? {
                guard case .integer(let number) = value, range.contains(number) else { return nil }
                return Int(number)
            }
            switch key {
            case "kubeconfig": guard let text = text() else { return wrong("a file path") }; settings.kubeconfig = text
            case "context": guard let text = text() else { return wrong("a context name") }; settings.context = text
            case "api_server":
                guard let text = text(), text.hasPrefix("http://") || text.hasPrefix("https://") else {
                    return wrong("an http:// or https:// URL")
                }
                settings.apiServer = text
            case "token_file": guard let text = text() else { return wrong("a file path") }; settings.tokenFile = text
            case "namespace":
                guard let text = text(), PodNames.isDNSLabel(text) else { return wrong("a namespace name (a DNS label: lowercase letters, digits and '-')") }
                settings.namespace = text
            case "service_account": guard let text = text() else { return wrong("a ServiceAccount name") }; settings.serviceAccount = text
            case "image_pull_policy":
                guard let text = text(), ["Always", "IfNotPresent", "Never"].contains(text) else { return wrong("Always, IfNotPresent or Never") }
                settings.imagePullPolicy = text
            case "run_as_user": guard let number = whole(0...2_147_483_647) else { return wrong("a user id, 0 or more") }; settings.runAsUser = number
            case "extra_labels":
                switch value {
                case .object(let labels):
                    var parsed: [String: String] = [:]
                    for (name, label) in labels {
                        guard case .string(let text) = label else { return wrong("an object of string values") }
                        parsed[name] = text
                    }
                    settings.extraLabels = parsed
                case .string(let text):
                    // From the environment: "team=data,tier=batch".
                    for pair in text.split(separator: ",") {
                        let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                        guard parts.count == 2, !parts[0].isEmpty else { return wrong("key=value pairs separated by commas") }
                        settings.extraLabels[parts[0]] = parts[1]
                    }
                default: return wrong("an object of labels or \"key=value,...\"")
                }
                for (name, label) in settings.extraLabels {
                    if let problem = PodNames.labelProblem(name: name, value: label) {
                        return .failure(SettingsError("\(executor): setting 'extra_labels': \(problem)"))
                    }
                }
            case "max_concurrent_creations": guard let number = whole(1...1000) else { return wrong("a whole number from 1 to 1000") }; settings.maxConcurrentCreations = number
            case "startup_timeout_seconds": guard let number = whole(1...86_400) else { return wrong("a whole number of seconds from 1 to 86400") }; settings.startupTimeoutSeconds = number
            case "cancel_grace_seconds": guard let number = whole(0...3600) else { return wrong("a whole number of seconds from 0 to 3600") }; settings.cancelGraceSeconds = number
            case "log_wait_seconds": guard let number = whole(0...600) else { return wrong("a whole number of seconds from 0 to 600") }; settings.logWaitSeconds = number
            default:
                return .failure(SettingsError("\(executor): unknown setting '\(key)' (known: \(keys.joined(separator: ", ")))"))
            }
        }
        return .success(settings)
    }
}
