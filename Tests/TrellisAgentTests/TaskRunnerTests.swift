import Foundation
import Testing
import TrellisAgent
import TrellisProto
import TrellisTestSupport

/// The task runner with real child processes.
@Suite struct TaskRunnerTests {
    @Test func aTaskStreamsItsOutputBetweenStartedAndFinished() async throws {
        let fixture = try RunnerFixture()
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        #expect(try fixture.runner.start(startRequest("a1", ["/bin/sh", "-c", "echo out; echo err >&2; echo more"])))
        let finished = try await consumer.finished("a1")
        #expect(finished.outcome == .succeeded)
        #expect(finished.exitCode == 0)
        let events = consumer.events(of: "a1")
        guard case .started(let started)? = events.first?.event else { Issue.record("first event: \(String(describing: events.first))"); return }
        #expect(started.externalID == "agent-1" && started.node == "node-1")
        guard case .finished? = events.last?.event else { Issue.record("last event is not finished"); return }
        #expect(events.dropFirst().dropLast().allSatisfy { if case .log? = $0.event { true } else { false } })
        #expect(consumer.output(of: "a1", .stdout) == "out\nmore\n")
        #expect(consumer.output(of: "a1", .stderr) == "err\n")
        #expect(consumer.events.allSatisfy { $0.executor == "persistent-pool" && $0.event.attempt.fencingToken == 7 })
        try await eventually("the slot is free and the scratch directory gone") {
            fixture.runner.load().freeSlots == 4 && fixture.scratchDirectories.isEmpty
        }
    }

    @Test func aNonZeroExitFailsQuotingTheLastLines() async throws {
        let fixture = try RunnerFixture()
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        try fixture.runner.start(startRequest("a2", ["/bin/sh", "-c", "for i in $(seq 1 20); do echo line$i; done >&2; echo oops >&2; exit 3"]))
        let finished = try await consumer.finished("a2")
        #expect(finished.outcome == .failed)
        #expect(finished.exitCode == 3)
        #expect(finished.reason == "ExitCode")
        #expect(finished.message.hasPrefix("the task exited with code 3; last output:\n"))
        // One stream, so the order is certain (two pipes are read independently).
        #expect(finished.message.hasSuffix("line19\nline20\noops"))
        #expect(finished.message.contains("line12\n"))
        #expect(!finished.message.contains("line11\n"))
    }

    @Test func aSignalFailsNamingIt() async throws {
        let fixture = try RunnerFixture()
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        try fixture.runner.start(startRequest("a3", ["/bin/sh", "-c", "kill -KILL $$"]))
        let finished = try await consumer.finished("a3")
        #expect(finished.outcome == .failed)
        #expect(finished.signal == SIGKILL)
        #expect(finished.reason == "Signal")
        #expect(finished.message == "the task was killed by signal 9 (SIGKILL)")
    }

    @Test func theTaskGetsItsEnvironmentAndArgvWithoutAShell() async throws {
        let fixture = try RunnerFixture()
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        let script = """
            echo "$TRELLIS_DAG_ID|$TRELLIS_RUN_ID|$TRELLIS_TASK_ID|$TRELLIS_TRY_NUMBER|$TRELLIS_LOGICAL_DATE|$GREETING"
            echo "path=$PATH"
            case "$TRELLIS_XCOM_FILE" in "\(fixture.workDirectory.path)/attempts/"*/xcom.json) echo xcom-ok;; esac
            """
        try fixture.runner.start(startRequest("env", ["sh", "-c", script], env: [("GREETING", "hello")]))
        // A name without a slash is found on PATH; arguments are not expanded.
        try fixture.runner.start(startRequest("argv", ["echo", "$HOME", "a  b", "*"]))
        #expect(try await consumer.finished("env").outcome == .succeeded)
        #expect(try await consumer.finished("argv").outcome == .succeeded)
        let lines = consumer.output(of: "env", .stdout).split(separator: "\n").map(String.init)
        #expect(lines.first == "etl|manual__1|extract|2|2025-11-25T20:00:00Z|hello")
        #expect(lines.dropFirst().first == "path=\(ProcessInfo.processInfo.environment["PATH"] ?? "")")
        #expect(lines.last == "xcom-ok")
        #expect(consumer.output(of: "argv", .stdout) == "$HOME a  b *\n")
    }

