import Foundation
import Testing
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisTestSupport
import TrellisWire

/// The real `trellisd serve` binary with the C test executor, against the
/// test PostgreSQL, driven through its client API: DAG shapes, retries and
/// every trigger rule end as Airflow's would; runs survive kill -9; two
/// replicas never schedule at once.
@Suite struct ServeCommandTests {
    /// A `start` task, then `fan` tasks downstream of it.
    static func fanOut(_ id: String, fan: Int, delayMillis: Int = 0, maxActiveTasks: Int = 16) -> String {
        var yaml = """
            dag_id: \(id)
            max_active_tasks: \(maxActiveTasks)
            default_args: {executor: c-instant, executor_config: {delay_ms: \(delayMillis)}}
            tasks:
              - {task_id: start}

            """
        for index in 0..<fan { yaml += "  - {task_id: t\(index), upstream: [start]}\n" }
        return yaml
    }

    @Test func shapesAndRetriesRunToSuccessThroughTheAPIAndTheOpsPortAnswers() async throws {
        try await ServedControlPlane.with { served, _ in
            let trellisd = try await served.start(name: "solo")
            let api = try await served.api(trellisd)
            let submitted = try await api.submit("""
                dag_id: shapes
                default_args: {executor: c-instant, retry_delay: 0s, executor_config: {}}
                tasks:
                  - {task_id: extract}
                  - {task_id: flaky, retries: 2, executor_config: {fail_until_try: 1, exit_code: 4}}
                  - {task_id: left}
                  - {task_id: right, executor_config: {delay_ms: 30}}
                  - {task_id: join}
                  - {task_id: c1}
                  - {task_id: c2}
                  - {task_id: c3}
                  - {task_id: w0}
                  - {task_id: w1}
                  - {task_id: w2}
                  - {task_id: w3}
                  - {task_id: done}
                dependencies:
                  - "extract >> flaky >> [left, right] >> join"
                  - "join >> c1 >> c2 >> c3"
                  - "c3 >> [w0, w1, w2, w3] >> done"
                """, file: "shapes.yaml")
            #expect(submitted.taskCount == 13)
            let runID = try await api.trigger("shapes")
            let end = try await api.waitForEnd("shapes", runID)
            #expect(end.run.state == .success, "\(trellisd.stderr)")
            let tries = Dictionary(uniqueKeysWithValues: end.tasks.map { ($0.taskID, $0.tryNumber) })
            #expect(tries["flaky"] == 2)
            #expect(tries.filter { $0.key != "flaky" }.values.allSatisfy { $0 == 1 })
            #expect(end.tasks.allSatisfy { $0.state == .success })
            // c-instant saw every try: flaky twice, the rest once.
            let executions = served.executions()
            #expect(executions.count == 14)
            #expect(executions.filter { $0 == "flaky" }.count == 2)

            // The ops port: alive, ready (it leads), and counting.
            let http = try ServedControlPlane.ports(of: trellisd).http
            #expect(try httpGet(port: http, path: "/healthz").status == 200)
            try await eventually("ready") { try httpGet(port: http, path: "/readyz").status == 200 }
            let metrics = try httpGet(port: http, path: "/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.body.contains("trellis_ti_successes_total{executor=\"c-instant\"} 13"), "\(metrics.body)")
            #expect(metrics.body.contains("trellis_leader 1"))

            await api.close()
            trellisd.signal(SIGTERM)
            #expect(await trellisd.wait() == 0, "\(trellisd.stderr)")
            #expect(trellisd.stderr.contains("shutting down"))
        }
    }

    @Test func theAdminTokenFileIsRegisteredAtStartAndABadOneStopsTheStart() async throws {
        try await ServedControlPlane.with { served, store in
            let file = served.scratch.appendingPathComponent("secret-admin-token").path
            let token = "trellis_" + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
            try Data("  \(token)\n".utf8).write(to: URL(fileURLWithPath: file))
            let trellisd = try await served.start(name: "with-secret", extra: ["--admin-token-file", file])
            let client = try await WireClient.connect(configuration: WireClientConfiguration(
                host: "127.0.0.1", port: try ServedControlPlane.ports(of: trellisd).rpc, role: .client, credentials: token, name: "secret-test"))
            let tokens: Trellis_V1_ListTokensResponse = try await client.call("ListTokens", Trellis_V1_ListTokensRequest())
            #expect(tokens.tokens.contains { $0.name == "deploy-admin" && $0.role == "admin" })
            await client.close()
            trellisd.signal(SIGTERM)
            #expect(await trellisd.wait() == 0, "\(trellisd.stderr)")
            #expect(try await store.authenticate(token: token)?.name == "deploy-admin")

            // Too short to be a token: the start stops and says why.
            try Data("short\n".utf8).write(to: URL(fileURLWithPath: file))
            let refused = try BackgroundProcess(try ChildProcess.builtProduct("trellisd"), [
                "serve", "--database-url", served.url, "--rpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                "--plugin-dirs", served.pluginDirectory, "--default-executor", "c-instant", "--admin-token-file", file,
            ], name: "refused")
            #expect(await refused.wait() == 1)
            #expect(refused.stderr.contains("admin_token_file \(file) holds no token of 32 characters or more"), "\(refused.stderr)")
            #expect(try await store.authenticate(token: token)?.name == "deploy-admin")  // unchanged
        }
    }

