public import Foundation
public import Logging
import TrellisCore
import TrellisProto
public import TrellisStore

/// The scheduling core of the control plane: evaluates runs with
/// TrellisCore's pure decisions, dispatches claimed task instances to their
/// executors, and records what executors report, re-evaluating the affected
/// run at once (event-driven, not at the next poll).
///
/// Every state change goes through the store's guarded transitions, so a
/// decision taken on a stale view simply does not apply.
public actor Scheduler {
    /// Knobs of the scheduling core.
    public struct Settings: Sendable {
        /// The executor of tasks that name none.
        public var defaultExecutor: String
        /// Task instances claimed per dispatch round.
        public var dispatchBatch: Int
        /// A task queued longer than this fails (Airflow's `task_queued_timeout`).
        public var taskQueuedTimeout: Duration
        /// Task instances queued or running at once across the deployment
        /// (Airflow's `core.parallelism`); nil is no cap.
        public var parallelism: Int?
        /// An agent silent for longer (heartbeat TTL plus grace) is lost, and
        /// its attempts with it.
        public var agentLostAfter: Duration

        public init(
            defaultExecutor: String = "persistent-pool", dispatchBatch: Int = 256, taskQueuedTimeout: Duration = .seconds(600),
            parallelism: Int? = nil, agentLostAfter: Duration = .seconds(45)
        ) {
            self.defaultExecutor = defaultExecutor
            self.dispatchBatch = dispatchBatch
            self.taskQueuedTimeout = taskQueuedTimeout
            self.parallelism = parallelism
            self.agentLostAfter = agentLostAfter
        }
    }

    private let store: StateStore
    private let executors: ExecutorHost
    private let settings: Settings
    private let now: @Sendable () -> Date
    private let metrics: ControlPlaneMetrics?
    let logger: Logger
    /// Parsed DAG versions, by (dag id, version): versions never change.
    private var versions: [DagVersionKey: DagVersion] = [:]
    /// The blocked pools logged already: each is logged once for as long
    /// as tasks wait for it.
    private var reportedPools: Set<BlockedPoolKey> = []

    /// - Parameter logger: where warnings that need an operator go (a pool
    ///   that tasks wait for in vain); by default nowhere.
    public init(
        store: StateStore, executors: ExecutorHost, settings: Settings = Settings(), metrics: ControlPlaneMetrics? = nil,
        logger: Logger = Logger(label: "trellis.scheduler", factory: { _ in SwiftLogNoOpLogHandler() }),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.metrics = metrics
        self.logger = logger
        self.store = store
        self.executors = executors
        self.settings = settings
        self.now = now
    }

    // MARK: Runs

    /// One scheduler pass: creates the runs schedules made due, starts
    /// queued runs within `max_active_runs`, evaluates every running run
    /// (which also makes due retries ready), and dispatches what is ready.
    public func pass() async throws {
        let started = ContinuousClock.now
        try await createDueRuns()
        try await enforceTimeouts()
        try await detectLostAgents()
        try await store.startQueuedRuns()
        let running = try await store.runs(state: .running)
        for run in running {
            try await evaluate(run)
        }
        try await recordSLAMisses(running)
        try await dispatch()
        try await reportBlockedPools()
        try await tickExecutors()
        metrics?.observeLoop(ContinuousClock.now - started)
        metrics?.schedulerHeartbeat()
    }

    /// The executors' tick (their timers: retries of refused starts, adopt
    /// graces, pool sizing), with each one's queued and running counts.
    public func tickExecutors() async throws {
        var counts: [String: (queued: Int, running: Int)] = [:]
        for (executor, count) in try await store.activeTaskCounts() {
            let name = executor.isEmpty ? settings.defaultExecutor : executor
            let previous = counts[name] ?? (0, 0)
            counts[name] = (previous.queued + count.queued, previous.running + count.running)
        }
        executors.tick(now: now(), counts: counts)
    }

    // MARK: Pools

    /// Logs a warning, once, for each pool that ready task instances wait
    /// for in vain, which `claimReady` passes over without a word: a pool
    /// that does not exist (Airflow: "Tasks using non-existent pool '%s'
    /// will not be scheduled"), or one with fewer slots than a task needs.
    /// A pool fixed and later blocked again is logged again. Returns the
    /// pools newly logged.
    @discardableResult
    public func reportBlockedPools() async throws -> [BlockedPool] {
        let blocked = try await store.blockedPools()
        let fresh = blocked.filter { !reportedPools.contains(BlockedPoolKey($0)) }
        reportedPools = Set(blocked.map(BlockedPoolKey.init))
        for pool in fresh {
            var metadata: Logger.Metadata = [
                "pool": "\(pool.name)", "waiting_task_instances": "\(pool.waiting)", "dags": "\(pool.dagIDs.joined(separator: ","))",
            ]
            if let slots = pool.slots {
                metadata["slots"] = "\(slots)"
                metadata["largest_pool_slots"] = "\(pool.largestNeed)"
                metadata["fix"] = "trellis pools set \(pool.name) \(pool.largestNeed)"
                logger.warning("tasks needing more slots than their pool has will not be scheduled until it grows", metadata: metadata)
            } else {
                metadata["fix"] = "trellis pools set \(pool.name) SLOTS"
                logger.warning("tasks using a pool that does not exist will not be scheduled until it is created", metadata: metadata)
            }
        }
        return fresh
    }

    // MARK: Lost agents and SLAs

    /// Agents silent past `agentLostAfter` are lost: each attempt they had
    /// in flight ends `lost` with that reason (a queued one goes back to
    /// `none`, a running one fails and is retried if it has tries left).
    /// Returns the agents found lost.
    @discardableResult
    public func detectLostAgents() async throws -> [String] {
        let silentSince = now().addingTimeInterval(-settings.agentLostAfter.seconds)
        let lost = try await store.markLostAgents(heartbeatBefore: silentSince)
        for agent in lost {
            let attempts = try await store.attemptsInFlight(agentName: agent)
            let events = attempts.map { attempt in
                var event = Trellis_V1_ExecutorEvent()
                event.attempt.attemptID = AttemptIdentity(taskInstanceID: attempt.taskInstanceID, attemptID: attempt.id).text
                event.attempt.fencingToken = attempt.fencingToken
                var finished = Trellis_V1_AttemptFinished()
                finished.outcome = .lost
                finished.reason = "AgentLost"
                finished.message = "agent '\(agent)' was lost: no heartbeat for \(DurationText.format(millis: settings.agentLostAfter.milliseconds))"
                event.finished = finished
                return ExecutorEventRecord(executor: attempt.executor.isEmpty ? settings.defaultExecutor : attempt.executor, event: event)
            }
            if !events.isEmpty { try await record(events) }
        }
        return lost
    }

    /// Records an `sla_miss` event, once, for every task instance of a
    /// running run that is not done by its SLA: the run's data interval end
    /// (its logical date for manual runs) plus the task's `sla`, as
    /// Airflow measures it. Returns how many misses were new.
    @discardableResult
    public func recordSLAMisses(_ runs: [DagRunRecord]) async throws -> Int {
        let now = now()
        var candidates: [Int64] = []
        var details: [Int64: String] = [:]
        for run in runs {
            let version = try await dagVersion(run.dagID, run.dagVersion)
            let slas = Dictionary(uniqueKeysWithValues: version.spec.tasks.filter(\.hasSla).map { ($0.taskID, $0.sla.millis) })
            guard !slas.isEmpty else { continue }
            let reference = run.dataIntervalEnd ?? run.logicalDate
            for instance in try await store.taskInstances(runID: run.id) {
                guard let sla = slas[instance.taskID], ![.success, .skipped, .removed].contains(instance.state) else { continue }
                let deadline = reference.addingTimeInterval(Double(sla) / 1_000)
                guard deadline < now else { continue }
                candidates.append(instance.id)
                details[instance.id] = "SLA of \(DurationText.format(millis: sla)) missed: not done by \(ISO8601DateFormatter().string(from: deadline))"
            }
        }
        let missed = try await store.recordSLAMisses(candidates, detail: details)
        if !missed.isEmpty { metrics?.slaMissed(count: missed.count) }
        return missed.count
    }

    /// Reacts at once to a change made elsewhere (a run triggered, cleared,
    /// marked or cancelled through the API, a DAG unpaused): starts queued
    /// runs, evaluates the run (every running run when `runID` is nil, and
    /// creates due cron runs) and dispatches what became ready.
    public func wake(runID: Int64?) async throws {
        guard let runID else {
            try await pass()
            return
        }
        try await store.startQueuedRuns()
        try await evaluate(runID: runID)
        try await dispatch()
    }

    /// Applies the pure decisions to one run: schedules, skips and fails
    /// downstream task instances, makes due retries ready, and finishes the
    /// run when every instance is done.
    public func evaluate(runID: Int64) async throws {
        try await evaluate(try await store.run(runID))
    }

    private func evaluate(_ run: DagRunRecord) async throws {
        guard run.state == .running else { return }
        let version = try await dagVersion(run.dagID, run.dagVersion)
        let instances = try await store.taskInstances(runID: run.id)
        let byTask = Dictionary(uniqueKeysWithValues: instances.map { ($0.taskID, $0) })
        let snapshots = version.graph.taskIDs.map { id in
            byTask[id].map { TaskInstanceSnapshot($0.state, retryAt: $0.nextRetryAt) } ?? TaskInstanceSnapshot(.removed)
        }
        let previous = version.dependsOnPast ? try await previousRun(of: run, version: version) : nil
        let decision = version.evaluator.evaluate(snapshots, previousRun: previous, now: now())

        let requests = decision.changes.compactMap { change -> TransitionRequest? in
            guard let instance = byTask[change.taskID] else { return nil }
            return TransitionRequest(taskInstanceID: instance.id, event: change.event, expected: change.from)
        }
        if !requests.isEmpty { _ = try await store.transition(requests) }
        switch decision.outcome {
        case .running: break
        case .success: _ = try await store.finishRun(run.id, state: .success)
        case .failed: _ = try await store.finishRun(run.id, state: .failed)
        }
    }

    /// Creates the scheduled runs that are due for every unpaused DAG, with
    /// Airflow's timetable rules (`Timetable`): each run's data interval,
    /// catchup of every missed interval or only the latest, `end_date`,
    /// `@once`. Idempotent: a run per DAG and logical date is created once.
    /// Returns how many runs were created.
    @discardableResult
    public func createDueRuns(limitPerDag: Int = 64) async throws -> Int {
        var created = 0
        for dag in try await store.dags() where !dag.isPaused {
            let version = try await dagVersion(dag.dagID, dag.latestVersion)
            guard let timetable = version.timetable else { continue }
            let last = try await store.latestScheduledRun(dagID: dag.dagID)
            let lastEnd = last.map { $0.dataIntervalEnd ?? $0.logicalDate }
            for interval in timetable.dueRuns(lastDataIntervalEnd: lastEnd, now: now(), limit: limitPerDag) {
                let result = try await store.createRun(
                    dagID: dag.dagID, logicalDate: interval.logicalDate, runType: .scheduled,
                    runID: RunIDs.generate(runType: DagRunType.scheduled.rawValue, logicalDate: interval.logicalDate),
                    dataInterval: (interval.start, interval.end))
                if result.created {
                    created += 1
                    metrics?.dagRunCreated(runType: .scheduled)
                }
            }
        }
        return created
    }

    /// Fails what ran or waited too long: a running attempt past its task's
    /// `execution_timeout` is cancelled on its executor and ends `timed out`
    /// (retried if tries remain); an attempt queued longer than
    /// `task_queued_timeout` fails to start with that reason. Returns how
    /// many instances it moved.
    @discardableResult
    public func enforceTimeouts() async throws -> Int {
        let now = now()
        var moved = 0
        // Many instances share a run: read each run once per sweep.
        var runs: [Int64: DagRunRecord] = [:]
        for instance in try await store.taskInstances(inStates: [.queued, .running]) {
            guard let token = instance.fencingToken else { continue }
            let run: DagRunRecord
            if let known = runs[instance.dagRunID] {
                run = known
            } else {
                run = try await store.run(instance.dagRunID)
                runs[instance.dagRunID] = run
            }
            let version = try await dagVersion(run.dagID, run.dagVersion)
            guard let position = version.graph.index[instance.taskID] else { continue }
            let task = version.spec.tasks[position]
            let policy = RetryPolicy(spec: task)
            if instance.state == .running, let started = instance.startDate, let timeout = ExecutionTimeout(spec: task),
               timeout.hasExpired(startedAt: started, now: now) {
                let reason = "execution_timeout: ran longer than \(DurationText.format(millis: task.executionTimeout.millis))"
                let retryAt = policy.nextRetry(afterTry: instance.tryNumber, endedAt: now, of: jitterKey(run, instance.taskID))
                let applied = try await store.endAttempt(
                    taskInstanceID: instance.id, fencingToken: token, outcome: .timedOut, failureReason: reason, retryAt: retryAt)
                guard applied != nil else { continue }
                moved += 1
                let executor = instance.executor.isEmpty ? settings.defaultExecutor : instance.executor
                let attempts = try await store.attempts(taskInstanceID: instance.id)
                if let attempt = attempts.last(where: { $0.fencingToken == token }) {
                    var cancel = Trellis_V1_CancelRequest()
                    cancel.attempt.attemptID = AttemptIdentity(taskInstanceID: instance.id, attemptID: attempt.id).text
                    cancel.attempt.fencingToken = token
                    cancel.reason = reason
                    // The attempt is already ended in the store; a failed cancel leaves nothing to undo.
                    try? executors.cancel(cancel, on: executor)
                }
                try await evaluate(run)
            } else if instance.state == .queued, now.timeIntervalSince(instance.updatedAt) > settings.taskQueuedTimeout.seconds {
                let reason = "task_queued_timeout: queued for longer than \(DurationText.format(millis: settings.taskQueuedTimeout.milliseconds)) without starting"
                let retryAt = policy.nextRetry(afterTry: instance.tryNumber + 1, endedAt: now, of: jitterKey(run, instance.taskID))
                let applied = try await store.failToStart(taskInstanceID: instance.id, fencingToken: token, reason: reason, retryAt: retryAt)
                guard applied != nil else { continue }
                moved += 1
                try await evaluate(run)
            }
        }
        return moved
    }

    /// The previous run's instance of each task, by graph position, for
    /// `depends_on_past` (Airflow's prev_dagrun_dep: the run with the latest
    /// logical date before this one).
    private func previousRun(of run: DagRunRecord, version: DagVersion) async throws -> [PreviousTaskInstance]? {
        guard let previous = try await store.runs(dagID: run.dagID, before: run.logicalDate, limit: 1).first else { return nil }
        let states = Dictionary(uniqueKeysWithValues: try await store.taskInstances(runID: previous.id).map { ($0.taskID, $0.state) })
        return version.graph.taskIDs.map { id in states[id].map(PreviousTaskInstance.state) ?? .missing }
    }

    // MARK: Dispatch

    /// Claims ready task instances (priority order, within pool slots and
    /// `max_active_tasks`) and hands each to its executor. One whose executor
    /// is not loaded, whose templates cannot render or which its executor
    /// refuses fails to start with that reason, which the task grid shows.
    public func dispatch() async throws {
        while true {
            let claims = try await store.claimReady(limit: settings.dispatchBatch, parallelism: settings.parallelism)
            // Claims of one round mostly share a few runs: read each once.
            var runs: [Int64: DagRunRecord] = [:]
            for claim in claims {
                let run: DagRunRecord
                if let known = runs[claim.dagRunID] {
                    run = known
                } else {
                    run = try await store.run(claim.dagRunID)
                    runs[claim.dagRunID] = run
                }
                try await submit(claim, of: run)
            }
            if claims.count < settings.dispatchBatch { return }
        }
    }

    private func submit(_ claim: ClaimedTask, of run: DagRunRecord) async throws {
        let tryNumber = claim.tryNumber
        let executor = claim.executor.isEmpty ? settings.defaultExecutor : claim.executor
        do {
            let assignment = try await assignment(
                run: run, taskID: claim.taskID, taskInstanceID: claim.taskInstanceID, attemptID: claim.attemptID,
                fencingToken: claim.fencingToken, tryNumber: tryNumber, executor: executor)
            try executors.submit(assignment, to: executor)
            if let readySince = claim.readySince {
                metrics?.observeDispatchLatency(seconds: max(0, now().timeIntervalSince(readySince)), executor: executor)
            }
        } catch {
            let reason = (error as? ExecutorHostError)?.message ?? (error as? CoreError)?.message ?? "\(error)"
            let version = try await dagVersion(run.dagID, run.dagVersion)
            let retryAt = version.graph.index[claim.taskID].map {
                RetryPolicy(spec: version.spec.tasks[$0]).nextRetry(afterTry: tryNumber, endedAt: now(), of: jitterKey(run, claim.taskID))
            }
            _ = try await store.failToStart(taskInstanceID: claim.taskInstanceID, fencingToken: claim.fencingToken,
                                            reason: reason, retryAt: retryAt)
            try await evaluate(runID: run.id)
        }
    }

    /// The message an executor gets for one attempt: the task of the run's
    /// DAG version with its templates rendered for this try.
    private func assignment(
        run: DagRunRecord, taskID: String, taskInstanceID: Int64, attemptID: Int64, fencingToken: Int64,
        tryNumber: Int, executor: String
    ) async throws -> Trellis_V1_TaskAssignment {
        let version = try await dagVersion(run.dagID, run.dagVersion)
        guard let position = version.graph.index[taskID] else {
            throw CoreError(.invalidDag, "task '\(taskID)' is not in version \(run.dagVersion) of DAG '\(run.dagID)'")
        }
        var assignment = Trellis_V1_TaskAssignment()
        assignment.attempt.attemptID = AttemptIdentity(taskInstanceID: taskInstanceID, attemptID: attemptID).text
        assignment.attempt.fencingToken = fencingToken
        assignment.dagID = run.dagID
        assignment.runID = run.runID
        assignment.taskID = taskID
        assignment.tryNumber = Int32(tryNumber)
        assignment.logicalDate.unixMicros = Int64((run.logicalDate.timeIntervalSince1970 * 1_000_000).rounded())
        let task = version.spec.tasks[position]
        let xcom = version.readsXcom.contains(taskID)
            ? try await store.xcoms(runID: run.id).mapValues(TaskRendering.xcomValue) : [:]
        assignment.task = try TaskRendering.render(task, context: TemplateContext(
            dagID: run.dagID, taskID: taskID, runID: run.runID, tryNumber: tryNumber,
            logicalDate: run.logicalDate,
            dataIntervalStart: run.dataIntervalStart ?? run.logicalDate,
            dataIntervalEnd: run.dataIntervalEnd ?? run.logicalDate,
            params: TaskRendering.params(defaults: version.spec.paramsJson, conf: run.conf),
            xcom: xcom
        ))
        assignment.task.executor = executor
        return assignment
    }

    // MARK: Restart

    /// After a restart (or a new leader taking over), hands every attempt the
    /// database says is in flight back to its executor (`adopt`), so nothing
    /// is lost or started twice: the executor reports how each one went, or
    /// `lost` for one it never ran. Attempts whose executor is not loaded
    /// end as lost. Returns how many attempts were handed back.
    @discardableResult
    public func adoptInFlight() async throws -> Int {
        var byExecutor: [String: [Trellis_V1_AdoptedAttempt]] = [:]
        var orphans: [(AttemptRecord, TaskInstanceRecord)] = []
        let loaded = Set(executors.loaded.map(\.name))
        let inFlight = try await store.attemptsInFlight()
        let outputBytes = try await store.outputBytes(attemptIDs: inFlight.map(\.id))
        for attempt in inFlight {
            let instance = try await store.taskInstance(attempt.taskInstanceID)
            guard instance.fencingToken == attempt.fencingToken else { continue }
            let executor = attempt.executor.isEmpty ? settings.defaultExecutor : attempt.executor
            guard loaded.contains(executor) else {
                orphans.append((attempt, instance))
                continue
            }
            let run = try await store.run(instance.dagRunID)
            var adopted = Trellis_V1_AdoptedAttempt()
            adopted.assignment = try await assignment(
                run: run, taskID: instance.taskID, taskInstanceID: instance.id, attemptID: attempt.id,
                fencingToken: attempt.fencingToken, tryNumber: instance.state == .running ? instance.tryNumber : instance.tryNumber + 1,
                executor: executor)
            adopted.externalID = attempt.agentName ?? attempt.podName ?? ""
            adopted.outputBytes = Int64(outputBytes[attempt.id] ?? 0)
            byExecutor[executor, default: []].append(adopted)
        }
        var handedBack = 0
        for (executor, attempts) in byExecutor.sorted(by: { $0.key < $1.key }) {
            var request = Trellis_V1_AdoptRequest()
            request.attempts = attempts
            do {
                try executors.adopt(request, on: executor)
                handedBack += attempts.count
            } catch {
                // Not adopted: the timeout sweep fails them (queued) or the
                // execution timeout does (running).
                continue
            }
        }
        for (attempt, instance) in orphans {
            let reason = "executor '\(attempt.executor.isEmpty ? settings.defaultExecutor : attempt.executor)' is not loaded after a restart"
            if instance.state == .running {
                _ = try await store.endAttempt(taskInstanceID: instance.id, fencingToken: attempt.fencingToken, outcome: .lost, failureReason: reason)
            } else {
                _ = try await store.failToStart(taskInstanceID: instance.id, fencingToken: attempt.fencingToken, reason: reason)
            }
            try await evaluate(runID: instance.dagRunID)
        }
        return handedBack
    }

    // MARK: Executor events

    /// Records one executor event (see `record(_:)` for a batch).
    public func record(_ record: ExecutorEventRecord) async throws {
        try await self.record([record])
    }

    /// Records a batch of executor events: attempts that started, wrote log
    /// output or ended. Starts and ends are applied in a few batched,
    /// guarded transitions; then each run with an ended attempt is evaluated
    /// once and what became ready is dispatched at once (event-driven, not
    /// at the next sweep). Events carrying a stale fencing token change
    /// nothing.
    ///
    /// A replica that does not lead passes `followUp: false`: what its
    /// executors report is still recorded (the fencing tokens keep that
    /// safe), but evaluating and dispatching is left to the leader.
    public func record(_ records: [ExecutorEventRecord], followUp: Bool = true) async throws {
        var starts: [TransitionRequest] = []
        var startedInstances = Set<Int64>()
        var ends: [(instance: Int64, token: Int64, finished: Trellis_V1_AttemptFinished, at: Date?)] = []
        var executorOf: [Int64: String] = [:]
        for record in records {
            let event = record.event
            guard let identity = AttemptIdentity(event.attempt.attemptID) else { continue }
            let token = event.attempt.fencingToken
            switch event.event {
            case .started(let started)?:
                // Where it runs: the reporting agent, else as the executor
                // says. Plugins built before external_kind say nothing: their
                // attempts run on agents, except pod-per-task's.
                let isPod = switch started.externalKind {
                case .pod: true
                case .unspecified: record.executor == "pod-per-task"
                default: false
                }
                let agentName = record.agent ?? (isPod ? nil : started.node.nilIfEmpty)
                starts.append(TransitionRequest(
                    taskInstanceID: identity.taskInstanceID, event: .start, expected: .queued, fencingToken: token,
                    agentName: agentName, podName: isPod ? started.externalID.nilIfEmpty : nil, at: Self.time(of: event)))
                startedInstances.insert(identity.taskInstanceID)
            case .log(let chunk)?:
                let stream: LogStream = switch chunk.stream {
                case .stderr: .stderr
                case .system: .system
                default: .stdout
                }
                _ = try await store.appendLog(attemptID: identity.attemptID, stream: stream, Array(chunk.data))
            case .finished(let finished)?:
                ends.append((identity.taskInstanceID, token, finished, Self.time(of: event)))
                executorOf[identity.taskInstanceID] = record.executor
            case nil:
                continue
            }
        }
        // An end whose start was never recorded (a restart in between, or an
        // executor that reports only ends) starts the try first. A lost
        // attempt that never started is not a try: it goes back to `none`.
        for end in ends where end.finished.outcome != .lost && !startedInstances.contains(end.instance) {
            starts.append(TransitionRequest(taskInstanceID: end.instance, event: .start, expected: .queued, fencingToken: end.token))
            startedInstances.insert(end.instance)
        }
        _ = try await applyInRounds(starts)

        var changedRuns = Set<Int64>()
        let lostBeforeStart = ends.filter { $0.finished.outcome == .lost }.map {
            TransitionRequest(taskInstanceID: $0.instance, event: .lose, expected: .queued, fencingToken: $0.token,
                              failureReason: $0.finished.message.nilIfEmpty)
        }
        for applied in try await applyInRounds(lostBeforeStart) { changedRuns.insert(applied.dagRunID) }

        // Failures may be retried: their retry time needs the task's policy
        // and the try that just ended.
        let failing = Set(ends.filter { $0.finished.outcome != .succeeded || !Self.isJSON(orEmpty: $0.finished.xcomJson) }.map(\.instance))
        let instances = Dictionary(
            uniqueKeysWithValues: try await store.taskInstances(ids: Array(failing).sorted()).map { ($0.id, $0) })
        var endRequests: [TransitionRequest] = []
        for end in ends {
            let finished = end.finished
            var retryAt: Date?
            if let instance = instances[end.instance] {
                let run = try await store.run(instance.dagRunID)
                let version = try await dagVersion(run.dagID, run.dagVersion)
                retryAt = version.graph.index[instance.taskID].map { position in
                    RetryPolicy(spec: version.spec.tasks[position])
                        .nextRetry(afterTry: instance.tryNumber, endedAt: now(), of: jitterKey(run, instance.taskID))
                }
            }
            let exitCode: Int? = if case .exitCode(let code)? = finished.exit { Int(code) } else { nil }
            let reason = [finished.reason, finished.message].filter { !$0.isEmpty }.joined(separator: ": ")
            var outcome = Self.outcome(finished.outcome)
            var failureReason = reason.nilIfEmpty
            let xcom = finished.xcomJson.nilIfEmpty
            if outcome == .success, !Self.isJSON(orEmpty: finished.xcomJson) {
                // Downstream templates could not use it: the try fails, saying why.
                outcome = .failure
                failureReason = "InvalidXCom: the task's result is not valid JSON: \(finished.xcomJson.prefix(200))"
            }
            endRequests.append(TransitionRequest(
                taskInstanceID: end.instance, event: outcome.event, expected: .running, fencingToken: end.token,
                exitCode: exitCode, failureReason: failureReason, retryAt: retryAt, xcom: xcom, at: end.at))
        }
        for applied in try await applyInRounds(endRequests) {
            changedRuns.insert(applied.dagRunID)
            metrics?.taskFinished(executor: executorOf[applied.taskInstanceID] ?? settings.defaultExecutor, state: applied.to)
        }

        guard followUp, !changedRuns.isEmpty else { return }
        for runID in changedRuns.sorted() { try await evaluate(runID: runID) }
        try await dispatch()
    }

    /// Applies guarded transitions in as few batches as possible: a batch
    /// may name each instance once, so repeated reports about one instance
    /// (a stale attempt's late end beside the current one's) go in later
    /// rounds, in the order they came.
    private func applyInRounds(_ requests: [TransitionRequest]) async throws -> [AppliedTransition] {
        var pending = requests
        var applied: [AppliedTransition] = []
        while !pending.isEmpty {
            var seen = Set<Int64>()
            var round: [TransitionRequest] = []
            var later: [TransitionRequest] = []
            for request in pending {
                if seen.insert(request.taskInstanceID).inserted { round.append(request) } else { later.append(request) }
            }
            applied += try await store.transition(round)
            pending = later
        }
        return applied
    }

    /// When an event happened by the executor's clock, if it said.
    static func time(of event: Trellis_V1_ExecutorEvent) -> Date? {
        event.hasAt && event.at.unixMicros > 0 ? Date(timeIntervalSince1970: Double(event.at.unixMicros) / 1_000_000) : nil
    }

    /// Whether a result is absent or valid JSON.
    static func isJSON(orEmpty text: String) -> Bool {
        text.isEmpty || (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil
    }

    static func outcome(_ outcome: Trellis_V1_AttemptOutcome) -> AttemptOutcome {
        switch outcome {
        case .succeeded: .success
        case .timedOut: .timedOut
        case .lost: .lost
        case .failed, .cancelled, .unspecified, .UNRECOGNIZED: .failure
        }
    }

    private func jitterKey(_ run: DagRunRecord, _ taskID: String) -> RetryJitterKey {
        RetryJitterKey(dagID: run.dagID, taskID: taskID, runKey: run.runID)
    }

    // MARK: DAG versions

    private func dagVersion(_ dagID: String, _ version: Int) async throws -> DagVersion {
        let key = DagVersionKey(dagID: dagID, version: version)
        if let cached = versions[key] { return cached }
        let spec = try await store.dagSpec(dagID, version: version)
        let parsed = try DagVersion(spec: spec)
        versions[key] = parsed
        return parsed
    }
}

private struct DagVersionKey: Hashable {
    var dagID: String
    var version: Int
}

/// A stored DAG version made ready for evaluation.
private struct DagVersion {
    let spec: Trellis_V1_DagSpec
    let graph: DagGraph
    let evaluator: RunEvaluator
    let dependsOnPast: Bool
    /// nil for manual-only DAGs.
    let timetable: Timetable?
    /// Tasks whose templates read an upstream result.
    let readsXcom: Set<String>

    init(spec: Trellis_V1_DagSpec) throws {
        self.spec = spec
        readsXcom = Set(spec.tasks.filter(TaskRendering.readsXcom).map(\.taskID))
        evaluator = try RunEvaluator(spec: spec)
        graph = evaluator.graph
        dependsOnPast = spec.tasks.contains(where: \.dependsOnPast)
        let schedule = try Schedule(parsing: spec.schedule.isEmpty ? nil : spec.schedule)
        if case .manual = schedule {
            timetable = nil
        } else {
            timetable = Timetable(
                schedule: schedule,
                timeZone: try ScheduleTimeZone(parsing: spec.timezone.isEmpty ? nil : spec.timezone),
                startDate: Date(timeIntervalSince1970: Double(spec.startDate.unixMicros) / 1_000_000),
                endDate: spec.hasEndDate ? Date(timeIntervalSince1970: Double(spec.endDate.unixMicros) / 1_000_000) : nil,
                catchup: spec.catchup)
        }
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var milliseconds: Int64 { components.seconds * 1_000 + components.attoseconds / 1_000_000_000_000_000 }
}

/// A pool reported blocked, and how: a pool that was missing and then
/// exists but is too small is a new report.
private struct BlockedPoolKey: Hashable {
    var name: String
    var missing: Bool

    init(_ pool: BlockedPool) {
        name = pool.name
        missing = pool.slots == nil
    }
}
