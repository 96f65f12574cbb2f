import Foundation
import Testing
import TrellisAgent
import TrellisProto
import TrellisTestSupport
import TrellisWire

/// The agent's link against a real wire server playing the control plane.
@Suite struct AgentLinkTests {
    @Test func registersHeartbeatsAndRunsTasksWithEventsInOrder() async throws {
        // A TTL short enough to see heartbeats soon, long enough that a
        // loaded machine does not time the connection out (600 ms did).
        let plane = try await TestControlPlane.start(heartbeatTTL: .seconds(2))
        let work = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let agent = makeAgent(plane, slots: 1, workDirectory: work)
        let link = Task { try await agent.run() }
        defer { link.cancel() }

        let registration = try await plane.registration(1)
        #expect(registration.agent.name == "agent-a")
        #expect(registration.agent.node == "node-a")
        #expect(registration.agent.pool == "etl")
        #expect(registration.agent.labels == ["zone": "a", "gpu": "false"])
        #expect(registration.agent.slots == 1)
        #expect(registration.agent.version == TrellisVersion.current)
        #expect(registration.load.freeSlots == 1 && registration.load.running.isEmpty && !registration.load.draining)
        #expect(registration.endedUnreported.isEmpty)
        // Heartbeats come at a third of the 2 s TTL Register answered.
        try await eventually("two heartbeats") { plane.recorded.heartbeats.count >= 2 }

        // Long enough that t1 still runs while a loaded machine gets to the next calls.
        try await plane.startTask(startRequest("t1", ["/bin/sh", "-c", "echo one; echo two >&2; sleep 6; echo three"]))
        // While it runs: the one slot is busy, and StartTask says so.
        await #expect { try await plane.startTask(startRequest("t2", ["/bin/true"])) } throws: {
            ($0 as? WireError)?.code == .resourceExhausted
        }
        // Repeating the running attempt is OK and starts nothing.
        try await plane.startTask(startRequest("t1", ["/bin/true"]))
        await #expect { try await plane.startTask(startRequest("t3", [])) } throws: { ($0 as? WireError)?.code == .invalidArgument }
        #expect(try await plane.cancelTask("nope", reason: "x") == false)

        let finished = try await plane.finished("t1")
        #expect(finished.outcome == .succeeded)
        let events = plane.events(of: "t1")
        guard case .started(let started)? = events.first?.event else { Issue.record("not started first: \(events)"); return }
        #expect(started.externalID == "agent-a" && started.node == "node-a")
        guard case .finished? = events.last?.event else { Issue.record("not finished last"); return }
        #expect(events.count(where: { if case .finished? = $0.event { true } else { false } }) == 1)
        #expect(plane.output(of: "t1") == "one\nthree\n")
        #expect(plane.output(of: "t1", .stderr) == "two\n")
        #expect(plane.events.allSatisfy { $0.executor == "persistent-pool" })
        // The report carrying the end frees the slot in its load.
        let last = try #require(plane.recorded.reports.last(where: { $0.events.contains { $0.event.attempt.attemptID == "t1" && $0.event.finished.outcome == .succeeded } }))
        #expect(last.load.freeSlots == 1 && last.load.running.isEmpty)
    }

    @Test func aRestartedControlPlaneGetsTheRegistrationAndEveryEvent() async throws {
        let plane = try await TestControlPlane.start()
        let work = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let agent = makeAgent(plane, slots: 4, workDirectory: work)
        let link = Task { try await agent.run() }
        defer { link.cancel() }
        _ = try await plane.registration(1)

        let flag = work.appendingPathComponent("go").path
        // `long` runs across the outage; `short` ends during it.
        try await plane.startTask(startRequest("long", ["/bin/sh", "-c", "echo long-start; while [ ! -e \(flag).long ]; do sleep 0.05; done; echo long-end"]))
        try await plane.startTask(startRequest("short", ["/bin/sh", "-c", "while [ ! -e \(flag).short ]; do sleep 0.05; done; seq 1 1000; exit 4"]))
        try await eventually("long started at the control plane") { plane.output(of: "long").contains("long-start") }

        await plane.stop()
        try await eventually("the agent noticed") { !agent.link.isConnected }
        _ = FileManager.default.createFile(atPath: flag + ".short", contents: nil)
        // It ends while nobody listens: its end waits in the outbox.
        try await eventually("short ended on the agent") { agent.runner.runningCount == 1 && agent.outbox.hasUnreportedEnd(of: "short") }

        try await plane.start()
        let again = try await plane.registration(2)
        #expect(again.load.running.map(\.attempt.attemptID) == ["long"])
        #expect(again.load.running.first?.executor == "persistent-pool")
        #expect(again.endedUnreported.map(\.attempt.attemptID) == ["short"])
        #expect(again.load.freeSlots == 3)

        let short = try await plane.finished("short")
        #expect(short.outcome == .failed && short.exitCode == 4)
        // Nothing lost: all of short's output arrived, in order (a chunk in
        // flight at the outage may arrive twice; fencing makes that harmless).
        let lines = plane.output(of: "short").split(separator: "\n").compactMap { Int($0) }
        var expected = 1
        for line in lines where line == expected { expected += 1 }
        #expect(expected == 1001, "output arrived up to \(expected - 1) of 1000")

        _ = FileManager.default.createFile(atPath: flag + ".long", contents: nil)
        #expect(try await plane.finished("long").outcome == .succeeded)
        #expect(plane.output(of: "long").hasSuffix("long-end\n"))
        try await eventually("outbox flushed") { agent.outbox.isEmpty }
    }

    @Test func drainRefusesNewWorkCancelsWhatOutlivesTheGraceAndFlushes() async throws {
        let plane = try await TestControlPlane.start()
        let work = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let agent = makeAgent(plane, slots: 2, workDirectory: work) { $0.drainGrace = .milliseconds(800) }
        let link = Task { try await agent.run() }
        defer { link.cancel() }
        _ = try await plane.registration(1)
        try await plane.startTask(startRequest("quick", ["/bin/sh", "-c", "sleep 0.2; echo done"]))
        try await plane.startTask(startRequest("slow", ["/bin/sleep", "60"]))

        let drained = Task { await agent.drain() }
        try await eventually("Drain called") { !plane.recorded.drains.isEmpty }
        #expect(plane.recorded.drains.first?.grace.millis == 800)
        await #expect { try await plane.startTask(startRequest("late", ["/bin/true"])) } throws: {
            ($0 as? WireError)?.code == .failedPrecondition
        }
        #expect(await drained.value)
        #expect(try await plane.finished("quick").outcome == .succeeded)
        let slow = try await plane.finished("slow")
        #expect(slow.outcome == .cancelled && slow.reason == "Drained")
        #expect(slow.message.contains("the agent was drained"))
        #expect(plane.recorded.reports.last?.load.draining == true)
        #expect(agent.outbox.isEmpty)
    }

    @Test func aWrongJoinTokenStopsTheAgent() async throws {
        let plane = try await TestControlPlane.start()
        let work = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let agent = makeAgent(plane, token: "wrong", workDirectory: work)
        await #expect { try await agent.run() } throws: { ($0 as? WireError)?.code == .unauthenticated }
        await plane.stop()
    }
}
