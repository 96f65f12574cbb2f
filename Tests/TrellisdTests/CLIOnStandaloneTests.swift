import Foundation
import Testing
import TrellisTestSupport

/// The real `trellis` binary against a real `trellisd standalone`, as a new
/// user meets them: no flags and no environment — the client finds the
/// address and token in the config file standalone wrote — and tasks that
/// run as processes on standalone's local agent.
@Suite struct CLIOnStandaloneTests {
    @Test func theClientWorksWithoutFlagsAgainstStandalone() async throws {
        try await StandaloneFixture.with { fixture in
            let standalone = try await fixture.start()
            var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TRELLIS_") }
            environment["XDG_CONFIG_HOME"] = fixture.configHome
            environment["NO_COLOR"] = "1"
            environment["COLUMNS"] = "80"
            let trellis = CLITests.CLI(environment: environment)
            let examples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("examples")

            var result = try await trellis("status")
            #expect(result.status == 0, "\(result.stderr)")
            result = try await trellis("dags", "submit", examples.appendingPathComponent("pool_chain.yaml").path)
            #expect(result.status == 0, "\(result.stderr)")
            result = try await trellis("dags", "trigger", "pool_chain", "--wait")
            #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")

            // The grid says where each task ran: the local agent.
            result = try await trellis("runs", "show", "pool_chain", "latest", "-o", "json")
            #expect(result.status == 0, "\(result.stderr)")
            let grid = try CLITests.json(result.stdout)
            let tasks = try #require(grid["tasks"] as? [[String: Any]], "\(result.stdout)")
            #expect(tasks.count == 5)
            #expect(tasks.allSatisfy { $0["state"] as? String == "success" && $0["executor"] as? String == "persistent-pool" }, "\(tasks)")
            result = try await trellis("tasks", "logs", "pool_chain", "latest", "extract")
            #expect(result.stdout.contains("extracting for run manual__"), "\(result.stdout)")
            result = try await trellis("agents", "list")
            #expect(result.status == 0 && result.stdout.contains("default"), "\(result.stdout)")
            result = try await trellis("executors", "list")
            #expect(result.stdout.contains("persistent-pool"), "\(result.stdout)")

            // A failing process fails the run: exit 1, and the grid says why.
            let failing = fixture.scratch + "/failing.yaml"
            try Data("""
                dag_id: failing
                default_args: {executor: persistent-pool}
                tasks:
                  - {task_id: broken, command: [sh, -c, "echo 'no such table: orders' >&2; exit 4"]}
                """.utf8).write(to: URL(fileURLWithPath: failing))
            result = try await trellis("dags", "submit", failing)
            #expect(result.status == 0, "\(result.stderr)")
            result = try await trellis("dags", "trigger", "failing", "--wait")
            #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
            result = try await trellis("runs", "show", "failing", "latest")
            #expect(result.stdout.contains("failed"), "\(result.stdout)")

            // Ctrl-C stops standalone; the client then cannot reach it: exit 3,
            // saying what to do.
            standalone.signal(SIGINT)
            #expect(await standalone.wait() == 0, "\(standalone.stderr)")
            result = try await trellis("status")
            #expect(result.status == 3, "\(result.stdout)\n\(result.stderr)")
            #expect(result.stderr.contains("trellisd standalone"), "\(result.stderr)")
        }
    }
}
