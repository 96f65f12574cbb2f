import Foundation
import Testing

@testable import TrellisControlPlane

@Suite struct ConfigurationTests {
    @Test func defaultsAreUsable() throws {
        let configuration = try ControlPlaneConfiguration.load()
        #expect(configuration.databaseURL == nil)
        #expect(configuration.rpcAddress.description == "0.0.0.0:7400")
        #expect(configuration.httpAddress.description == "0.0.0.0:7401")
        #expect(configuration.parallelism == 32)
        #expect(configuration.heartbeatTTLMillis == 30_000)
        #expect(configuration.taskQueuedTimeoutMillis == 600_000)
        #expect(configuration.defaultExecutor == "persistent-pool")
        #expect(configuration.logFormat == .text)
    }

    @Test func fileThenEnvironmentThenFlags() throws {
        let file = """
            database_url: postgresql://trellis@db:5432/trellis
            rpc_address: 127.0.0.1:9000
            parallelism: 8
            heartbeat_ttl: 10s
            plugin_dirs: [/opt/a, /opt/b]
            log_format: json
            executors:
              pod-per-task:
                namespace: jobs
                in_cluster: true
            """
        let configuration = try ControlPlaneConfiguration.load(
            file: (file, "trellisd.yaml"),
            environment: [
                "TRELLIS_PARALLELISM": "16",
                "TRELLIS_PLUGIN_DIRS": "/env/a:/env/b",
                "TRELLIS__EXECUTOR__POD_PER_TASK__NAMESPACE": "from-env",
                "TRELLIS__EXECUTOR__POD_PER_TASK__RUN_AS_USER": "50000",
                "TRELLIS__EXECUTOR__MY_BATCH__QUEUE": "nightly",
                "HOME": "/root",
            ],
            flags: ["parallelism": "4", "http-address": ":9100"]
        )
        #expect(configuration.databaseURL == "postgresql://trellis@db:5432/trellis")
        #expect(configuration.rpcAddress == ListenAddress(host: "127.0.0.1", port: 9000))
        #expect(configuration.httpAddress == ListenAddress(host: "0.0.0.0", port: 9100))
        #expect(configuration.parallelism == 4)
        #expect(configuration.heartbeatTTLMillis == 10_000)
        #expect(configuration.pluginDirectories == ["/env/a", "/env/b"])
        #expect(configuration.logFormat == .json)
        #expect(configuration.executorSettingsJSON(for: "pod-per-task") == #"{"in_cluster":true,"namespace":"from-env","run_as_user":50000}"#)
        #expect(configuration.executorSettingsJSON(for: "my-batch") == #"{"queue":"nightly"}"#)
        #expect(configuration.executorSettingsJSON(for: "scaled-pool") == "{}")
    }

    @Test func everyProblemFromEverySourceIsReported() {
        let file = """
            parallelizm: 8
            heartbeat_ttl: soon
            rpc_address: nowhere
            plugin_dirs: {a: b}
            """
        #expect {
            try ControlPlaneConfiguration.load(
                file: (file, "trellisd.yaml"),
                environment: ["TRELLIS_LOG_LEVEL": "loud", "TRELLIS_MAX_FRAME_BYTES": "12"],
                flags: ["no-such-flag": "1", "default-executor": "Bad_Name"]
            )
        } throws: { error in
            (error as? ConfigurationError)?.problems == [
                "trellisd.yaml:1:1: unknown setting 'parallelizm' (did you mean 'parallelism'?)",
                #"trellisd.yaml:2:1: heartbeat_ttl: "soon" is not a duration: expected a number at 'soon' (write 30s, 5m, 23h, 1d, 1h30m, or a number of seconds)"#,
                "trellisd.yaml:3:1: rpc_address: 'nowhere' is not host:port (example: 0.0.0.0:7400)",
                "trellisd.yaml:4:1: plugin_dirs: must be a list of strings, not a mapping",
                "environment TRELLIS_MAX_FRAME_BYTES: must be a whole number of at least 1024, not '12'",
                "environment TRELLIS_LOG_LEVEL: 'loud' is not one of trace, debug, info, notice, warning, error, critical",
                "flag --default-executor: 'Bad_Name' is not a valid RFC 1123 label: use lowercase letters, digits and '-', starting and ending with a letter or digit",
                "flag --no-such-flag: unknown setting",
            ]
        }
    }

    @Test func docsListEverySetting() throws {
        let docs = try String(contentsOf: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        for key in ConfigurationKey.all {
            #expect(docs.contains("`\(key.name)`") && docs.contains("`\(key.environmentVariable)`") && docs.contains("`\(key.flag)`"),
                    "docs/configuration.md does not document \(key.name)")
        }
    }
}
