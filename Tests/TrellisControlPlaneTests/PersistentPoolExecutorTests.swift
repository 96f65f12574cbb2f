import Foundation
import Synchronization
import Testing
import TrellisProto
import TrellisTestSupport

@testable import TrellisControlPlane

/// The real persistent-pool plugin (libtrellis-executor-persistent-pool.so)
/// in a real ExecutorHost, dispatching to scripted agents.
@Suite struct PersistentPoolExecutorTests {
    @Test func dispatchesToTheLeastLoadedAgentWithinItsSlots() async throws {
        let pool = try PoolFixture()
        defer { pool.shutdown() }
        // Free share: a 1/4, b 2/2, c 4/8; 7 free slots in all.
        pool.agentsChanged([agent("a", slots: 4, free: 1), agent("b", slots: 2, free: 2), agent("c", slots: 8, free: 4)])
        for index in 1...8 { try pool.submit(task("t\(index)")) }

        try await pool.agents.waitForStarts(7)
        let starts = pool.agents.startsByAttempt
        // b (2/2) first; then b (1/2) and c (4/8) tie, b wins by name; then
        // c (4/8) over a (1/4), and so on while slots last.
        #expect(starts["t1"] == "b")
        #expect(starts["t2"] == "b")
        #expect(starts["t3"] == "c")
        #expect(starts.values.filter { $0 == "a" }.count == 1)
        #expect(starts.values.filter { $0 == "b" }.count == 2)
        #expect(starts.values.filter { $0 == "c" }.count == 4)
        // Every slot is taken: t8 waits in the queue.
        try await Task.sleep(for: .milliseconds(100))
        #expect(pool.agents.starts.count == 7)
        #expect(starts["t8"] == nil)

        let request = try #require(pool.agents.starts.first { $0.request.assignment.attempt.attemptID == "t1" })
        #expect(request.request.executor == "persistent-pool")
        #expect(request.request.assignment == task("t1"))
    }

    @Test func queuesWhenFullAndDispatchesAtOnceWhenASlotFreesOrAnAgentJoins() async throws {
        let pool = try PoolFixture()
        defer { pool.shutdown() }
        try pool.submit(task("early"))  // no agents yet: queued
        pool.agentsChanged([agent("a", slots: 1, free: 1)])
        try await pool.agents.waitForStarts(1)
        #expect(pool.agents.startsByAttempt["early"] == "a")

        try pool.submit(task("second"))
        pool.agentsChanged([agent("a", slots: 1, free: 0, running: ["early"])])
        try await Task.sleep(for: .milliseconds(100))
        #expect(pool.agents.starts.count == 1, "a is full: second waits")

        // early ended: its slot is free again, and second goes at once.
        pool.agentsChanged([agent("a", slots: 1, free: 1)])
        try await pool.agents.waitForStarts(2)
        #expect(pool.agents.startsByAttempt["second"] == "a")

        try pool.submit(task("third"))
        pool.agentsChanged([agent("a", slots: 1, free: 0, running: ["second"])])
        try await Task.sleep(for: .milliseconds(50))
        #expect(pool.agents.starts.count == 2)
        // An agent joins.
        pool.agentsChanged([agent("a", slots: 1, free: 0, running: ["second"]), agent("b", slots: 2, free: 2)])
        try await pool.agents.waitForStarts(3)
        #expect(pool.agents.startsByAttempt["third"] == "b")
    }

