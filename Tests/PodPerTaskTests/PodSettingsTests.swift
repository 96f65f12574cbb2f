import PodPerTask
import Testing
import TrellisPluginKit

/// pod-per-task's settings: every key, and a clear error for bad ones.
@Suite struct PodSettingsTests {
    func parse(_ json: String) -> Result<PodSettings, SettingsError> { PodSettings.parse(json, executor: "pod-per-task") }

    @Test func defaultsAndEveryKey() throws {
        #expect(try parse("").get() == PodSettings())
        let settings = try parse("""
            {"api_server":"http://127.0.0.1:8001","token_file":"/run/token","namespace":"jobs","service_account":"runner",
             "image_pull_policy":"Always","run_as_user":50000,"extra_labels":{"team":"data"},"max_concurrent_creations":4,
             "startup_timeout_seconds":30,"cancel_grace_seconds":5,"log_wait_seconds":2,"kubeconfig":"/k","context":"dev"}
            """).get()
        #expect(settings.apiServer == "http://127.0.0.1:8001")
        #expect(settings.tokenFile == "/run/token")
        #expect(settings.namespace == "jobs")
        #expect(settings.serviceAccount == "runner")
        #expect(settings.imagePullPolicy == "Always")
        #expect(settings.runAsUser == 50000)
        #expect(settings.extraLabels == ["team": "data"])
        #expect(settings.maxConcurrentCreations == 4)
        #expect(settings.startupTimeoutSeconds == 30)
        #expect(settings.cancelGraceSeconds == 5)
        #expect(settings.logWaitSeconds == 2)
        #expect(settings.kubeconfig == "/k")
        #expect(settings.context == "dev")
        // From the environment, labels come as text.
        #expect(try parse(#"{"extra_labels":"team=data, tier=batch"}"#).get().extraLabels == ["team": "data", "tier": "batch"])
    }

    @Test(arguments: [
        (#"{"namespace":"Jobs_1"}"#, "setting 'namespace' must be a namespace name"),
        (#"{"max_concurrent_creations":0}"#, "setting 'max_concurrent_creations' must be a whole number from 1 to 1000, got the number 0"),
        (#"{"image_pull_policy":"sometimes"}"#, "must be Always, IfNotPresent or Never"),
        (#"{"api_server":"127.0.0.1:8001"}"#, "must be an http:// or https:// URL"),
        (#"{"extra_labels":{"team":"data science"}}"#, "label \"team\" has the value \"data science\""),
        (#"{"run_as_user":true}"#, "setting 'run_as_user' must be a user id, 0 or more, got true"),
        (#"{"namespaces":"jobs"}"#, "unknown setting 'namespaces' (known: api_server"),
        ("[1]", "its settings are not a JSON object"),
    ])
    func badSettingsSayWhichAndWhy(json: String, expected: String) {
        guard case .failure(let error) = parse(json) else { Issue.record("\(json) was accepted"); return }
        #expect(error.message.hasPrefix("pod-per-task: "))
        #expect(error.message.contains(expected), "\(error.message)")
    }
}
