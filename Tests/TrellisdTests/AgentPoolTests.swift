import Foundation
import Testing
import TrellisProto
import TrellisStore
import TrellisTestSupport
import TrellisWire

/// The persistent-pool executor end to end: the real trellisd, real
/// `trellis-agent` processes, tasks that are real processes, all through
/// the client API.
@Suite struct AgentPoolTests {
    static let examples = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("examples")

    /// An example DAG file made manual-only (no schedule, no catchup), so
    /// the test runs exactly the runs it triggers.
    static func example(_ name: String) throws -> String {
        try String(contentsOf: examples.appendingPathComponent(name), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("catchup:") }
            .map { $0.hasPrefix("schedule:") ? "schedule: null" : String($0) }
            .joined(separator: "\n")
    }

    @Test func theExamplePoolDagsRunOnThreeAgentsWithTheirLogsAndResults() async throws {
        try await ServedControlPlane.with { served, store in
            let trellisd = try await served.start(name: "pool")
            // pool_diamond's branches want `queue=gpu` and `zone=eu-west,disk=ssd`.
            _ = try await served.startAgent("agent-a", on: trellisd, slots: 4, labels: ["queue": "gpu"])
            _ = try await served.startAgent("agent-b", on: trellisd, slots: 4, labels: ["zone": "eu-west", "disk": "ssd"])
            _ = try await served.startAgent("agent-c", on: trellisd, slots: 4)
            let api = try await served.api(trellisd)
            // pool_fan_out's tasks share Airflow's pool `etl`.
            try await store.setPool("etl", slots: 6)

            var runs: [(dag: String, run: String)] = []
            for file in ["pool_chain.yaml", "pool_diamond.yaml", "pool_fan_out.yaml", "pool_templates.yaml"] {
                let submitted = try await api.submit(try Self.example(file), file: file)
                runs.append((submitted.dagID, try await api.trigger(submitted.dagID)))
            }
            for (dag, run) in runs {
                let end = try await api.waitForEnd(dag, run, within: .seconds(180), explaining: [trellisd])
                #expect(end.run.state == .success, "\(dag): \(end.tasks.map { "\($0.taskID)=\($0.state) \($0.failureReason)" })\n\(trellisd.stderr.suffix(4_000))")
                #expect(end.tasks.allSatisfy { $0.agentName.hasPrefix("agent-") }, "\(dag): \(end.tasks.map(\.agentName))")
            }
            // Every task's log is readable through the API (each printed
            // something but `count`, which only writes its result).
            for (dag, run) in runs {
                for task in try await api.grid(dag, run).tasks {
                    let log = try await api.log(dag, run, task.taskID)
                    #expect(task.taskID == "count" || !log.isEmpty, "\(dag).\(task.taskID) logged nothing")
                }
            }
            // Rendered templates included.
            let chain = runs[0]
            #expect(try await api.log(chain.dag, chain.run, "extract").contains("extracting for run \(chain.run)"))
            let templates = runs[3]
            #expect(try await api.log(templates.dag, templates.run, "report").contains("counted {\"rows\":42}"))
            #expect(try await api.log(templates.dag, templates.run, "export").contains("exporting eu partition"))
            // Tasks spread over the agents.
            let fanOut = try await api.grid(runs[2].dag, runs[2].run)
            #expect(Set(fanOut.tasks.map(\.agentName)).count >= 2)
            await api.close()
        }
    }

