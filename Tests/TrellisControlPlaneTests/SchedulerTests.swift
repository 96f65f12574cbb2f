import Foundation
import Synchronization
import Testing
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisTestSupport

@testable import TrellisControlPlane

/// The scheduling core against a real PostgreSQL, with the C plugin c-instant
/// as executor: runs go to their end through evaluation, dispatch and
/// executor events alone.
@Suite struct SchedulerTests {
    @Test func diamondWithARetryRunsEachTaskAsOftenAsItShould() async throws {
        let dag = try DagFile.parse("""
            dag_id: diamond
            default_args: {executor: c-instant, retry_delay: 0s}
            tasks:
              - {task_id: start, executor_config: {}}
              - {task_id: left, retries: 1, executor_config: {fail_until_try: 1, exit_code: 7}}
              - {task_id: right, executor_config: {delay_ms: 50}}
              - {task_id: join, executor_config: {}}
            dependencies:
              - "start >> [left, right] >> join"
            """, file: "diamond.yaml")
        try await SchedulerFixture.with(dag) { fixture, runID in
            #expect(try await fixture.waitForEnd(runID) == .success)
            let grid = try await fixture.grid(runID)
            #expect(grid.mapValues(\.state) == ["start": .success, "left": .success, "right": .success, "join": .success])
            #expect(grid.mapValues(\.tryNumber) == ["start": 1, "left": 2, "right": 1, "join": 1])
            let leftAttempts = try await fixture.store.attempts(taskInstanceID: grid["left"]!.id)
            #expect(leftAttempts.map(\.exitCode) == [7, 0])
            // c-instant recorded each execution: every task ran exactly its tries.
            #expect(try fixture.executions().sorted() == ["join#1", "left#1", "left#2", "right#1", "start#1"])
        }
    }

    @Test func failureExhaustingRetriesFailsDownstreamAndTheRun() async throws {
        let dag = try DagFile.parse("""
            dag_id: failing
            default_args: {executor: c-instant, retry_delay: 0s}
            tasks:
              - {task_id: extract, retries: 2, executor_config: {fail_until_try: 5}}
              - {task_id: load, upstream: [extract], executor_config: {}}
              - {task_id: cleanup, upstream: [extract], trigger_rule: all_done, executor_config: {}}
            """, file: "failing.yaml")
        try await SchedulerFixture.with(dag) { fixture, runID in
            #expect(try await fixture.waitForEnd(runID) == .failed)
            let grid = try await fixture.grid(runID)
            #expect(grid.mapValues(\.state) == ["extract": .failed, "load": .upstreamFailed, "cleanup": .success])
            #expect(grid["extract"]?.tryNumber == 3)
            #expect(try fixture.executions().sorted() == ["cleanup#1", "extract#1", "extract#2", "extract#3"])
        }
    }

    @Test func aBatchWithRepeatedAndStaleReportsAppliesEachAttemptOnce() async throws {
        let dag = try DagFile.parse("""
            dag_id: repeated
            tasks:
              - {task_id: slow, executor: c-instant, executor_config: {delay_ms: 600000}}
            """, file: "repeated.yaml")
        try await SchedulerFixture.with(dag) { fixture, runID in
            let id = try #require(try await fixture.grid(runID)["slow"]?.id)
            try await eventually("slow starts") { try await fixture.store.taskInstance(id).state == .running }
            let attempt = try #require(try await fixture.store.attempts(taskInstanceID: id).last)
            let current = ExecutorEventRecord.finished(instance: id, attempt: attempt.id, token: attempt.fencingToken, outcome: .failed, code: 3)
            let stale = ExecutorEventRecord.finished(instance: id, attempt: attempt.id, token: attempt.fencingToken - 1, outcome: .succeeded, code: 0)
            // The same end twice and a stale one, in one batch: one failure.
            try await fixture.scheduler.record([stale, current, current])
            let instance = try await fixture.store.taskInstance(id)
            #expect(instance.state == .failed)
            #expect(instance.tryNumber == 1)
            #expect(try await fixture.store.run(runID).state == .failed)
            let ends = try await fixture.store.events(taskInstanceID: id).filter { $0.event == "fail" }
            #expect(ends.count == 1)
            #expect(try await fixture.store.attempts(taskInstanceID: id).first?.exitCode == 3)
        }
    }

