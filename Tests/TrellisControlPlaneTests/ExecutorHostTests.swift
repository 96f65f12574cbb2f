import Foundation
import Synchronization
import Testing
import TrellisProto

@testable import TrellisControlPlane

/// The executor host with real plugin libraries built by this package: the C
/// plugin c-instant, and deliberately broken ones.
@Suite struct ExecutorHostTests {
    @Test func instantAttemptReportsStartedThenSucceeded() async throws {
        let fixture = try HostFixture()
        defer { fixture.host.shutdown() }
        try fixture.loadInstant()

        try fixture.host.submit(assignment("a1", token: 7, task: "extract"), to: "c-instant")
        let events = try await fixture.collector.wait(for: 2)
        #expect(events.map(\.executor) == ["c-instant", "c-instant"])
        #expect(events.map(\.event.attempt.attemptID) == ["a1", "a1"])
        #expect(events.map(\.event.attempt.fencingToken) == [7, 7])
        guard case .started(let started) = events[0].event.event, case .finished(let finished) = events[1].event.event else {
            Issue.record("expected started then finished, got \(events)")
            return
        }
        #expect(started.externalID == "c-instant")
        #expect(finished.outcome == .succeeded)
        #expect(finished.exit == .exitCode(0))
    }

    @Test func delayedAttemptsFailAsConfiguredThenSucceed() async throws {
        let fixture = try HostFixture()
        defer { fixture.host.shutdown() }
        try fixture.loadInstant()
        let options = #"{"delay_ms": 20, "fail_until_try": 1, "exit_code": 3}"#

        try fixture.host.submit(assignment("t1", task: "load", try: 1, options: options), to: "c-instant")
        try fixture.host.submit(assignment("t2", task: "load", try: 2, options: options), to: "c-instant")
        let finished = try await fixture.collector.wait(for: 4).compactMap { record -> (String, Trellis_V1_AttemptFinished)? in
            if case .finished(let finished) = record.event.event { (record.event.attempt.attemptID, finished) } else { nil }
        }
        let byAttempt = Dictionary(uniqueKeysWithValues: finished)
        #expect(byAttempt["t1"]?.outcome == .failed)
        #expect(byAttempt["t1"]?.exit == .exitCode(3))
        #expect(byAttempt["t2"]?.outcome == .succeeded)
    }

    @Test func cancelStopsAWaitingAttemptAndUnknownAttemptsAreRefused() async throws {
        let fixture = try HostFixture()
        defer { fixture.host.shutdown() }
        try fixture.loadInstant()

        try fixture.host.submit(assignment("slow", task: "sleep", options: #"{"delay_ms": 600000}"#), to: "c-instant")
        try fixture.host.cancel(.with { $0.attempt = .with { $0.attemptID = "slow" }; $0.reason = "cleared by a user" }, on: "c-instant")
        let events = try await fixture.collector.wait(for: 2)
        guard case .finished(let finished) = events.last?.event.event else {
            Issue.record("expected a finished event, got \(events)")
            return
        }
        #expect(finished.outcome == .cancelled)
        #expect(finished.message == "cleared by a user")

        #expect {
            try fixture.host.cancel(.with { $0.attempt = .with { $0.attemptID = "ghost" } }, on: "c-instant")
        } throws: { error in
            (error as? ExecutorHostError)?.code == .pluginRefused && (error as? ExecutorHostError)?.status == 5
        }
    }

    @Test func adoptionAfterARestartAnswersFromWhatRan() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let record = directory.appendingPathComponent("executions.tsv").path
        let settings = #"{"record_file": "\#(record)"}"#

        let before = try HostFixture()
        try before.loadInstant(settings: settings)
        try before.host.submit(assignment("ran", task: "extract"), to: "c-instant")
        _ = try await before.collector.wait(for: 2)
        before.host.shutdown()

        // A new host, as after a control-plane restart.
        let after = try HostFixture()
        defer { after.host.shutdown() }
        try after.loadInstant(settings: settings)
        try after.host.adopt(.with {
            $0.attempts = [
                .with { $0.assignment = assignment("ran", task: "extract"); $0.externalID = "c-instant" },
                .with { $0.assignment = assignment("never", task: "load"); $0.externalID = "c-instant" },
            ]
        }, on: "c-instant")
        let outcomes = try await after.collector.wait(for: 2).compactMap { record -> (String, Trellis_V1_AttemptOutcome)? in
            if case .finished(let finished) = record.event.event { (record.event.attempt.attemptID, finished.outcome) } else { nil }
        }
        #expect(Dictionary(uniqueKeysWithValues: outcomes) == ["ran": .succeeded, "never": .lost])
        // It ran once, not again on adoption.
        let lines = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n")
        #expect(lines == ["ran\tsample_dag\tmanual__1\textract\t1\tsucceeded"])
    }