    @Test func aFailingCommandFailsItsTaskWithTheExitCodeAndTheLastLines() async throws {
        try await ServedControlPlane.with { served, _ in
            let trellisd = try await served.start(name: "fail")
            _ = try await served.startAgent("agent-f", on: trellisd)
            let api = try await served.api(trellisd)
            _ = try await api.submit("""
                dag_id: failing
                default_args: {executor: persistent-pool}
                tasks:
                  - {task_id: breaks, command: [sh, -c, "echo starting; echo 'disk full on /data' >&2; exit 3"]}
                  - {task_id: after, command: ["true"], upstream: [breaks]}
                  - {task_id: missing, command: [/nonexistent/tool, --flag]}
                """, file: "failing.yaml")
            let run = try await api.trigger("failing")
            let end = try await api.waitForEnd("failing", run)
            let tasks = Dictionary(uniqueKeysWithValues: end.tasks.map { ($0.taskID, $0) })
            #expect(end.run.state == .failed)
            #expect(tasks["breaks"]?.state == .failed)
            #expect(tasks["breaks"]?.exitCode.value == 3)
            #expect(tasks["breaks"]?.failureReason.contains("disk full on /data") == true, "\(tasks["breaks"]?.failureReason ?? "")")
            #expect(tasks["after"]?.state == .upstreamFailed)
            #expect(tasks["missing"]?.state == .failed)
            #expect(tasks["missing"]?.failureReason.contains("/nonexistent/tool") == true, "\(tasks["missing"]?.failureReason ?? "")")
            await api.close()
        }
    }

    @Test func afterKillMinusNineOfAnAgentItsTaskIsRetriedOnAnother() async throws {
        try await ServedControlPlane.with { served, _ in
            let trellisd = try await served.start(name: "lost", extra: ["--heartbeat-ttl", "2s", "--agent-grace", "1s"])
            let doomed = try await served.startAgent("agent-doomed", on: trellisd)
            let api = try await served.api(trellisd)
            // A sleep no other process has: its command line finds it later.
            let marker = "600.\(Int.random(in: 10_000_000...99_999_999))"
            _ = try await api.submit("""
                dag_id: lost
                default_args: {executor: persistent-pool, retry_delay: 0s}
                tasks:
                  - task_id: long
                    retries: 1
                    command: [sh, -c, 'if [ "$TRELLIS_TRY_NUMBER" = 1 ]; then exec sleep \(marker); fi; echo second try']
                """, file: "lost.yaml")
            let run = try await api.trigger("lost")
            try await eventually("the first try runs on the doomed agent", timeout: .seconds(60)) {
                try await api.grid("lost", run).tasks.first?.state == .running
            }
            let survivor = try await served.startAgent("agent-survivor", on: trellisd)
            doomed.signal(SIGKILL)
            _ = await doomed.wait()
            // Its orphaned task process is not ours to keep.
            defer { _ = try? ChildProcessKill.killAll(matching: marker) }

            let end = try await api.waitForEnd("lost", run, within: .seconds(120), explaining: [trellisd])
            let task = try #require(end.tasks.first)
            #expect(end.run.state == .success, "\(task.failureReason)")
            #expect(task.tryNumber == 2)
            #expect(task.agentName == "agent-survivor")
            #expect(try await api.log("lost", run, "long").contains("second try"))
            _ = survivor
            await api.close()
        }
    }

    @Test func sigtermToABusyAgentLetsItsTasksFinishBeforeItExits() async throws {
        try await ServedControlPlane.with { served, _ in
            let trellisd = try await served.start(name: "drain")
            let agent = try await served.startAgent("agent-d", on: trellisd, slots: 2)
            let api = try await served.api(trellisd)
            _ = try await api.submit("""
                dag_id: drain
                default_args: {executor: persistent-pool}
                tasks:
                  - {task_id: one, command: [sh, -c, "sleep 3; echo one done"]}
                  - {task_id: two, command: [sh, -c, "sleep 3; echo two done"]}
                """, file: "drain.yaml")
            let run = try await api.trigger("drain")
            try await eventually("both tasks run", timeout: .seconds(60)) {
                try await api.grid("drain", run).tasks.allSatisfy { $0.state == .running }
            }
            agent.signal(SIGTERM)
            #expect(await agent.wait() == 0, "\(agent.stderr)")
            let end = try await api.waitForEnd("drain", run, within: .seconds(60), explaining: [trellisd, agent])
            #expect(end.run.state == .success, "\(end.tasks.map { "\($0.taskID)=\($0.state) \($0.failureReason)" })")
            #expect(try await api.log("drain", run, "two").contains("two done"))
            await api.close()
        }
    }