    @Test func queueSelectorsPickMatchingAgentsAndAMalformedOneIsRefused() async throws {
        let pool = try PoolFixture()
        defer { pool.shutdown() }
        pool.agentsChanged([
            agent("plain", slots: 8, free: 8),
            agent("gpu-eu", slots: 1, free: 1, labels: ["gpu": "true", "zone": "eu"]),
            agent("gpu-us", slots: 1, free: 1, labels: ["gpu": "true", "zone": "us", "queue": "gpu"]),
        ])
        try pool.submit(task("eu", queue: "zone=eu, gpu=true"))
        try pool.submit(task("named", queue: "gpu"))  // a bare name means queue=gpu
        try pool.submit(task("nowhere", queue: "zone=mars"))
        try await pool.agents.waitForStarts(2)
        #expect(pool.agents.startsByAttempt["eu"] == "gpu-eu")
        #expect(pool.agents.startsByAttempt["named"] == "gpu-us")
        try await Task.sleep(for: .milliseconds(100))
        #expect(pool.agents.startsByAttempt["nowhere"] == nil)

        for bad in ["zone=eu,gpu", "=eu", "zone=eu,zone=us", "zone=eu=us"] {
            #expect {
                try pool.submit(task("bad", queue: bad))
            } throws: { error in
                let message = (error as? ExecutorHostError)?.message ?? ""
                return message.contains("has a malformed queue selector \"\(bad)\"") && (error as? ExecutorHostError)?.status == 3
            }
        }
        #expect {
            try pool.submit(task("bad", queue: "zone=eu,,gpu=true"))
        } throws: { error in
            (error as? ExecutorHostError)?.message
                == "persistent-pool: task 'bad' of DAG 'sample_dag' has a malformed queue selector \"zone=eu,,gpu=true\": '' is not key=value (write k=v pairs separated by commas)"
        }
    }

    @Test func onlyNonDrainingAgentsOfTheConfiguredPoolGetWork() async throws {
        let pool = try PoolFixture(settings: #"{"agent_pool": "batch"}"#)
        defer { pool.shutdown() }
        pool.agentsChanged([
            agent("other-pool", pool: "default", slots: 8, free: 8),
            agent("draining", pool: "batch", slots: 8, free: 8, draining: true),
            agent("batch-1", pool: "batch", slots: 2, free: 1),
        ])
        try pool.submit(task("t1"))
        try pool.submit(task("t2"))
        try await pool.agents.waitForStarts(1)
        try await Task.sleep(for: .milliseconds(100))
        #expect(pool.agents.startsByAttempt == ["t1": "batch-1"])
    }

    @Test func aRefusalRequeuesAtTheFrontAndTriesAgainWhenAgentsChange() async throws {
        let pool = try PoolFixture()
        defer { pool.shutdown() }
        pool.agents.script("a", [.resourceExhausted])
        pool.agentsChanged([agent("a", slots: 2, free: 1)])
        try pool.submit(task("first"))
        try pool.submit(task("second"))
        try await pool.agents.waitForStarts(1)
        // Refused: first goes back to the front; a gets nothing more until
        // its next snapshot (no spinning).
        try await Task.sleep(for: .milliseconds(150))
        #expect(pool.agents.starts.map(\.request.assignment.attempt.attemptID) == ["first"])

        pool.agentsChanged([agent("a", slots: 2, free: 1)])
        try await pool.agents.waitForStarts(2)
        try await Task.sleep(for: .milliseconds(100))
        #expect(pool.agents.starts.map(\.request.assignment.attempt.attemptID) == ["first", "first"])
        #expect(pool.collector.finished.isEmpty)
    }

    @Test func aDrainingOrFullAgentsRefusalSendsTheTaskToAnotherAgentAtOnce() async throws {
        let pool = try PoolFixture()
        defer { pool.shutdown() }
        pool.agents.script("a", [.failedPrecondition])
        pool.agentsChanged([agent("a", slots: 4, free: 4), agent("b", slots: 4, free: 1)])
        try pool.submit(task("t1"))
        try await pool.agents.waitForStarts(2)
        #expect(pool.agents.starts.map(\.agent) == ["a", "b"])
    }

    /// UNAVAILABLE may mean the connection broke after the agent started
    /// the task: once the agent reports it running, it is not sent again.
    @Test func aQueuedTaskAnAgentReportsRunningIsNotStartedAgain() async throws {
        let pool = try PoolFixture()
        defer { pool.shutdown() }
        pool.agents.script("a", [AgentCallResult(status: 14, message: "the connection closed")])
        pool.agentsChanged([agent("a", slots: 2, free: 2)])
        try pool.submit(task("t1"))
        try await pool.agents.waitForStarts(1)
        try await eventually("the refusal is answered") { pool.agents.answered >= 1 }
        pool.agentsChanged([agent("a", slots: 2, free: 1, running: ["t1"]), agent("b", slots: 2, free: 2)])
        try await Task.sleep(for: .milliseconds(100))
        #expect(pool.agents.starts.count == 1)
        try pool.cancel("t1", token: 1, reason: "")
        try await pool.agents.waitForCancels(1)
        #expect(pool.agents.cancels.first?.agent == "a")
    }

    @Test func aRefusalOfTheTaskItselfFailsTheAttempt() async throws {
        let pool = try PoolFixture()
        defer { pool.shutdown() }
        pool.agents.script("a", [AgentCallResult(status: 3, message: "the task is not a process task")])
        pool.agentsChanged([agent("a", slots: 1, free: 1)])
        try pool.submit(task("t1", token: 4))
        let finished = try await pool.collector.waitForFinished(1)
        #expect(finished[0].attempt.attemptID == "t1")
        #expect(finished[0].attempt.fencingToken == 4)
        #expect(finished[0].finished.outcome == .failed)
        #expect(finished[0].finished.reason == "AgentRefused")
        #expect(finished[0].finished.message == "agent 'a' refused to start sample_dag.t1: the task is not a process task (status 3)")

        // Its reserved slot is free again.
        try pool.submit(task("t2"))
        try await pool.agents.waitForStarts(2)
        #expect(pool.agents.startsByAttempt["t2"] == "a")
    }

    @Test func cancelOfQueuedRunningAndUnknownAttempts() async throws {
        let pool = try PoolFixture()
        defer { pool.shutdown() }
        pool.agentsChanged([agent("a", slots: 1, free: 1)])
        try pool.submit(task("running", token: 2))
        try pool.submit(task("queued", token: 3))
        try await pool.agents.waitForStarts(1)

        try pool.cancel("queued", token: 3, reason: "cleared by a user")
        var finished = try await pool.collector.waitForFinished(1)
        #expect(finished[0].attempt.attemptID == "queued")
        #expect(finished[0].attempt.fencingToken == 3)
        #expect(finished[0].finished.outcome == .cancelled)
        #expect(finished[0].finished.message == "cleared by a user")

        // On an agent: the agent is asked, and reports the finished event itself.
        try await eventually("the start of 'running' is answered") {
            pool.agents.answered >= 1
        }
        try pool.cancel("running", token: 2, reason: "marked failed")
        try await pool.agents.waitForCancels(1)
        let cancel = try #require(pool.agents.cancels.first)
        #expect(cancel.agent == "a")
        #expect(cancel.request.attempt.attemptID == "running")
        #expect(cancel.request.attempt.fencingToken == 2)
        #expect(cancel.request.reason == "marked failed")

        try pool.cancel("ghost", token: 9, reason: "")
        finished = try await pool.collector.waitForFinished(2)
        #expect(finished[1].attempt.attemptID == "ghost")
        #expect(finished[1].attempt.fencingToken == 9)
        #expect(finished[1].finished.outcome == .cancelled)
        #expect(pool.agents.cancels.count == 1)
        // The queued task that was cancelled is never started.
        pool.agentsChanged([agent("a", slots: 1, free: 1)])
        try await Task.sleep(for: .milliseconds(100))
        #expect(pool.agents.starts.count == 1)
    }

    @Test func cancelWhileTheStartIsInFlightWaitsForTheAgentsAnswer() async throws {
        let pool = try PoolFixture()
        defer { pool.shutdown() }
        pool.agents.holdAnswers(true)
        pool.agentsChanged([agent("a", slots: 2, free: 2)])
        try pool.submit(task("accepted"))
        try pool.submit(task("refused"))
        try await pool.agents.waitForStarts(2)
        try pool.cancel("accepted", token: 1, reason: "stop")
        try pool.cancel("refused", token: 1, reason: "stop")
        pool.agents.script("a", [.ok, .resourceExhausted])
        pool.agents.holdAnswers(false)
        // Accepted: cancelled on the agent. Refused: never ran, cancelled here.
        try await pool.agents.waitForCancels(1)
        let finished = try await pool.collector.waitForFinished(1)
        let accepted = pool.agents.starts.first { $0.answer == .ok }?.request.assignment.attempt.attemptID
        let refused = accepted == "accepted" ? "refused" : "accepted"
        #expect(pool.agents.cancels.map(\.request.attempt.attemptID) == [accepted])
        #expect(finished.map(\.attempt.attemptID) == [refused])
        #expect(finished[0].finished.outcome == .cancelled)
    }

    @Test func adoptionKeepsAttemptsOnAgentsAndHoldsUnplacedOnesForTheGrace() async throws {
        let pool = try PoolFixture(settings: #"{"adopt_grace_seconds": 30}"#)
        defer { pool.shutdown() }
        try pool.adopt([("on-a", "a"), ("reached-b", ""), ("never-sent", "")])
        pool.agentsChanged([agent("a", slots: 4, free: 3, running: ["on-a"]), agent("b", slots: 4, free: 3, running: ["reached-b"])])
        try await Task.sleep(for: .milliseconds(100))
        #expect(pool.agents.starts.isEmpty, "within the grace nothing is dispatched")
        pool.tick(after: .seconds(10))
        try await Task.sleep(for: .milliseconds(100))
        #expect(pool.agents.starts.isEmpty)

        // The grace ends: what no agent runs is dispatched, once.
        pool.tick(after: .seconds(31))
        try await pool.agents.waitForStarts(1)
        try await Task.sleep(for: .milliseconds(100))
        #expect(Array(pool.agents.startsByAttempt.keys) == ["never-sent"])

        // Adopted attempts are known where they run: cancel reaches the agent.
        try pool.cancel("on-a", token: 1, reason: "")
        try pool.cancel("reached-b", token: 1, reason: "")
        try await pool.agents.waitForCancels(2)
        #expect(Dictionary(uniqueKeysWithValues: pool.agents.cancels.map { ($0.request.attempt.attemptID, $0.agent) }) == ["on-a": "a", "reached-b": "b"])
        #expect(pool.collector.finished.isEmpty)
    }

    @Test func withoutAGraceAdoptedUnplacedAttemptsAreDispatchedAtOnce() async throws {
        let pool = try PoolFixture(settings: #"{"adopt_grace_seconds": 0}"#)
        defer { pool.shutdown() }
        pool.agentsChanged([agent("a", slots: 4, free: 4)])
        try pool.adopt([("lost-in-queue", ""), ("elsewhere", "b")])
        try await pool.agents.waitForStarts(1)
        try await Task.sleep(for: .milliseconds(100))
        #expect(pool.agents.startsByAttempt == ["lost-in-queue": "a"])
    }

    @Test func onlyProcessTasksWithACommandAreAccepted() throws {
        let pool = try PoolFixture()
        defer { pool.shutdown() }
        var pod = task("p1")
        pod.task.pod = .with { $0.image = "busybox" }
        var empty = task("p2")
        empty.task.process.command = []
        var none = task("p3")
        none.task.spec = nil
        let cases: [(Trellis_V1_TaskAssignment, String)] = [
            (pod, "persistent-pool runs process tasks only: task 'p1' of DAG 'sample_dag' is a pod task (give it a process command, or run it with executor pod-per-task)"),
            (empty, "persistent-pool runs process tasks only: task 'p2' of DAG 'sample_dag' has an empty process command"),
            (none, "persistent-pool runs process tasks only: task 'p3' of DAG 'sample_dag' has no process command"),
        ]
        for (assignment, message) in cases {
            #expect {
                try pool.submit(assignment)
            } throws: { error in
                (error as? ExecutorHostError)?.message == message && (error as? ExecutorHostError)?.status == 3
            }
        }
    }

    @Test func badSettingsMakeCreateFailNamingTheKey() throws {
        let cases = [
            #"{"agent_pools": "batch"}"#: "unknown setting 'agent_pools' (known: adopt_grace_seconds, agent_pool, no_agent_warning_seconds)",
            #"{"adopt_grace_seconds": "soon"}"#: "setting 'adopt_grace_seconds' must be a whole number of seconds, 0 or more, got the string \"soon\"",
            #"{"adopt_grace_seconds": -1}"#: "setting 'adopt_grace_seconds' must be a whole number of seconds, 0 or more, got the number -1",
            #"{"agent_pool": true}"#: "setting 'agent_pool' must be a non-empty pool name, got true",
            #"{"no_agent_warning_seconds": 0}"#: "setting 'no_agent_warning_seconds' must be a whole number of seconds, 1 or more, got the number 0",
            #"["batch"]"#: "its settings are not a JSON object: [\"batch\"]",
        ]
        for (settings, reason) in cases {
            #expect {
                _ = try PoolFixture(settings: settings)
            } throws: { error in
                (error as? PluginLoadError)?.reason == "executor 'persistent-pool' failed to start: persistent-pool: \(reason)"
            }
        }
        // Integers for the pool name arrive as JSON literals from the environment.
        let numbered = try PoolFixture(settings: #"{"agent_pool": 7, "adopt_grace_seconds": 5}"#)
        numbered.shutdown()
    }

    @Test func warnsOnceWhenTasksWaitWithNoMatchingAgent() async throws {
        let pool = try PoolFixture(settings: #"{"no_agent_warning_seconds": 60}"#)
        defer { pool.shutdown() }
        pool.agentsChanged([agent("cpu", slots: 1, free: 0)])
        try pool.submit(task("t1", queue: "gpu=true"))
        try pool.submit(task("t2"))
        pool.tick(after: .seconds(5))
        #expect(pool.collector.warnings.isEmpty)
        pool.tick(after: .seconds(61))
        pool.tick(after: .seconds(62))
        #expect(pool.collector.warnings == [
            "1 task(s) with queue selector 'gpu=true' have waited 61 s and no agent of pool 'default' matches it (none connected with those labels, or all draining); they stay queued until one joins",
        ])
    }
}