    @Test func whereAnAttemptRunsIsRecordedAsItsExecutorSaysWhateverTheExecutorsName() async throws {
        // c-instant is not named pod-per-task: the kind it reports decides.
        let dag = try DagFile.parse("""
            dag_id: where_it_runs
            tasks:
              - {task_id: in_pod, executor: c-instant, executor_config: {pod_name: where-it-runs-in-pod-x7k2q}}
              - {task_id: in_process, executor: c-instant, executor_config: {delay_ms: 0}}
            """, file: "where_it_runs.yaml")
        try await SchedulerFixture.with(dag) { fixture, runID in
            #expect(try await fixture.waitForEnd(runID) == .success)
            let grid = try await fixture.grid(runID)
            let inPodID = try #require(grid["in_pod"]?.id)
            let inPod = try #require(try await fixture.store.attempts(taskInstanceID: inPodID).last)
            #expect(inPod.podName == "where-it-runs-in-pod-x7k2q")
            #expect(inPod.agentName == nil)
            // Kind unspecified (plugins built before external_kind): the node.
            let inProcessID = try #require(grid["in_process"]?.id)
            let inProcess = try #require(try await fixture.store.attempts(taskInstanceID: inProcessID).last)
            #expect(inProcess.podName == nil)
            #expect(inProcess.agentName == "in-process")
        }
    }

    @Test func aTaskWhoseExecutorIsNotLoadedFailsWithThatReason() async throws {
        let dag = try DagFile.parse("""
            dag_id: missing_executor
            tasks:
              - {task_id: gpu, executor: gpu-batch, executor_config: {cpus: 4}}
            """, file: "missing.yaml")
        try await SchedulerFixture.with(dag) { fixture, runID in
            #expect(try await fixture.waitForEnd(runID) == .failed)
            let instance = try #require(try await fixture.grid(runID)["gpu"])
            #expect(instance.state == .failed)
            let attempt = try #require(try await fixture.store.attempts(taskInstanceID: instance.id).first)
            #expect(attempt.failureReason?.contains("executor 'gpu-batch' is not loaded (loaded: c-instant)") == true)
        }
    }

