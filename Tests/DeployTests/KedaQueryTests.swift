import Foundation
import Testing
import TrellisCore
import TrellisStore
import TrellisTestSupport

extension Deploy {
    /// The ScaledObject's query, read from deploy/keda/scaledobject.yaml, runs
    /// on a real, migrated Trellis database whose task instances got where
    /// they are through TrellisStore, as the scheduler moves them: it asks for
    /// ceil(queued + running / 4) workers, ignores every other state
    /// (`scheduled` included), and counts every executor's tasks.
    @Suite struct KedaQueryTests {
        /// The query exactly as the file has it.
        static func query() throws -> String {
            let documents = try KubeValue.documents(yaml: try Repository.text("deploy/keda/scaledobject.yaml"))
            let scaledObject = try #require(documents.first { $0["kind"].string == "ScaledObject" })
            return try #require(scaledObject["spec"]["triggers"][0]["metadata"]["query"].string)
        }

        @Test func theQueryIsTheSeedsAndTheRenderedOneIsTheFilesOwn() async throws {
            let query = try Self.query()
            #expect(query == "SELECT ceil(COUNT(*)::decimal / 4) FROM task_instance WHERE state='running' OR state='queued'")
            let rendered = try await Rendering.render("deploy/overlays/keda")
            #expect(try rendered.one("ScaledObject", "trellis-worker")["spec"]["triggers"][0]["metadata"]["query"].string == query)
        }

        /// The states it names are states the schema allows (a misspelt state
        /// would silently count nothing).
        @Test func theStatesItNamesAreTaskInstanceStates() throws {
            let query = try Self.query()
            let named = query.matches(of: /state='([a-z_]+)'/).map { String($0.output.1) }
            #expect(Set(named) == ["running", "queued"])
            let schema = try Repository.text("Sources/TrellisStore/Migrations/SQL/0001_initial.sql")
            for state in named { #expect(schema.contains("'\(state)'")) }
            for state in named { #expect(TaskState(rawValue: state) != nil, "\(state)") }
        }

        @Test func nineQueuedOrRunningAskForThreeWorkersAndNoneForNone() async throws {
            let query = try Self.query()
            try await StoreDatabase.with { pool in
                let store = StateStore(pool: pool)
                func workers() async throws -> String {
                    try await pool.withSession { try $0.query(query)[0].decode(0, as: String.self) }
                }
                func states() async throws -> [String: Int] {
                    let rows = try await pool.withSession { try $0.query("SELECT state, count(*) FROM task_instance GROUP BY state") }
                    return Dictionary(uniqueKeysWithValues: try rows.map { (try $0.decode(0, as: String.self), try $0.decode(1, as: Int.self)) })
                }

                // An empty database: no workers.
                #expect(try await workers() == "0")

                // 16 tasks of three executors. The two of lowest priority stay
                // `scheduled` (not claimed), 14 are claimed (`queued`), 10 of
                // those start (`running`), and 5 of those end: 3 succeed, 2 fail.
                // Left: 4 queued + 5 running = 9 → ceil(9 / 4) = 3 workers.
                var yaml = "dag_id: keda_demand\nschedule: null\nmax_active_tasks: 64\ntasks:\n"
                for index in 0..<16 {
                    let executor = index < 12 ? "scaled-pool" : index < 14 ? "persistent-pool" : "pod-per-task"
                    let body = executor == "pod-per-task" ? "image: busybox:1.36\n    cmds: [\"true\"]" : "command: [\"true\"]"
                    yaml += "  - task_id: t\(index)\n    executor: \(executor)\n    \(body)\n    priority_weight: \(index < 2 ? 1 : 10)\n"
                }
                let dag = try DagFile.parse(yaml, file: "keda_demand.yaml")
                try await store.submitDag(dag)
                let (run, _) = try await store.createRun(dagID: "keda_demand", logicalDate: Date(timeIntervalSince1970: 1_767_225_600))
                _ = try await store.startQueuedRuns()
                let instances = try await store.taskInstances(runID: run.id)
                #expect(instances.count == 16)
                let scheduled = try await store.transition(instances.map { TransitionRequest(taskInstanceID: $0.id, event: .schedule, expected: .none) })
                #expect(scheduled.count == 16)
                #expect(try await workers() == "0", "scheduled tasks are not demand for workers")

                let claimed = try await store.claimReady(limit: 14)
                #expect(claimed.count == 14)
                #expect(Set(claimed.map(\.executor)) == ["scaled-pool", "persistent-pool", "pod-per-task"])
                let started = Array(claimed.prefix(10))
                for task in started {
                    #expect(try await store.startAttempt(taskInstanceID: task.taskInstanceID, fencingToken: task.fencingToken) != nil)
                }
                for (index, task) in started.prefix(5).enumerated() {
                    let ended = try await store.endAttempt(
                        taskInstanceID: task.taskInstanceID, fencingToken: task.fencingToken, outcome: index < 3 ? .success : .failure)
                    #expect(ended != nil)
                }
                #expect(try await states() == ["scheduled": 2, "queued": 4, "running": 5, "success": 3, "failed": 2])
                #expect(try await workers() == "3")

                // It counts every executor's tasks, not only scaled-pool's: the
                // pod-per-task and persistent-pool ones among the 9 count too.
                let active = try await pool.withSession {
                    try $0.query("SELECT count(*) FROM task_instance WHERE state IN ('queued', 'running') AND executor <> 'scaled-pool'")[0].decode(0, as: Int.self)
                }
                #expect(active > 0)

                // The 9 end: no workers again.
                for task in claimed.dropFirst(10) {
                    _ = try await store.startAttempt(taskInstanceID: task.taskInstanceID, fencingToken: task.fencingToken)
                }
                for task in claimed.dropFirst(5) {
                    #expect(try await store.endAttempt(taskInstanceID: task.taskInstanceID, fencingToken: task.fencingToken, outcome: .success) != nil)
                }
                #expect(try await states() == ["scheduled": 2, "success": 12, "failed": 2])
                #expect(try await workers() == "0")
            }
        }
    }
}
