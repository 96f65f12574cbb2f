import Foundation
import Logging
import Testing
import TrellisCore
import TrellisStore
import TrellisTestSupport

@testable import TrellisControlPlane

/// The scheduler's warning about pools that ready tasks wait for in vain:
/// logged once per pool while it lasts, again if it happens again.
@Suite struct SchedulerPoolWarningTests {
    static let dag = """
        dag_id: pooled
        default_args: {executor: c-instant, executor_config: {}}
        tasks:
          - {task_id: plain}
          - {task_id: late, pool: etl}
          - {task_id: wide, pool: gpu, pool_slots: 3}
        """

    /// A log handler that keeps each warning as `message key=value…`
    /// (metadata sorted by key).
    struct Capture: LogHandler {
        let lines: Shared<[String]>
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .warning

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            lines.mutate { $0.append(([event.message.description] + fields).joined(separator: " ")) }
        }
    }

    @Test func eachBlockedPoolIsLoggedOnceWhileItLasts() async throws {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 4)
            let store = StateStore(pool: pool)
            let host = ExecutorHost(hostID: "test", log: { _, _, _ in }, events: { _ in })
            let recordFile = FileManager.default.temporaryDirectory.appendingPathComponent("c-instant-\(UUID().uuidString).tsv").path
            defer { try? FileManager.default.removeItem(atPath: recordFile) }
            _ = try host.load(path: try ChildProcess.builtProduct("libtrellis-executor-c-instant.so")) { _ in #"{"record_file": "\#(recordFile)"}"# }
            let lines = Shared<[String]>([])
            let scheduler = Scheduler(
                store: store, executors: host, settings: .init(defaultExecutor: "c-instant"),
                logger: Logger(label: "test") { _ in Capture(lines: lines) })
            defer { host.shutdown() }

            try await store.setPool("gpu", slots: 2)
            try await store.submitDag(try DagFile.parse(Self.dag, file: "pooled.yaml"))
            _ = try await store.createRun(dagID: "pooled", logicalDate: Date(timeIntervalSince1970: 0), runType: .manual)
            try await scheduler.pass()
            #expect(lines.value == [
                "tasks using a pool that does not exist will not be scheduled until it is created "
                    + "dags=pooled fix=trellis pools set etl SLOTS pool=etl waiting_task_instances=1",
                "tasks needing more slots than their pool has will not be scheduled until it grows "
                    + "dags=pooled fix=trellis pools set gpu 3 largest_pool_slots=3 pool=gpu slots=2 waiting_task_instances=1",
            ])
            // Not again while nothing changed, nor for another run waiting on the same pools.
            _ = try await store.createRun(dagID: "pooled", logicalDate: Date(timeIntervalSince1970: 86_400), runType: .manual)
            try await scheduler.pass()
            try await scheduler.pass()
            #expect(lines.value.count == 2)

            // Fixed: nothing new to report (gpu stays reported); blocked
            // again after being fixed: reported again.
            try await store.setPool("etl", slots: 1)
            #expect(try await scheduler.reportBlockedPools().isEmpty)
            try await store.setPool("etl", slots: 0)
            #expect(try await scheduler.reportBlockedPools().map(\.name) == ["etl"])
            #expect(lines.value.count == 3)
            #expect(lines.value.last?.hasPrefix("tasks needing more slots than their pool has") == true)
            #expect(lines.value.last?.contains("pool=etl slots=0 waiting_task_instances=2") == true, "\(lines.value)")
            try await store.setPool("etl", slots: 1)
            try await store.setPool("gpu", slots: 3)
            #expect(try await store.blockedPools().isEmpty)
            #expect(try await scheduler.reportBlockedPools().isEmpty)
            try await store.setPool("gpu", slots: 2)
            #expect(try await scheduler.reportBlockedPools().map(\.name) == ["gpu"])
            #expect(lines.value.count == 4)
            await pool.close()
        }
    }
}
