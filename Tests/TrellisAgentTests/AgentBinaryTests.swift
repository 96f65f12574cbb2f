import Foundation
import Testing
import TrellisProto
import TrellisTestSupport

/// The real trellis-agent binary against a wire server playing the control plane.
@Suite struct AgentBinaryTests {
    static func binary() throws -> String { try ChildProcess.builtProduct("trellis-agent") }

    /// The test's environment without any TRELLIS_AGENT_ variable, plus `extra`.
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TRELLIS_AGENT_") }.merging(extra) { _, new in new }
    }

    @Test func badOptionsExit2ListingEveryProblem() async throws {
        let result = try await ChildProcess.run(
            try Self.binary(),
            ["--control-plane", "nohost", "--token-file", "/nonexistent/token", "--label", "novalue", "--kill-grace", "5q"],
            environment: Self.environment(["TRELLIS_AGENT_SLOTS": "0", "TRELLIS_AGENT_DRAIN_GRACE": "soon"]))
        #expect(result.status == 2)
        for problem in [
            "--control-plane: 'nohost' is not HOST:PORT", "--token-file: /nonexistent/token does not exist", "--slots: '0' is not a positive integer",
            "--label: 'novalue' is not a label k=v", "--kill-grace: \"5q\" is not a duration", "--drain-grace: \"soon\" is not a duration",
        ] {
            #expect(result.stderr.contains(problem), "missing '\(problem)' in:\n\(result.stderr)")
        }
        #expect(result.stdout.isEmpty)

        let unknown = try await ChildProcess.run(try Self.binary(), ["--no-such-flag"], environment: Self.environment())
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("Unknown option '--no-such-flag'"))
    }

    @Test func runsTasksAndDrainsOnSIGTERM() async throws {
        let plane = try await TestControlPlane.start()
        let work = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let tokenFile = work.appendingPathComponent("token").path
        try (TestControlPlane.token + "\n").write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let arguments = [
            "--control-plane", "127.0.0.1:\(plane.port)", "--token-file", tokenFile, "--slots", "3", "--label", "zone=b",
            "--kill-grace", "300ms", "--drain-grace", "1s", "--work-dir", work.appendingPathComponent("scratch").path, "--log-format", "json",
        ]
        let environment = Self.environment([
            "TRELLIS_AGENT_NODE_NAME": "node-7", "TRELLIS_AGENT_POOL": "gpu", "TRELLIS_AGENT_LABELS": "zone=a,disk=ssd",
        ])
        try await BackgroundProcess.with(try Self.binary(), arguments, environment: environment) { agent in
            try await agent.waitForOutput("connecting to 127.0.0.1:\(plane.port)")
            let registration = try await plane.registration(1)
            #expect(registration.agent.name == "node-7" && registration.agent.node == "node-7")
            #expect(registration.agent.pool == "gpu")
            #expect(registration.agent.labels == ["zone": "b", "disk": "ssd"])  // the flag wins over the variable
            #expect(registration.agent.slots == 3)

            try await plane.startTask(startRequest("quick", ["echo", "hello from the binary"]))
            #expect(try await plane.finished("quick").outcome == .succeeded)
            #expect(plane.output(of: "quick") == "hello from the binary\n")
            try await plane.startTask(startRequest("slow", ["/bin/sleep", "60"]))
            try await eventually("slow started") { !plane.events(of: "slow").isEmpty }

            agent.signal(SIGTERM)
            try await eventually("the agent exited", timeout: .seconds(30)) { agent.exitStatus != nil }
            #expect(agent.exitStatus == 0, "stderr:\n\(agent.stderr)")
            #expect(plane.recorded.drains.count == 1)
            let slow = try await plane.finished("slow", timeout: .seconds(5))  // reported before the exit
            #expect(slow.outcome == .cancelled && slow.reason == "Drained")
            #expect(agent.stdout.hasSuffix("trellis-agent: drained\n"))
            // JSON log lines on stderr.
            #expect(agent.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("{\"ts\":") })
        }
        await plane.stop()
    }

    @Test func aWrongJoinTokenExits1() async throws {
        let plane = try await TestControlPlane.start()
        let work = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let tokenFile = work.appendingPathComponent("token").path
        try "not-the-token".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let result = try await ChildProcess.run(
            try Self.binary(), ["--control-plane", "127.0.0.1:\(plane.port)", "--token-file", tokenFile, "--work-dir", work.path],
            environment: Self.environment())
        #expect(result.status == 1)
        #expect(result.stderr.contains("UNAUTHENTICATED"), "\(result.stderr)")
        await plane.stop()
    }
}

/// docs/agent.md documents every flag and variable the binary knows.
@Suite struct AgentDocumentationTests {
    @Test func everyFlagAndVariableIsDocumented() async throws {
        let docs = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("docs/agent.md"), encoding: .utf8)
        let help = try await ChildProcess.run(try AgentBinaryTests.binary(), ["--help"], environment: AgentBinaryTests.environment())
        #expect(help.status == 0)
        let words = help.stdout.split(whereSeparator: { $0.isWhitespace || "[](),;".contains($0) }).map(String.init)
        let flags = Set(words.filter { $0.hasPrefix("--") && $0.count > 2 && $0 != "--help" && $0 != "--version" })
        let variables = Set(words.filter { $0.hasPrefix("TRELLIS_AGENT_") }.map { $0.split(separator: "=").first.map(String.init) ?? $0 })
        #expect(flags.count >= 12 && variables.count >= 12, "\(flags) \(variables)")
        for name in flags.union(variables) {
            #expect(docs.contains("`\(name)"), "docs/agent.md does not document \(name)")
        }
    }
}