    @Test func templatesAreRenderedForEachAttempt() throws {
        let dag = try DagFile.parse("""
            dag_id: templated
            params: {region: eu, limit: 10}
            tasks:
              - task_id: export
                executor: persistent-pool
                command: [echo, "{{ ds }}", "{{ params.region }}", "{{ params.limit }}", "{{ try_number }}"]
                env: {RUN: "{{ run_id }}"}
            """, file: "templated.yaml")
        let rendered = try TaskRendering.render(dag.spec.tasks[0], context: TemplateContext(
            dagID: "templated", taskID: "export", runID: "manual__1", tryNumber: 2,
            logicalDate: Date(timeIntervalSince1970: 1_700_000_000), dataIntervalStart: Date(timeIntervalSince1970: 1_700_000_000),
            dataIntervalEnd: Date(timeIntervalSince1970: 1_700_000_000),
            params: TaskRendering.params(defaults: dag.spec.paramsJson, conf: #"{"region": "us"}"#)))
        #expect(rendered.process.command == ["echo", "2023-11-14", "us", "10", "2"])
        #expect(rendered.process.env.map(\.value) == ["manual__1"])
    }
}

/// A store on a fresh database, an executor host with c-instant recording
/// its executions, and a scheduler fed by the host's events.
private struct SchedulerFixture {
    let store: StateStore
    let scheduler: Scheduler
    let recordFile: String

    static func with(
        _ dag: DagDefinition, now: @escaping @Sendable () -> Date = { Date() }, passFirst: Bool = true,
        _ body: (SchedulerFixture, Int64) async throws -> Void
    ) async throws {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 4)
            let store = StateStore(pool: pool)
            let recordFile = FileManager.default.temporaryDirectory.appendingPathComponent("c-instant-\(UUID().uuidString).tsv").path
            defer { try? FileManager.default.removeItem(atPath: recordFile) }

            let events = ExecutorEventInbox()
            let host = ExecutorHost(hostID: "test", log: { _, _, _ in }, events: { events.post($0) })
            _ = try host.load(path: try ChildProcess.builtProduct("libtrellis-executor-c-instant.so")) { _ in #"{"record_file": "\#(recordFile)"}"# }
            let scheduler = Scheduler(store: store, executors: host, settings: .init(defaultExecutor: "c-instant"), now: now)
            let consumer = Task {
                while let batch = await events.take() { try? await scheduler.record(batch.records) }
            }

            try await store.submitDag(dag)
            let (run, _) = try await store.createRun(dagID: dag.spec.dagID, logicalDate: Date(timeIntervalSince1970: 1_700_000_000), runType: .manual)
            if passFirst { try await scheduler.pass() }
            do {
                try await body(SchedulerFixture(store: store, scheduler: scheduler, recordFile: recordFile), run.id)
            } catch {
                host.shutdown(); events.finish(); consumer.cancel(); await pool.close()
                throw error
            }
            host.shutdown(); events.finish(); consumer.cancel(); await pool.close()
        }
    }

    /// Waits (up to 20 s) for the run to finish; its final state.
    func waitForEnd(_ runID: Int64) async throws -> DagRunState {
        try await eventually("run \(runID) finishes") { [store] in
            let state = try await store.run(runID).state
            return state == .success || state == .failed
        }
        return try await store.run(runID).state
    }

    func grid(_ runID: Int64) async throws -> [String: TaskInstanceRecord] {
        Dictionary(uniqueKeysWithValues: try await store.taskInstances(runID: runID).map { ($0.taskID, $0) })
    }

    /// "task#try" for every execution c-instant recorded.
    func executions() throws -> [String] {
        guard FileManager.default.fileExists(atPath: recordFile) else { return [] }
        return try String(contentsOfFile: recordFile, encoding: .utf8).split(separator: "\n").map { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            return "\(fields[3])#\(fields[4])"
        }
    }
}

/// Execution and queued timeouts, with the scheduler's clock moved by hand.
@Suite struct TimeoutTests {
    @Test func aRunningAttemptPastItsExecutionTimeoutIsStoppedAndFails() async throws {
        let clock = TestClock()
        let dag = try DagFile.parse("""
            dag_id: slow
            tasks:
              - {task_id: slow, executor: c-instant, execution_timeout: 1s, executor_config: {delay_ms: 600000}}
            """, file: "slow.yaml")
        try await SchedulerFixture.with(dag, now: { clock.now }) { fixture, runID in
            let id = try #require(try await fixture.grid(runID)["slow"]?.id)
            try await eventually("slow starts") { try await fixture.store.taskInstance(id).state == .running }
            #expect(try await fixture.scheduler.enforceTimeouts() == 0)  // not yet

            // Relative to when the database saw it start, however loaded the machine is.
            let started = try #require(try await fixture.store.taskInstance(id).startDate)
            clock.set(started.addingTimeInterval(0.5))
            #expect(try await fixture.scheduler.enforceTimeouts() == 0)
            clock.set(started.addingTimeInterval(5))
            #expect(try await fixture.scheduler.enforceTimeouts() == 1)
            #expect(try await fixture.store.taskInstance(id).state == .failed)
            let attempt = try #require(try await fixture.store.attempts(taskInstanceID: id).last)
            #expect(attempt.failureReason == "execution_timeout: ran longer than 1s")
            #expect(try await fixture.store.run(runID).state == .failed)
        }
    }

    @Test func anAttemptQueuedPastTheQueuedTimeoutFailsToStart() async throws {
        let clock = TestClock()
        let dag = try DagFile.parse("""
            dag_id: stuck
            tasks:
              - {task_id: stuck, executor: c-instant, retries: 1, retry_delay: 1m, executor_config: {}}
            """, file: "stuck.yaml")
        try await SchedulerFixture.with(dag, now: { clock.now }, passFirst: false) { fixture, runID in
            // Queued but never handed to an executor, as when its agent vanished.
            try await fixture.store.startQueuedRuns()
            try await fixture.scheduler.evaluate(runID: runID)
            let claim = try #require(try await fixture.store.claimReady(limit: 1).first)

            let queuedAt = try await fixture.store.taskInstance(claim.taskInstanceID).updatedAt
            clock.set(queuedAt.addingTimeInterval(599))
            #expect(try await fixture.scheduler.enforceTimeouts() == 0)
            clock.set(queuedAt.addingTimeInterval(601))
            #expect(try await fixture.scheduler.enforceTimeouts() == 1)
            let instance = try await fixture.store.taskInstance(claim.taskInstanceID)
            #expect(instance.state == .upForRetry)
            #expect(instance.tryNumber == 1)
            let attempt = try #require(try await fixture.store.attempts(taskInstanceID: claim.taskInstanceID).last)
            #expect(attempt.failureReason == "task_queued_timeout: queued for longer than 10m without starting")
        }
    }
}

/// A clock tests move by hand.
private final class TestClock: Sendable {
    private let current = Mutex(Date())
    var now: Date { current.withLock { $0 } }
    func set(_ date: Date) { current.withLock { $0 = date } }
}

/// Scheduled runs: the timetable decides which runs are due at `now`.
@Suite struct ScheduledRunTests {
    static let now = Date(timeIntervalSince1970: 1_700_010_000)  // 2023-11-15T01:00:00Z

    static func dag(_ id: String, catchup: Bool, schedule: String = "@daily") throws -> DagDefinition {
        try DagFile.parse("""
            dag_id: \(id)
            schedule: "\(schedule)"
            start_date: 2023-11-12
            catchup: \(catchup)
            tasks:
              - {task_id: t, executor: c-instant, executor_config: {}}
            """, file: "\(id).yaml")
    }

    @Test func catchupCreatesEveryMissedIntervalOnce() async throws {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 2)
            defer { Task { await pool.close() } }
            let store = StateStore(pool: pool)
            try await store.submitDag(try Self.dag("nightly", catchup: true))
            let scheduler = Scheduler(store: store, executors: ExecutorHost(hostID: "t", log: { _, _, _ in }, events: { _ in }), now: { Self.now })

            #expect(try await scheduler.createDueRuns() == 3)
            #expect(try await scheduler.createDueRuns() == 0)
            let runs = try await store.runs(dagID: "nightly").sorted { $0.logicalDate < $1.logicalDate }
            #expect(runs.map(\.runID) == [
                "scheduled__2023-11-12T00:00:00+00:00", "scheduled__2023-11-13T00:00:00+00:00", "scheduled__2023-11-14T00:00:00+00:00",
            ])
            #expect(runs.map(\.logicalDate) == [1_699_747_200, 1_699_833_600, 1_699_920_000].map { Date(timeIntervalSince1970: $0) })
            #expect(runs.map(\.dataIntervalEnd) == [1_699_833_600, 1_699_920_000, 1_700_006_400].map { Date(timeIntervalSince1970: $0) })
            #expect(runs.allSatisfy { $0.runType == .scheduled })
        }
    }

    @Test func withoutCatchupOnlyTheLatestIntervalAndNothingForPausedOrManualDags() async throws {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 2)
            defer { Task { await pool.close() } }
            let store = StateStore(pool: pool)
            try await store.submitDag(try Self.dag("latest_only", catchup: false))
            try await store.submitDag(try Self.dag("paused", catchup: true))
            try await store.setPaused("paused", true)
            try await store.submitDag(try DagFile.parse("""
                dag_id: manual_only
                tasks: [{task_id: t, executor: c-instant, executor_config: {}}]
                """, file: "manual.yaml"))
            let scheduler = Scheduler(store: store, executors: ExecutorHost(hostID: "t", log: { _, _, _ in }, events: { _ in }), now: { Self.now })

            #expect(try await scheduler.createDueRuns() == 1)
            let runs = try await store.runs(dagID: "latest_only")
            #expect(runs.map(\.logicalDate) == [Date(timeIntervalSince1970: 1_699_920_000)])  // 2023-11-14
            #expect(try await store.runs(dagID: "paused").isEmpty)
            #expect(try await store.runs(dagID: "manual_only").isEmpty)
        }
    }
}