// MARK: - Fixture

private func agent(
    _ name: String, pool: String = "default", slots: Int32, free: Int32, labels: [String: String] = [:],
    draining: Bool = false, running: [String] = []
) -> Trellis_V1_AgentState {
    .with {
        $0.name = name
        $0.pool = pool
        $0.slots = slots
        $0.freeSlots = free
        $0.labels = labels
        $0.draining = draining
        $0.runningAttemptIds = running
    }
}

private func task(_ id: String, token: Int64 = 1, queue: String = "") -> Trellis_V1_TaskAssignment {
    .with {
        $0.attempt = .with { $0.attemptID = id; $0.fencingToken = token }
        $0.dagID = "sample_dag"
        $0.runID = "manual__1"
        $0.taskID = id
        $0.tryNumber = 1
        $0.task = .with {
            $0.taskID = id
            $0.executor = "persistent-pool"
            $0.process = .with { $0.command = ["/bin/true"]; $0.queue = queue }
        }
    }
}

/// A host with the persistent-pool plugin loaded and scripted agents behind it.
private final class PoolFixture: Sendable {
    let agents = ScriptedAgents()
    let collector = PoolCollector()
    let host: ExecutorHost

    init(settings: String = "{}") throws {
        let collector = collector
        host = ExecutorHost(
            hostID: "test-host", agents: agents,
            log: { _, level, message in collector.log(level, message) },
            events: { collector.add($0) }
        )
        let path = try ChildProcess.builtProduct("libtrellis-executor-persistent-pool.so")
        do {
            _ = try host.load(path: path) { _ in settings }
        } catch {
            host.shutdown()
            throw error
        }
    }