    @Test func restartingTrellisdMidRunLosesNothingAndRunsNothingTwice() async throws {
        try await ServedControlPlane.with { served, _ in
            let executions = served.scratch.appendingPathComponent("pool-executions").path
            let first = try await served.start(name: "first")
            let agents = [
                try await served.startAgent("agent-r1", on: first, slots: 3),
                try await served.startAgent("agent-r2", on: first, slots: 3),
            ]
            let api = try await served.api(first)
            var yaml = """
                dag_id: restart
                default_args: {executor: persistent-pool}
                tasks:

                """
            for index in 0..<30 {
                yaml += "  - {task_id: t\(index), command: [sh, -c, 'sleep 0.3; echo \"$TRELLIS_TASK_ID\" >> \(executions)']}\n"
            }
            _ = try await api.submit(yaml, file: "restart.yaml")
            let run = try await api.trigger("restart")
            await api.close()
            try await eventually("some tasks ran", timeout: .seconds(60)) { Self.lines(executions).count >= 5 }
            first.signal(SIGKILL)
            _ = await first.wait()

            // The agents reconnect to the new process on the same port.
            let rpc = try ServedControlPlane.ports(of: first).rpc
            let second = try await served.start(name: "second", extra: ["--rpc-address", "127.0.0.1:\(rpc)"])
            let again = try await served.api(second)
            let end = try await again.waitForEnd("restart", run, within: .seconds(180), explaining: [second] + agents)
            #expect(end.run.state == .success, "\(end.tasks.filter { $0.state != .success }.map { "\($0.taskID)=\($0.state) \($0.failureReason)" })")
            let ran = Self.lines(executions)
            #expect(ran.count == 30, "\(ran.count) executions")
            #expect(Set(ran).count == ran.count, "a task ran twice: \(ran.sorted())")
            await again.close()
        }
    }

    static func lines(_ file: String) -> [String] {
        ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}

extension WireConnection {
    /// `waitForEnd`, and when the run does not end in time, an error that
    /// shows the grid and the tails of the processes' logs.
    func waitForEnd(_ dagID: String, _ runID: String, within timeout: Duration, explaining processes: [BackgroundProcess]) async throws -> Trellis_V1_GetRunResponse {
        do {
            return try await waitForEnd(dagID, runID, within: timeout)
        } catch {
            let grid = (try? await self.grid(dagID, runID).tasks.map { "\($0.taskID)=\($0.state) try \($0.tryNumber) on '\($0.agentName)' \($0.failureReason)" }) ?? []
            let logs = processes.map { "--- \($0.name):\n\($0.stderr.suffix(6_000))" }.joined(separator: "\n")
            throw BackgroundProcess.Failure("\(error)\ngrid: \(grid)\n\(logs)")
        }
    }

    /// Everything a task's latest try logged.
    func log(_ dagID: String, _ runID: String, _ taskID: String) async throws -> String {
        var request = Trellis_V1_GetTaskLogRequest()
        request.dagID = dagID
        request.runID = runID
        request.taskID = taskID
        var text = ""
        for try await payload in serverStream("/trellis.v1.TrellisAPI/GetTaskLog", try request.serializedData(), timeout: .seconds(30)) {
            text += String(decoding: try Trellis_V1_TaskLogChunk(serializedBytes: payload).data, as: UTF8.self)
        }
        return text
    }
}

/// Kills leftover processes a test started through an agent it then
/// killed with SIGKILL (their process group outlives the agent).
enum ChildProcessKill {
    static func killAll(matching marker: String) throws -> Int {
        var killed = 0
        for entry in try FileManager.default.contentsOfDirectory(atPath: "/proc") {
            guard let pid = Int32(entry),
                  let command = try? String(contentsOfFile: "/proc/\(entry)/cmdline", encoding: .utf8),
                  command.contains(marker) else { continue }
            kill(pid, SIGKILL)
            killed += 1
        }
        return killed
    }
}