/// A control plane that restarts hands attempts in flight back to their
/// executors: nothing is lost, nothing runs twice.
@Suite struct AdoptionTests {
    @Test func attemptsInFlightAreAdoptedAfterARestart() async throws {
        let dag = try DagFile.parse("""
            dag_id: restart
            tasks:
              - {task_id: running, executor: c-instant, executor_config: {delay_ms: 60000}}
              - {task_id: queued, executor: c-instant, executor_config: {}}
            """, file: "restart.yaml")
        try await FreshDatabase.with { url in
            let record = FileManager.default.temporaryDirectory.appendingPathComponent("adopt-\(UUID().uuidString).tsv").path
            defer { try? FileManager.default.removeItem(atPath: record) }
            let pool = PostgresPool(url, maximumConnections: 4)
            let store = StateStore(pool: pool)
            try await store.submitDag(dag)
            let run = try await store.createRun(dagID: "restart", logicalDate: Date(timeIntervalSince1970: 1_700_000_000), runType: .manual).run
            try await store.startQueuedRuns()

            // Before the "crash": `running` is submitted and started (c-instant
            // recorded it, and would finish it in a minute); `queued` was
            // claimed but never handed to an executor.
            let before = try Controller(store: store, record: record)
            try await before.scheduler.evaluate(runID: run.id)
            let claims = try await store.claimReady(limit: 10)
            let queuedClaim = try #require(claims.first { $0.taskID == "queued" })
            let runningClaim = try #require(claims.first { $0.taskID == "running" })
            var assignment = Trellis_V1_TaskAssignment()
            assignment.attempt = .with {
                $0.attemptID = AttemptIdentity(taskInstanceID: runningClaim.taskInstanceID, attemptID: runningClaim.attemptID).text
                $0.fencingToken = runningClaim.fencingToken
            }
            assignment.dagID = "restart"; assignment.runID = run.runID; assignment.taskID = "running"; assignment.tryNumber = 1
            assignment.task = dag.spec.tasks[0]
            try before.host.submit(assignment, to: "c-instant")
            try await eventually("running starts") { try await store.taskInstance(runningClaim.taskInstanceID).state == .running }
            #expect(try await store.taskInstance(queuedClaim.taskInstanceID).state == .queued)
            before.stop()  // the delayed finish dies with it

            // After the restart: adopt what is in flight.
            let after = try Controller(store: store, record: record)
            #expect(try await after.scheduler.adoptInFlight() == 2)
            try await eventually("the run succeeds after the restart") { try await store.run(run.id).state == .success }
            let grid = Dictionary(uniqueKeysWithValues: try await store.taskInstances(runID: run.id).map { ($0.taskID, $0) })
            #expect(grid["running"]?.state == .success)
            #expect(grid["running"]?.tryNumber == 1)
            #expect(grid["queued"]?.state == .success)
            #expect(grid["queued"]?.tryNumber == 1)  // its lost, never-started attempt used no try
            // Each task executed exactly once: `running` before the restart
            // (answered from the record on adoption), `queued` after it.
            let executions = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n").map { $0.split(separator: "\t")[3] }
            #expect(executions.sorted() == ["queued", "running"])
            after.stop()
            await pool.close()
        }
    }
}