    func submit(_ assignment: Trellis_V1_TaskAssignment) throws {
        try host.submit(assignment, to: "persistent-pool")
    }

    func cancel(_ id: String, token: Int64, reason: String) throws {
        try host.cancel(.with { $0.attempt = .with { $0.attemptID = id; $0.fencingToken = token }; $0.reason = reason }, on: "persistent-pool")
    }

    func adopt(_ attempts: [(id: String, agent: String)]) throws {
        try host.adopt(.with {
            $0.attempts = attempts.map { attempt in .with { $0.assignment = task(attempt.id); $0.externalID = attempt.agent } }
        }, on: "persistent-pool")
    }

    func agentsChanged(_ agents: [Trellis_V1_AgentState]) {
        host.agentsChanged(.with { $0.agents = agents })
    }

    /// A tick as if `offset` had passed since now.
    func tick(after offset: Duration) {
        host.tick(now: Date().addingTimeInterval(Double(offset.components.seconds)))
    }

    func shutdown() {
        agents.holdAnswers(false)
        host.shutdown()
    }
}

/// Agents as the plugin reaches them through the host's call_agent: records
/// every StartTask and CancelTask and answers as the test scripts (OK unless
/// told otherwise; answers can be held back to test calls in flight).
private final class ScriptedAgents: AgentCalling {
    struct Start: Sendable {
        var agent: String
        var request: Trellis_V1_StartTaskRequest
        var answer: AgentCallResult
    }

