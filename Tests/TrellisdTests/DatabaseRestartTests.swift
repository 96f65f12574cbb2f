import Foundation
import Testing
import TrellisProto
import TrellisStore
import TrellisTestSupport
import TrellisWire

/// PostgreSQL stopped and started under a running DAG, with the real
/// `trellisd serve` and real agents (ARCHITECTURE.md: "a PostgreSQL restart
/// leaves every task either done once or retried, never lost, never running
/// twice at once"). The database is a cluster of the test's own.
@Suite(.serialized) struct DatabaseRestartTests {
    @Test func aPostgresRestartMidRunLosesNothingAndRunsNothingTwice() async throws {
        try await OwnCluster.with { cluster in
            let admin = try await PostgresConnection.connect(cluster.url)
            try await admin.withSession { try $0.execute(script: "CREATE DATABASE trellis") }
            await admin.close()
            let url = FreshDatabase.replacingDatabase(in: cluster.url, with: "trellis")
            let migrator = try await PostgresConnection.connect(url)
            try await Migrator.migrate(migrator)
            await migrator.close()

            let served = try ServedControlPlane(url: url)
            do {
                try await restartUnderARun(cluster, served)
            } catch {
                await served.remove()
                throw error
            }
            await served.remove()
        }
    }

    func restartUnderARun(_ cluster: OwnCluster, _ served: ServedControlPlane) async throws {
        let executions = served.scratch.appendingPathComponent("executions").path
        let trellisd = try await served.start(name: "only")
        let agents = [
            try await served.startAgent("agent-d1", on: trellisd, slots: 3),
            try await served.startAgent("agent-d2", on: trellisd, slots: 3),
        ]
        let tasks = 30
        var yaml = """
            dag_id: database_restart
            default_args: {executor: persistent-pool}
            tasks:

            """
        for index in 0..<tasks {
            // Each execution appends its task id: a task run twice shows twice.
            yaml += "  - {task_id: t\(index), command: [sh, -c, 'sleep 0.5; echo \"$TRELLIS_TASK_ID\" >> \(executions)']}\n"
        }
        let api = try await served.api(trellisd)
        _ = try await api.submit(yaml, file: "database_restart.yaml")
        let run = try await api.trigger("database_restart")
        await api.close()
        try await eventually("some tasks ran", timeout: .seconds(60)) { Self.lines(executions).count >= 5 }

        // Down long enough for running tasks to end while it is down: their
        // ends can only be recorded once it is back.
        try await cluster.stop()
        let ranBeforeTheStop = Self.lines(executions).count
        #expect(ranBeforeTheStop < tasks, "the run ended before PostgreSQL stopped; the test proves nothing")
        // Down for real: the run cannot be read.
        let whileDown = try await served.api(trellisd)
        await #expect(throws: WireError.self) { _ = try await whileDown.grid("database_restart", run) }
        await whileDown.close()
        try await Task.sleep(for: .seconds(3))
        #expect(trellisd.exitStatus == nil, "trellisd exited while PostgreSQL was down: \(trellisd.stderr.suffix(4_000))")
        try await cluster.start()

        // The API answers UNAVAILABLE until trellisd has reconnected.
        let deadline = ContinuousClock.now + .seconds(180)
        var end: Trellis_V1_GetRunResponse?
        while ContinuousClock.now < deadline {
            if let connection = try? await served.api(trellisd) {
                let grid = try? await connection.grid("database_restart", run)
                await connection.close()
                if let grid, grid.run.state == .success || grid.run.state == .failed {
                    end = grid
                    break
                }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let logs = ([trellisd] + agents).map { "--- \($0.name):\n\($0.stderr.suffix(6_000))" }.joined(separator: "\n")
        let ended = try #require(end, "the run did not end within 180 s of the restart\n\(logs)")
        #expect(ended.run.state == .success, "\(ended.tasks.filter { $0.state != .success }.map { "\($0.taskID)=\($0.state) \($0.failureReason)" })\n\(logs)")
        let ran = Self.lines(executions)
        #expect(ran.count == tasks, "\(ran.count) executions of \(tasks) tasks")
        #expect(Set(ran).count == ran.count, "a task ran twice: \(ran.sorted())")
        #expect(trellisd.exitStatus == nil)
    }

    static func lines(_ file: String) -> [String] {
        ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}