/// An executor host with c-instant and a scheduler fed by its events: one
/// control-plane process, for restart tests.
private final class Controller: Sendable {
    let host: ExecutorHost
    let scheduler: Scheduler
    let consumer: Task<Void, Never>
    let events = ExecutorEventInbox()

    init(store: StateStore, record: String) throws {
        let events = self.events
        host = ExecutorHost(hostID: "controller", log: { _, _, _ in }, events: { events.post($0) })
        _ = try host.load(path: try ChildProcess.builtProduct("libtrellis-executor-c-instant.so")) { _ in #"{"record_file": "\#(record)"}"# }
        let scheduler = Scheduler(store: store, executors: host, settings: .init(defaultExecutor: "c-instant"))
        self.scheduler = scheduler
        consumer = Task { while let batch = await events.take() { try? await scheduler.record(batch.records) } }
    }

    func stop() {
        host.shutdown()
        events.finish()
        consumer.cancel()
    }
}

extension ExecutorEventRecord {
    /// An executor's report that an attempt ended.
    static func finished(instance: Int64, attempt: Int64, token: Int64, outcome: Trellis_V1_AttemptOutcome, code: Int32) -> Self {
        var event = Trellis_V1_ExecutorEvent()
        event.attempt.attemptID = AttemptIdentity(taskInstanceID: instance, attemptID: attempt).text
        event.attempt.fencingToken = token
        var finished = Trellis_V1_AttemptFinished()
        finished.outcome = outcome
        finished.exit = .exitCode(code)
        event.finished = finished
        return ExecutorEventRecord(executor: "c-instant", event: event)
    }
}