    struct Cancel: Sendable {
        var agent: String
        var request: Trellis_V1_CancelTaskRequest
    }

    private struct State {
        var scripts: [String: [AgentCallResult]] = [:]
        var starts: [Start] = []
        var cancels: [Cancel] = []
        var answered = 0
        var holding = false
        var held: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    /// The next answers of an agent's StartTask calls, in order.
    func script(_ agent: String, _ answers: [AgentCallResult]) {
        state.withLock { $0.scripts[agent, default: []].append(contentsOf: answers) }
    }

    func holdAnswers(_ hold: Bool) {
        let released = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.holding = hold
            defer { if !hold { state.held.removeAll() } }
            return hold ? [] : state.held
        }
        for continuation in released { continuation.resume() }
    }

    var starts: [Start] { state.withLock { $0.starts } }
    var cancels: [Cancel] { state.withLock { $0.cancels } }
    var answered: Int { state.withLock { $0.answered } }
    var startsByAttempt: [String: String] {
        Dictionary(starts.map { ($0.request.assignment.attempt.attemptID, $0.agent) }, uniquingKeysWith: { _, last in last })
    }

    func waitForStarts(_ count: Int) async throws {
        try await eventually("\(count) StartTask calls (have \(starts.count))", timeout: .seconds(10)) { self.starts.count >= count }
    }

