import Foundation
import Testing
import TrellisTestSupport

/// The real `trellis` binary against a real `trellisd serve` and a real
/// `trellisd standalone` (c-instant as the default executor, for
/// deterministic failures and long tasks): every verb, every output format,
/// every exit code, settings from the environment and from the config file.
@Suite struct CLITests {
    /// Runs `trellis` with a clean environment: no TRELLIS_* of the caller,
    /// HOME and XDG_CONFIG_HOME in a scratch area, no colour, 80 columns.
    struct CLI {
        var environment: [String: String]

        init(environment: [String: String]) {
            self.environment = environment
        }

        init(scratch: URL, address: String? = nil, token: String? = nil) throws {
            var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TRELLIS_") }
            environment["HOME"] = scratch.appendingPathComponent("home").path
            environment["XDG_CONFIG_HOME"] = scratch.appendingPathComponent("xdg-empty").path
            environment["NO_COLOR"] = "1"
            environment["COLUMNS"] = "80"
            if let address { environment["TRELLIS_ADDRESS"] = address }
            if let token { environment["TRELLIS_TOKEN"] = token }
            self.environment = environment
        }

        /// Runs under timeout(1): a verb that hangs fails the test (124)
        /// instead of hanging the suite.
        func callAsFunction(_ arguments: String..., environment extra: [String: String] = [:]) async throws -> ChildProcess.Result {
            try await ChildProcess.run(
                "/usr/bin/timeout", ["180", try ChildProcess.builtProduct("trellis")] + arguments,
                environment: environment.merging(extra) { $1 })
        }
    }

    static func write(_ text: String, to directory: URL, as name: String) throws -> String {
        let path = directory.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Every line at most 80 characters.
    static func fits(_ text: String) -> Bool { text.split(separator: "\n").allSatisfy { $0.count <= 80 } }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object: \(text)")
    }