    @Test func theTaskRunsInItsWorkingDirectory() async throws {
        let fixture = try RunnerFixture()
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        let directory = fixture.workDirectory.appendingPathComponent("project")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try fixture.runner.start(startRequest("cwd", ["/bin/sh", "-c", "pwd -P"], workingDir: directory.path))
        // Without one it runs in its scratch directory.
        try fixture.runner.start(startRequest("scratch", ["/bin/sh", "-c", "pwd -P"]))
        try fixture.runner.start(startRequest("nodir", ["/bin/true"], workingDir: "/nonexistent/dir"))
        #expect(try await consumer.finished("cwd").outcome == .succeeded)
        #expect(consumer.output(of: "cwd", .stdout) == directory.resolvingSymlinksInPath().path + "\n")
        #expect(try await consumer.finished("scratch").outcome == .succeeded)
        #expect(consumer.output(of: "scratch", .stdout).contains("/attempts/scratch-"))
        let missing = try await consumer.finished("nodir")
        #expect(missing.outcome == .failed && missing.reason == "CannotRun")
        #expect(missing.message == "cannot run '/bin/true': its working directory /nonexistent/dir does not exist")
    }

    @Test func aCommandThatCannotStartFailsClearly() async throws {
        let fixture = try RunnerFixture()
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        try fixture.runner.start(startRequest("nosuch", ["no-such-program-xyz", "--flag"]))
        try fixture.runner.start(startRequest("nosuchpath", ["/nonexistent/foo"]))
        let byName = try await consumer.finished("nosuch")
        #expect(byName.outcome == .failed && byName.reason == "CannotRun")
        #expect(byName.message.hasPrefix("cannot run 'no-such-program-xyz': No such file or directory"))
        let byPath = try await consumer.finished("nosuchpath")
        #expect(byPath.message == "cannot run '/nonexistent/foo': No such file or directory")
        #expect(fixture.runner.load().freeSlots == 4)
        #expect(fixture.scratchDirectories.isEmpty)
    }