    @Test func badPluginsAreReportedAndTheGoodOneStillLoads() throws {
        let plugins = try PluginFiles()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let second = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: second) }
        func place(_ source: String, as name: String, in folder: URL = directory) throws {
            try FileManager.default.copyItem(atPath: source, toPath: folder.appendingPathComponent(name).path)
        }
        for fault in ["abi-major", "too-small", "null-entry", "bad-name", "no-submit", "create-fails"] {
            try place(plugins.broken, as: "broken-\(fault).so")
        }
        try place(plugins.instant, as: "c-instant.so")
        try place(plugins.instant, as: "z-duplicate.so", in: second)
        try Data("not an ELF file".utf8).write(to: directory.appendingPathComponent("garbage.so"))
        try place(plugins.protobufC, as: "no-entry.so")

        let fixture = try HostFixture()
        defer { fixture.host.shutdown() }
        let report = fixture.host.loadPlugins(in: [directory.path, second.path, "/nonexistent/plugins"]) { _ in "{}" }

        #expect(report.loaded.map(\.name) == ["c-instant"])
        let reasons = Dictionary(report.problems.map { (($0.path as NSString).lastPathComponent, $0.reason) }, uniquingKeysWith: { a, _ in a })
        #expect(reasons["broken-abi-major.so"]?.contains("was built for executor ABI 99.x; this control plane speaks 1.1") == true)
        #expect(reasons["broken-too-small.so"]?.contains("its executor table is 16 bytes, smaller than") == true)
        #expect(reasons["broken-null-entry.so"] == "trellis_executor_entry_v1 returned NULL")
        #expect(reasons["broken-bad-name.so"]?.contains("its executor name 'Not A Valid Name!' is invalid") == true)
        #expect(reasons["broken-no-submit.so"] == "executor 'c-broken-no-submit' leaves submit unset")
        #expect(reasons["broken-create-fails.so"] == "executor 'c-broken-valid' failed to start: c-broken-valid: create always fails")
        #expect(reasons["garbage.so"]?.hasPrefix("cannot be loaded: ") == true)
        #expect(reasons["no-entry.so"] == "does not export trellis_executor_entry_v1; it is not a Trellis executor plugin")
        #expect(reasons["z-duplicate.so"]?.hasPrefix("executor 'c-instant' is already loaded from \(directory.path)/c-instant.so") == true)
        #expect(reasons["plugins"]?.hasPrefix("the plugin directory cannot be read") == true)
        #expect(report.problems.count == 10)
        for problem in report.problems { #expect(problem.description.hasPrefix("executor plugin \(problem.path): ")) }
    }

    /// A plugin built for ABI 1.0 has a shorter table: it loads, and the
    /// host never calls the 1.1 functions it does not have (this one's
    /// agents_changed would abort the process).
    @Test func aPluginOfAnOlderMinorVersionLoadsAndIsNotCalledBeyondItsTable() throws {
        let plugins = try PluginFiles()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.copyItem(atPath: plugins.broken, toPath: directory.appendingPathComponent("old-abi-1-0.so").path)
        let fixture = try HostFixture()
        defer { fixture.host.shutdown() }
        let report = fixture.host.loadPlugins(in: [directory.path]) { _ in "{}" }
        #expect(report.problems.isEmpty, "\(report.problems)")
        #expect(report.loaded.map(\.name) == ["c-old-minor"])
        var update = Trellis_V1_AgentsUpdate()
        update.agents = [Trellis_V1_AgentState.with { $0.name = "node-1"; $0.slots = 4 }]
        fixture.host.agentsChanged(update)
        try fixture.host.submit(Trellis_V1_TaskAssignment(), to: "c-old-minor")
    }

    @Test func failingCreateIsReportedWithThePluginsReason() throws {
        let fixture = try HostFixture()
        defer { fixture.host.shutdown() }
        #expect {
            try fixture.loadInstant(settings: #"{"fail_create": true}"#)
        } throws: { error in
            (error as? PluginLoadError)?.reason == "executor 'c-instant' failed to start: c-instant: fail_create is set in its configuration"
        }
        #expect(fixture.host.loaded.isEmpty)
    }

    @Test func unknownExecutorIsAClearError() throws {
        let fixture = try HostFixture()
        defer { fixture.host.shutdown() }
        try fixture.loadInstant()
        #expect {
            try fixture.host.submit(assignment("x", task: "t"), to: "gpu-batch")
        } throws: { error in
            (error as? ExecutorHostError)?.description
                == "executor 'gpu-batch': executor 'gpu-batch' is not loaded (loaded: c-instant); install its plugin in a plugin directory or change the task's executor"
        }
    }

    @Test func pluginLogLinesReachTheHost() throws {
        let fixture = try HostFixture()
        defer { fixture.host.shutdown() }
        try fixture.loadInstant()
        #expect(fixture.collector.logLines.contains("c-instant info c-instant executor ready"))
    }
}