    @Test func everyVerbEveryFormatAndEveryExitCode() async throws {
        try await ServedControlPlane.with { served, _ in
            let trellisd = try await served.start(name: "cli")
            let address = "127.0.0.1:\(try ServedControlPlane.ports(of: trellisd).rpc)"
            let admin = try String(contentsOfFile: served.adminTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            try await Self.everyVerb(address: address, admin: admin, scratch: served.scratch, agents: 0)
        }
    }

    /// The same against `trellisd standalone` (its embedded PostgreSQL and
    /// local agent), with c-instant added to its executors for the tests'
    /// deterministic failures and long tasks.
    @Test func everyVerbEveryFormatAndEveryExitCodeOnStandalone() async throws {
        try await StandaloneFixture.with { fixture in
            let plugins = fixture.scratch + "/plugins"
            try FileManager.default.createDirectory(atPath: plugins, withIntermediateDirectories: true)
            for plugin in ["libtrellis-executor-c-instant.so", "libtrellis-executor-persistent-pool.so"] {
                try FileManager.default.createSymbolicLink(atPath: plugins + "/" + plugin, withDestinationPath: try ChildProcess.builtProduct(plugin))
            }
            let standalone = try await fixture.start(extra: ["--plugin-dirs", plugins, "--default-executor", "c-instant"])
            let admin = try String(contentsOfFile: fixture.data + "/admin-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let scratch = URL(fileURLWithPath: fixture.scratch).appendingPathComponent("cli")
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
            try await Self.everyVerb(address: "127.0.0.1:\(try fixture.rpcPort(standalone))", admin: admin, scratch: scratch, agents: 1)
        }
    }

    /// `agents`: how many agents the control plane has (standalone: its local one).
    static func everyVerb(address: String, admin: String, scratch: URL, agents: Int) async throws {
        let trellis = try CLI(scratch: scratch, address: address, token: admin)
        let files = scratch

        // status, in every format.
        var result = try await trellis("status")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("your role:  admin"), "\(result.stdout)")
        result = try await trellis("status", "-o", "json")
        #expect(try Self.json(result.stdout)["caller_role"] as? String == "admin")
        result = try await trellis("status", "--output", "yaml")
        #expect(result.stdout.contains("caller_role: admin"), "\(result.stdout)")

        // submit: one bad file means nothing is submitted (2), with file:line:col.
        let chain = try Self.write("""
            dag_id: chain
            description: Extract, transform, load.
            default_args: {executor: c-instant, executor_config: {delay_ms: 50}}
            tasks:
              - {task_id: extract}
              - {task_id: transform, upstream: [extract]}
              - {task_id: audit, upstream: [extract]}
              - {task_id: load, upstream: [transform, audit]}
            """, to: files, as: "chain.yaml")
        let bad = try Self.write("""
            dag_id: broken
            tasks:
              - {task_id: a, retires: 2}
              - {task_id: b, upstream: [nope]}
            """, to: files, as: "bad.yaml")
        result = try await trellis("dags", "submit", chain, bad)
        #expect(result.status == 2)
        #expect(result.stderr.contains("bad.yaml:3:"), "\(result.stderr)")
        #expect(result.stderr.contains("did you mean 'retries'"), "\(result.stderr)")
        #expect(result.stderr.contains("nothing submitted"), "\(result.stderr)")
        result = try await trellis("dags", "list", "-o", "json")
        #expect((try Self.json(result.stdout)["dags"] as? [Any])?.isEmpty == true, "\(result.stdout)")

        let failing = try Self.write("""
            dag_id: failing
            default_args: {executor: c-instant, executor_config: {}}
            tasks:
              - {task_id: bad, executor_config: {fail_until_try: 9, exit_code: 3}}
              - {task_id: after, upstream: [bad]}
            """, to: files, as: "failing.yaml")
        let slow = try Self.write("""
            dag_id: slow
            default_args: {executor: c-instant, executor_config: {}}
            tasks:
              - {task_id: sleepy, executor_config: {delay_ms: 600000}}
            """, to: files, as: "slow.yaml")
        result = try await trellis("dags", "submit", "--paused", chain, failing, slow)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("dag chain stored as version 1, 4 tasks"), "\(result.stdout)")
        result = try await trellis("dags", "submit", chain)
        #expect(result.stdout.contains("dag chain unchanged (version 1)"), "\(result.stdout)")

        // dags list / show in every format.
        result = try await trellis("dags", "list")
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("DAG "), "\(result.stdout)")
        #expect(result.stdout.contains("chain") && result.stdout.contains("yes"), "\(result.stdout)")
        #expect(Self.fits(result.stdout))
        result = try await trellis("dags", "list", "-o", "yaml")
        #expect(result.stdout.contains("- dag_id: chain"), "\(result.stdout)")
        result = try await trellis("dags", "show", "chain")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("├── transform"), "\(result.stdout)")
        #expect(result.stdout.contains("│   └── load"), "\(result.stdout)")
        #expect(result.stdout.contains("└── audit"), "\(result.stdout)")
        #expect(result.stdout.components(separatedBy: "└── load  (c-instant; after transform, audit)").count == 3, "\(result.stdout)")
        result = try await trellis("dags", "show", "chain", "-o", "json")
        let shown = try Self.json(result.stdout)
        #expect((shown["spec"] as? [String: Any])?["dag_id"] as? String == "chain")
        result = try await trellis("dags", "show", "chain", "-o", "yaml")
        #expect(result.stdout.contains("version: 1"), "\(result.stdout)")
        result = try await trellis("dags", "show", "chian")
        #expect(result.status == 2)
        #expect(result.stderr.contains("did you mean 'chain'"), "\(result.stderr)")

        // pause / unpause.
        result = try await trellis("dags", "pause", "chain")
        #expect(result.stdout.contains("paused (it already was)"), "\(result.stdout)")
        result = try await trellis("dags", "unpause", "chain")
        #expect(result.status == 0)
        #expect(result.stdout == "dag chain unpaused\n", "\(result.stdout)")

        // trigger --wait: 0 for a run that succeeds, 1 for one that fails.
        result = try await trellis("dags", "trigger", "chain", "--conf", #"{"table": "orders"}"#, "--wait")
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stdout.contains("triggered chain run manual__"), "\(result.stdout)")
        #expect(result.stdout.contains("load success"), "plain lines, not a redrawn bar: \(result.stdout)")
        #expect(result.stdout.contains(" success in "), "\(result.stdout)")
        result = try await trellis("dags", "trigger", "slow", "--logical-date", "2024-04-01")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("DAG slow is paused, so the run stays queued"), "\(result.stderr)")
        result = try await trellis("dags", "unpause", "failing")
        result = try await trellis("dags", "trigger", "failing", "--logical-date", "2024-05-01", "--wait")
        #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
        #expect(result.stderr.contains("failed tasks: bad"), "\(result.stderr)")
        #expect(result.stderr.contains("trellis tasks logs failing manual__2024-05-01T00:00:00+00:00 bad"), "\(result.stderr)")
        result = try await trellis("dags", "trigger", "failing", "--logical-date", "2024-05-01T00:00:00Z", "-o", "json")
        #expect(try Self.json(result.stdout)["created"] as? Bool == false, "\(result.stdout)")

        // runs list / show / watch.
        result = try await trellis("runs", "list")
        #expect(result.status == 0)
        #expect(result.stdout.contains("chain") && result.stdout.contains("failing"), "\(result.stdout)")
        #expect(Self.fits(result.stdout), "\(result.stdout)")
        result = try await trellis("runs", "list", "--dag", "chain", "--state", "success", "-o", "json")
        let runs = try #require(try Self.json(result.stdout)["runs"] as? [[String: Any]])
        #expect(runs.count == 1)
        let chainRun = try #require(runs.first?["run_id"] as? String)
        #expect(runs.first?["conf_json"] as? String == #"{"table": "orders"}"#)
        result = try await trellis("runs", "list", "--state", "failed", "-o", "yaml")
        #expect(result.stdout.contains("dag_id: failing") && !result.stdout.contains("dag_id: chain"), "\(result.stdout)")
        result = try await trellis("runs", "list", "--state", "done")
        #expect(result.status == 2)
        result = try await trellis("runs", "show", "chain", chainRun)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("TASK") && result.stdout.contains("c-instant"), "\(result.stdout)")
        #expect(Self.fits(result.stdout), "\(result.stdout)")
        result = try await trellis("runs", "show", "failing", "latest")
        #expect(result.stdout.contains("failed as config"), "\(result.stdout)")
        #expect(result.stdout.contains("upstream_failed"), "\(result.stdout)")
        result = try await trellis("runs", "show", "chain", "latest", "-o", "json")
        let grid = try Self.json(result.stdout)
        #expect((grid["tasks"] as? [[String: Any]])?.map { $0["state"] as? String } == ["success", "success", "success", "success"])
        result = try await trellis("runs", "show", "chain", "latest", "-o", "yaml")
        #expect(result.stdout.contains("task_id: extract"), "\(result.stdout)")
        result = try await trellis("runs", "show", "chain", "manual__nope")
        #expect(result.status == 2)
        #expect(result.stderr.contains("does not exist"), "\(result.stderr)")
        result = try await trellis("runs", "watch", "chain", "latest")
        #expect(result.status == 0, "\(result.stderr)")
        result = try await trellis("runs", "watch", "failing", "latest")
        #expect(result.status == 1)

        // tasks logs / mark / clear.
        result = try await trellis("tasks", "logs", "chain", "latest", "extract")
        #expect(result.status == 0, "\(result.stderr)")
        result = try await trellis("tasks", "logs", "chain", "latest", "extract", "--try", "7")
        #expect(result.status == 2, "\(result.stderr)")
        result = try await trellis("tasks", "mark", "failing", "latest", "bad", "success")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "task bad marked success\n", "\(result.stdout)")
        result = try await trellis("tasks", "clear", "failing", "latest", "bad", "--downstream")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("cleared 2 task instances: "), "\(result.stdout)")
        result = try await trellis("tasks", "mark", "failing", "latest", "bad", "maybe")
        #expect(result.status == 2)

        // cancel a run in flight.
        result = try await trellis("dags", "unpause", "slow")
        result = try await trellis("dags", "trigger", "slow")
        #expect(result.status == 0, "\(result.stderr)")
        result = try await trellis("runs", "cancel", "slow", "latest")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("failed;"), "\(result.stdout)")

        // agents and executors.
        result = try await trellis("agents", "list")
        #expect(result.status == 0)
        if agents == 0 {
            #expect(result.stdout.contains("No agents"), "\(result.stdout)")
        } else {
            #expect(result.stdout.contains("default") && Self.fits(result.stdout), "\(result.stdout)")
        }
        result = try await trellis("agents", "list", "-o", "json")
        #expect((try Self.json(result.stdout)["agents"] as? [Any])?.count == agents)
        result = try await trellis("executors", "list")
        #expect(result.stdout.contains("c-instant") && result.stdout.contains("persistent-pool"), "\(result.stdout)")
        #expect(Self.fits(result.stdout))
        result = try await trellis("executors", "list", "-o", "yaml")
        #expect(result.stdout.contains("- name: c-instant"), "\(result.stdout)")

        // tokens, roles and revocation.
        result = try await trellis("tokens", "create", "watcher", "--role", "viewer")
        #expect(result.status == 0, "\(result.stderr)")
        let secret = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!secret.isEmpty && !secret.contains(" "))
        result = try await trellis("tokens", "list")
        #expect(result.stdout.contains("watcher") && result.stdout.contains("viewer"), "\(result.stdout)")
        result = try await trellis("tokens", "list", "-o", "json")
        #expect((try Self.json(result.stdout)["tokens"] as? [[String: Any]])?.contains { $0["name"] as? String == "watcher" } == true)
        result = try await trellis("dags", "list", environment: ["TRELLIS_TOKEN": secret])
        #expect(result.status == 0, "\(result.stderr)")
        result = try await trellis("dags", "delete", "chain", environment: ["TRELLIS_TOKEN": secret])
        #expect(result.status == 3)
        #expect(result.stderr.contains("requires the admin role"), "\(result.stderr)")
        let tokenFile = try Self.write(secret + "\n", to: files, as: "viewer.token")
        result = try await trellis("status", "--token-file", tokenFile)
        #expect(result.stdout.contains("your role:  viewer"), "\(result.stdout)")
        result = try await trellis("tokens", "revoke", "watcher")
        #expect(result.status == 0, "\(result.stderr)")
        result = try await trellis("status", environment: ["TRELLIS_TOKEN": secret])
        #expect(result.status == 3)
        #expect(result.stderr.contains("the API token from TRELLIS_TOKEN was refused"), "\(result.stderr)")

        // delete.
        result = try await trellis("dags", "delete", "chain")
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "dag chain deleted with 1 run\n", "\(result.stdout)")

        // 3: nothing listening; 2: usage errors.
        result = try await trellis("status", "--address", "127.0.0.1:1")
        #expect(result.status == 3)
        #expect(result.stderr.contains("cannot reach trellisd at 127.0.0.1:1: connection refused"), "\(result.stderr)")
        result = try await trellis("dags", "list", "--bogus")
        #expect(result.status == 2)
        result = try await trellis("dags", "trigger", "slow", "--logical-date", "tomorrow")
        #expect(result.status == 2)

        // The config file, and flags over it.
        let xdg = scratch.appendingPathComponent("xdg")
        try FileManager.default.createDirectory(at: xdg.appendingPathComponent("trellis"), withIntermediateDirectories: true)
        _ = try Self.write("address: \(address)\ntoken: \(admin)\n", to: xdg.appendingPathComponent("trellis"), as: "config.yaml")
        let fromFile = try CLI(scratch: scratch)
        result = try await fromFile("status", environment: ["XDG_CONFIG_HOME": xdg.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("trellisd ") && result.stdout.contains(" at \(address)"), "\(result.stdout)")
        result = try await fromFile("status", "--address", "127.0.0.1:1", environment: ["XDG_CONFIG_HOME": xdg.path])
        #expect(result.status == 3)
        result = try await fromFile("status", environment: ["XDG_CONFIG_HOME": xdg.path, "TRELLIS_TOKEN": "wrong"])
        #expect(result.status == 3)
        result = try await fromFile("status")
        #expect(result.status == 3, "no config file, no server on the default address")
    }

    @Test func logsAndAgentsOfARealAgent() async throws {
        try await ServedControlPlane.with { served, _ in
            let trellisd = try await served.start(name: "cli-agent")
            _ = try await served.startAgent("agent-cli", on: trellisd, labels: ["zone": "a"])
            let address = "127.0.0.1:\(try ServedControlPlane.ports(of: trellisd).rpc)"
            let admin = try String(contentsOfFile: served.adminTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let trellis = try CLI(scratch: served.scratch, address: address, token: admin)
            let file = try Self.write("""
                dag_id: talk
                default_args: {executor: persistent-pool}
                tasks:
                  - {task_id: hello, command: [sh, -c, "echo hello from {{ run_id }}; echo oops >&2"]}
                """, to: served.scratch, as: "talk.yaml")
            var result = try await trellis("dags", "submit", file)
            #expect(result.status == 0, "\(result.stderr)")
            result = try await trellis("dags", "trigger", "talk", "--wait")
            #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
            result = try await trellis("tasks", "logs", "talk", "latest", "hello")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("hello from manual__"), "\(result.stdout)")
            #expect(result.stdout.contains("oops"), "\(result.stdout)")
            result = try await trellis("tasks", "logs", "talk", "latest", "hello", "--try", "1", "--follow")
            #expect(result.stdout.contains("hello from manual__"), "\(result.stdout)")
            result = try await trellis("runs", "show", "talk", "latest")
            #expect(result.stdout.contains("agent-cli"), "\(result.stdout)")
            result = try await trellis("agents", "list")
            #expect(result.stdout.contains("agent-cli") && result.stdout.contains("ready") && result.stdout.contains("zone=a"), "\(result.stdout)")
            result = try await trellis("agents", "list", "-o", "yaml")
            #expect(result.stdout.contains("- name: agent-cli"), "\(result.stdout)")
        }
    }

    @Test func helpTextSnapshots() async throws {
        let scratch = FileManager.default.temporaryDirectory
        let trellis = try CLI(scratch: scratch)
        for (arguments, name) in [
            (["--help"], "help-trellis.txt"),
            (["dags", "--help"], "help-dags.txt"),
            (["dags", "submit", "--help"], "help-dags-submit.txt"),
            (["dags", "trigger", "--help"], "help-dags-trigger.txt"),
            (["runs", "--help"], "help-runs.txt"),
            (["runs", "show", "--help"], "help-runs-show.txt"),
            (["tasks", "logs", "--help"], "help-tasks-logs.txt"),
            (["tokens", "--help"], "help-tokens.txt"),
            (["pools", "--help"], "help-pools.txt"),
            (["pools", "set", "--help"], "help-pools-set.txt"),
        ] {
            let result = try await ChildProcess.run(try ChildProcess.builtProduct("trellis"), arguments, environment: trellis.environment)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            expectSnapshot(result.stdout, named: name)
        }
        for shell in ["bash", "zsh", "fish"] {
            let result = try await trellis("--generate-completion-script", shell)
            #expect(result.status == 0)
            #expect(result.stdout.contains("trellis") && result.stdout.contains("dags"), "\(shell)")
        }
    }
}