    @Test func xcomIsReadFromTheFileAndChecked() async throws {
        let fixture = try RunnerFixture()
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        try fixture.runner.start(startRequest("valid", ["/bin/sh", "-c", #"printf '{"rows": 3}' > "$TRELLIS_XCOM_FILE""#]))
        try fixture.runner.start(startRequest("none", ["/bin/true"]))
        try fixture.runner.start(startRequest("invalid", ["/bin/sh", "-c", #"echo 'not json' > "$TRELLIS_XCOM_FILE""#]))
        try fixture.runner.start(startRequest("big", ["/bin/sh", "-c", #"(printf '"'; head -c 70000 /dev/zero | tr '\0' a; printf '"') > "$TRELLIS_XCOM_FILE""#]))
        let valid = try await consumer.finished("valid")
        #expect(valid.outcome == .succeeded && valid.xcomJson == #"{"rows": 3}"#)
        let none = try await consumer.finished("none")
        #expect(none.outcome == .succeeded && none.xcomJson.isEmpty)
        let invalid = try await consumer.finished("invalid")
        #expect(invalid.outcome == .failed && invalid.reason == "InvalidXCom")
        #expect(invalid.message.contains("is not valid JSON"))
        let big = try await consumer.finished("big")
        #expect(big.outcome == .failed && big.reason == "InvalidXCom")
        #expect(big.message.contains("70002 bytes; at most 65536"))
        try await eventually("scratch directories removed") { fixture.scratchDirectories.isEmpty }
    }

    @Test func anExecutionTimeoutSendsSIGTERMThenSIGKILL() async throws {
        let fixture = try RunnerFixture(killGrace: .milliseconds(300))
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        // Ends at SIGTERM.
        try fixture.runner.start(startRequest("polite", ["/bin/sleep", "60"], timeoutMillis: 200))
        // Ignores SIGTERM (and so does its sleep): only SIGKILL ends it.
        try fixture.runner.start(startRequest("stubborn", ["/bin/sh", "-c", "trap '' TERM; echo trapped; sleep 60"], timeoutMillis: 200))
        let polite = try await consumer.finished("polite")
        #expect(polite.outcome == .timedOut && polite.reason == "ExecutionTimeout")
        #expect(polite.signal == SIGTERM)
        #expect(polite.message == "the task exceeded its execution timeout of 200ms: stopped with SIGTERM; it was killed by signal 15 (SIGTERM)")
        let stubborn = try await consumer.finished("stubborn")
        #expect(stubborn.outcome == .timedOut)
        #expect(stubborn.signal == SIGKILL)
        #expect(stubborn.message.contains("then SIGKILL after the grace period"))
        #expect(consumer.output(of: "stubborn", .stdout) == "trapped\n")
    }

    @Test func cancelStopsTheAttemptAndSaysWhy() async throws {
        let fixture = try RunnerFixture()
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        try fixture.runner.start(startRequest("c1", ["/bin/sleep", "60"]))
        var unknown = Trellis_V1_AttemptRef()
        unknown.attemptID = "never-started"
        #expect(!fixture.runner.cancel(unknown, reason: "x"))
        var attempt = Trellis_V1_AttemptRef()
        attempt.attemptID = "c1"
        #expect(fixture.runner.cancel(attempt, reason: "run marked failed by alice"))
        let finished = try await consumer.finished("c1")
        #expect(finished.outcome == .cancelled && finished.reason == "Cancelled")
        #expect(finished.message.contains("run marked failed by alice"))
        #expect(!fixture.runner.cancel(attempt, reason: "again"))
    }

    @Test func stoppingReachesGrandchildrenAndAnExitTakesTheGroupAlong() async throws {
        let fixture = try RunnerFixture()
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        let pids = fixture.workDirectory.appendingPathComponent("pids")
        // A grandchild in the background; the shell waits for it.
        try fixture.runner.start(startRequest("tree", ["/bin/sh", "-c", "sleep 300 & echo $! > \(pids.path).1; wait"]))
        // A grandchild left behind by a shell that exits at once.
        try fixture.runner.start(startRequest("orphan", ["/bin/sh", "-c", "sleep 300 > /dev/null 2>&1 & echo $! > \(pids.path).2"]))
        // The shell creates the file before it writes the pid: wait for the pid.
        try await eventually("the grandchild started") {
            (try? String(contentsOfFile: pids.path + ".1", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } != nil
        }
        var attempt = Trellis_V1_AttemptRef()
        attempt.attemptID = "tree"
        #expect(fixture.runner.cancel(attempt, reason: "test"))
        #expect(try await consumer.finished("tree").outcome == .cancelled)
        #expect(try await consumer.finished("orphan").outcome == .succeeded)
        for suffix in [".1", ".2"] {
            let pid = try #require(Int32(String(contentsOfFile: pids.path + suffix, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
            try await eventually("grandchild \(pid) ended") { Self.isGoneOrZombie(pid) }
        }
    }

    static func isGoneOrZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        // pid (comm) state …
        guard let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }

    @Test func refusalsFollowTheContract() async throws {
        let fixture = try RunnerFixture(slots: 1)
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox)
        defer { consumer.stop() }
        #expect(try fixture.runner.start(startRequest("s1", ["/bin/sleep", "60"])))
        // The same attempt again: OK, nothing started.
        #expect(try !fixture.runner.start(startRequest("s1", ["/bin/sleep", "60"])))
        #expect(fixture.runner.runningCount == 1)
        #expect(throws: AgentError(.slotsExhausted, "all 1 slots of agent agent-1 are busy")) {
            try fixture.runner.start(startRequest("s2", ["/bin/true"]))
        }
        var pod = startRequest("p1", [])
        pod.assignment.task.pod = Trellis_V1_PodTaskSpec()
        #expect { try fixture.runner.start(pod) } throws: { ($0 as? AgentError)?.code == .invalidTask }
        #expect { try fixture.runner.start(startRequest("e1", [])) } throws: { ($0 as? AgentError)?.code == .invalidTask }
        fixture.runner.beginDraining()
        #expect { try fixture.runner.start(startRequest("d1", ["/bin/true"])) } throws: { ($0 as? AgentError)?.code == .draining }
        #expect(fixture.runner.load().draining)
        #expect(fixture.runner.load().running.map(\.attempt.attemptID) == ["s1"])
        fixture.runner.stopAll(.drained(grace: .seconds(1)))
        let finished = try await consumer.finished("s1")
        #expect(finished.outcome == .cancelled && finished.reason == "Drained")
        #expect(await fixture.runner.waitUntilIdle(timeout: .seconds(30)))
    }

    /// 50 MB of output through a 256 KiB window: the agent never holds more
    /// than the window, and while nobody acknowledges the task blocks.
    @Test func outputIsBoundedByBackpressure() async throws {
        let window = 256 * 1024
        let fixture = try RunnerFixture(logBytesPerAttempt: window)
        defer { fixture.remove() }
        let consumer = EventConsumer(fixture.outbox, keepLogData: false, delay: .milliseconds(2))
        defer { consumer.stop() }
        consumer.pause(true)
        let total = 50_000_000
        try fixture.runner.start(startRequest("flood", ["/bin/sh", "-c", "head -c \(total) /dev/zero"]))
        // Nobody acknowledges: the reader fills the window and stops.
        try await eventually("the window filled") { fixture.outbox.bufferedLogBytes(for: "flood") >= window }
        try await Task.sleep(for: .milliseconds(500))
        #expect(fixture.outbox.bufferedLogBytes(for: "flood") <= window)
        #expect(fixture.runner.runningCount == 1, "the task should be blocked writing, not finished")
        consumer.pause(false)
        let finished = try await consumer.finished("flood", timeout: .seconds(120))
        #expect(finished.outcome == .succeeded)
        #expect(consumer.logBytes(of: "flood") == total)
        #expect(consumer.maximumBuffered(of: "flood") <= window)
        // The last batch is acknowledged after the consumer recorded it.
        try await eventually("every byte acknowledged") { fixture.outbox.bufferedLogBytes(for: "flood") == 0 }
    }
}