    func waitForCancels(_ count: Int) async throws {
        try await eventually("\(count) CancelTask calls (have \(cancels.count))", timeout: .seconds(10)) { self.cancels.count >= count }
    }

    func call(_ request: AgentCallRequest) async -> AgentCallResult {
        switch request.method {
        case "/trellis.v1.AgentWorker/StartTask":
            guard let start = try? Trellis_V1_StartTaskRequest(serializedBytes: request.payload) else {
                return AgentCallResult(status: 3, message: "not a StartTaskRequest")
            }
            let index = state.withLock { state in
                state.starts.append(Start(agent: request.agent, request: start, answer: .ok))
                return state.starts.count - 1
            }
            await waitWhileHolding()
            return state.withLock { state in
                let answer = state.scripts[request.agent]?.isEmpty == false ? state.scripts[request.agent]!.removeFirst() : .ok
                state.starts[index].answer = answer
                state.answered += 1
                return answer
            }
        case "/trellis.v1.AgentWorker/CancelTask":
            guard let cancel = try? Trellis_V1_CancelTaskRequest(serializedBytes: request.payload) else {
                return AgentCallResult(status: 3, message: "not a CancelTaskRequest")
            }
            state.withLock { $0.cancels.append(Cancel(agent: request.agent, request: cancel)) }
            let response: [UInt8] = try! Trellis_V1_CancelTaskResponse.with { $0.wasRunning = true }.serializedBytes()
            return AgentCallResult(status: 0, payload: response)
        default:
            return AgentCallResult(status: 12, message: "unimplemented: \(request.method)")
        }
    }

    private func waitWhileHolding() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                guard state.holding else { return true }
                state.held.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }
}

extension AgentCallResult {
    static let ok = AgentCallResult(status: 0)
    static let resourceExhausted = AgentCallResult(status: 8, message: "every slot is taken")
    static let failedPrecondition = AgentCallResult(status: 9, message: "draining")
}

/// Events and log lines the plugin sends the host.
private final class PoolCollector: Sendable {
    private let events = Mutex<[Trellis_V1_ExecutorEvent]>([])
    private let lines = Mutex<[(PluginLogLevel, String)]>([])

    func add(_ record: ExecutorEventRecord) {
        #expect(record.executor == "persistent-pool")
        events.withLock { $0.append(record.event) }
    }

    func log(_ level: PluginLogLevel, _ message: String) { lines.withLock { $0.append((level, message)) } }

    var warnings: [String] { lines.withLock { $0.filter { $0.0 == .warning }.map(\.1) } }

    var finished: [(attempt: Trellis_V1_AttemptRef, finished: Trellis_V1_AttemptFinished)] {
        events.withLock { events in
            events.compactMap { event in
                if case .finished(let finished) = event.event { (event.attempt, finished) } else { nil }
            }
        }
    }

    func waitForFinished(_ count: Int) async throws -> [(attempt: Trellis_V1_AttemptRef, finished: Trellis_V1_AttemptFinished)] {
        try await eventually("\(count) finished events (have \(finished.count))", timeout: .seconds(10)) { self.finished.count >= count }
        return finished
    }
}