// MARK: - Fixtures

/// A host whose events and log lines are collected for assertions.
private struct HostFixture {
    let collector = EventCollector()
    let host: ExecutorHost
    let plugins: PluginFiles

    init() throws {
        let collector = collector
        plugins = try PluginFiles()
        host = ExecutorHost(
            hostID: "test-host",
            log: { executor, level, message in collector.log("\(executor) \(level) \(message)") },
            events: { collector.add($0) }
        )
    }

    func loadInstant(settings: String = "{}") throws {
        _ = try host.load(path: plugins.instant) { _ in settings }
    }
}

/// Thread-safe sink for events plugins emit from their own threads.
private final class EventCollector: Sendable {
    private let events = Mutex<[ExecutorEventRecord]>([])
    private let lines = Mutex<[String]>([])

    func add(_ record: ExecutorEventRecord) { events.withLock { $0.append(record) } }
    func log(_ line: String) { lines.withLock { $0.append(line) } }
    var logLines: [String] { lines.withLock { $0 } }

    /// Waits (up to 10 s, polling) until `count` events have arrived.
    func wait(for count: Int) async throws -> [ExecutorEventRecord] {
        for _ in 0..<1_000 {
            let current = events.withLock { $0 }
            if current.count >= count { return current }
            try await Task.sleep(for: .milliseconds(10))
        }
        let current = events.withLock { $0 }
        Issue.record("expected \(count) events within 10 s, got \(current.count): \(current)")
        return current
    }
}

/// The plugin libraries `swift build` put beside the test binary.
private struct PluginFiles {
    let instant: String
    let broken: String
    /// A real shared library that is not a Trellis plugin.
    let protobufC: String

    init() throws {
        let binary = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        let products = binary.deletingLastPathComponent()
        instant = products.appendingPathComponent("libtrellis-executor-c-instant.so").path
        broken = products.appendingPathComponent("libtrellis-executor-broken.so").path
        for path in [instant, broken] where !FileManager.default.fileExists(atPath: path) {
            throw Missing(path: path)
        }
        let candidates = ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"]
            .map { "\($0)/libprotobuf-c.so.1" }
        guard let system = candidates.first(where: FileManager.default.fileExists(atPath:)) else {
            throw Missing(path: candidates.joined(separator: " or "))
        }
        protobufC = URL(fileURLWithPath: system).resolvingSymlinksInPath().path
    }

    struct Missing: Error, CustomStringConvertible {
        var path: String
        var description: String { "\(path) is missing: build the package (swift build --build-tests) first" }
    }
}

private func assignment(_ id: String, token: Int64 = 1, task: String, try number: Int32 = 1, options: String = "") -> Trellis_V1_TaskAssignment {
    .with {
        $0.attempt = .with { $0.attemptID = id; $0.fencingToken = token }
        $0.dagID = "sample_dag"
        $0.runID = "manual__1"
        $0.taskID = task
        $0.tryNumber = number
        $0.task = .with { $0.taskID = task; $0.executor = "c-instant"; $0.executorConfigJson = options }
    }
}

/// A fresh directory; the caller removes it (`defer`).
private func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("trellis-host-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