    @Test func everyTriggerRuleEndsAsInAirflow() async throws {
        try await ServedControlPlane.with { served, _ in
            let trellisd = try await served.start(name: "rules")
            let api = try await served.api(trellisd)
            let rules = ["all_success", "all_failed", "all_done", "one_success", "one_failed", "one_done",
                         "none_failed", "none_skipped", "none_failed_min_one_success", "always"]
            var yaml = """
                dag_id: rules
                default_args: {executor: c-instant, retry_delay: 0s, executor_config: {}}
                tasks:
                  - {task_id: ok}
                  - {task_id: bad, retries: 1, executor_config: {fail_until_try: 9, exit_code: 3}}
                  - {task_id: after_skip, upstream: [all_failed]}

                """
            for rule in rules { yaml += "  - {task_id: \(rule), trigger_rule: \(rule), upstream: [ok, bad]}\n" }
            _ = try await api.submit(yaml, file: "rules.yaml")
            let runID = try await api.trigger("rules")
            let end = try await api.waitForEnd("rules", runID)
            let states = Dictionary(uniqueKeysWithValues: end.tasks.map { ($0.taskID, $0.state) })
            #expect(states == [
                "ok": .success, "bad": .failed,
                "all_success": .upstreamFailed, "all_failed": .skipped, "all_done": .success,
                "one_success": .success, "one_failed": .success, "one_done": .success,
                "none_failed": .upstreamFailed, "none_skipped": .success, "none_failed_min_one_success": .upstreamFailed,
                "always": .success, "after_skip": .skipped,
            ])
            // Failed and upstream-failed leaves fail the run.
            #expect(end.run.state == .failed)
            let bad = try #require(end.tasks.first { $0.taskID == "bad" })
            #expect(bad.tryNumber == 2)
            #expect(bad.exitCode.value == 3)
            #expect(!bad.failureReason.isEmpty)
            #expect(served.executions().filter { $0 == "bad" }.count == 2)
            #expect(end.tasks.filter { [.skipped, .upstreamFailed].contains($0.state) }.allSatisfy { $0.tryNumber == 0 })
            await api.close()
        }
    }

    @Test func killMinusNineMidRunThenRestartRunsEveryTaskExactlyOnce() async throws {
        try await ServedControlPlane.with { served, store in
            let first = try await served.start(name: "first")
            let api = try await served.api(first)
            _ = try await api.submit(Self.fanOut("big", fan: 499, delayMillis: 30), file: "big.yaml")
            let runID = try await api.trigger("big")
            await api.close()
            try await eventually("a fifth of the run executed", timeout: .seconds(120)) { served.executions().count >= 100 }
            first.signal(SIGKILL)
            #expect(await first.wait() == 128 + SIGKILL)
            let before = served.executions().count
            #expect(before < 500, "the run ended before the kill; nothing was tested")

            let second = try await served.start(name: "second")
            let again = try await served.api(second)
            let end = try await again.waitForEnd("big", runID, within: .seconds(300))
            #expect(end.run.state == .success, "\(second.stderr)")
            let executions = served.executions()
            #expect(executions.count == 500, "executions: \(executions.count), \(before) before the kill")
            #expect(Set(executions).count == 500, "a task ran twice")
            #expect(end.tasks.allSatisfy { $0.state == .success && $0.tryNumber == 1 })
            await again.close()
            await second.stop()
        }
    }

    @Test func twoReplicasOnlyOneSchedulesAndTheOtherTakesOverAfterKillMinusNine() async throws {
        try await ServedControlPlane.with { served, store in
            let a = try await served.start(name: "replica-a")
            let b = try await served.start(name: "replica-b")
            try await eventually("one replica leads", timeout: .seconds(30)) {
                (a.stderr + b.stderr).contains("leading: this replica schedules")
            }
            let aLeads = a.stderr.contains("leading: this replica schedules")
            let bLeads = b.stderr.contains("leading: this replica schedules")
            #expect(aLeads != bLeads, "exactly one replica leads")
            let (leader, standby) = aLeads ? (a, b) : (b, a)
            // Only the leader is ready: Kubernetes sends API traffic there.
            #expect(try httpGet(port: try ServedControlPlane.ports(of: standby).http, path: "/readyz").status == 503)

            // Any replica serves the API; the standby's trigger wakes the leader.
            let api = try await served.api(standby)
            _ = try await api.submit(Self.fanOut("shared", fan: 199, delayMillis: 30), file: "shared.yaml")
            let runID = try await api.trigger("shared")
            try await eventually("part of the run executed", timeout: .seconds(120)) { served.executions().count >= 40 }

            leader.signal(SIGKILL)
            await leader.wait()
            let end = try await api.waitForEnd("shared", runID, within: .seconds(300))
            #expect(end.run.state == .success, "\(standby.stderr)")
            #expect(standby.stderr.contains("leading: this replica schedules"))
            let executions = served.executions()
            #expect(executions.count == 200)
            #expect(Set(executions).count == 200, "a task ran twice")
            await api.close()
            await standby.stop()
        }
    }
}
