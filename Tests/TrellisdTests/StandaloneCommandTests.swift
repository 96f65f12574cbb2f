import Foundation
import Testing
import TrellisProto
import TrellisTestSupport
import TrellisWire

/// `trellisd standalone` end to end: the real binary with its own embedded
/// PostgreSQL (as the user postgres when the tests run as root), its
/// in-process control plane and local agent, driven through the client API
/// with the address and token it writes to the client's config file.
@Suite(.serialized) struct StandaloneCommandTests {
    static let dag = """
        dag_id: standalone_chain
        schedule: null
        default_args: {executor: persistent-pool}
        tasks:
          - {task_id: hello, command: [sh, -c, "echo hello from {{ run_id }}"]}
          - {task_id: world, command: [sh, -c, "echo world; echo to stderr >&2"], upstream: [hello]}
        """

    @Test func aDagRunsOnTheLocalAgentThenCtrlCStopsEverythingAndASecondStartReusesTheData() async throws {
        try await StandaloneFixture.with { fixture in
            // First start: a fresh cluster, the config file written.
            let first = try await fixture.start()
            let config = try fixture.clientConfig()
            #expect(config.lines == ["address: 127.0.0.1:\(try fixture.rpcPort(first))", "token: \(config.token)"])
            #expect(config.mode == 0o600)
            #expect(first.stdout.contains("trellisd standalone: admin API token \(config.token)"))
            #expect(first.stdout.contains("trellisd standalone: rpc address 127.0.0.1:\(try fixture.rpcPort(first))"))
            #expect(first.stdout.contains(", data \(fixture.data)"))

            // One standalone per data directory.
            let second = try await ChildProcess.run(try ChildProcess.builtProduct("trellisd"), fixture.arguments, environment: fixture.environment)
            #expect(second.status == 1)
            #expect(second.stderr.contains("another trellisd standalone"), "\(second.stderr)")

            // A DAG of process tasks runs on the local agent, logs readable.
            let api = try await fixture.api(first)
            let submitted = try await api.submit(Self.dag, file: "standalone_chain.yaml")
            let run = try await api.trigger(submitted.dagID)
            let end = try await api.waitForEnd(submitted.dagID, run, within: .seconds(180), explaining: [first])
            #expect(end.run.state == .success, "\(end.tasks.map { "\($0.taskID)=\($0.state) \($0.failureReason)" })\n\(first.stderr.suffix(4_000))")
            #expect(end.tasks.allSatisfy { $0.agentName == ProcessInfo.processInfo.hostName }, "\(end.tasks.map(\.agentName))")
            #expect(try await api.log(submitted.dagID, run, "hello").contains("hello from \(run)"))
            let world = try await api.log(submitted.dagID, run, "world")
            #expect(world.contains("world") && world.contains("to stderr"), "\(world)")
            await api.close()

            // Ctrl-C: exit 0, PostgreSQL stopped, the data kept.
            let postmaster = try fixture.postmasterPID()
            first.signal(SIGINT)
            let status = await first.wait()
            #expect(status == 0, "\(first.stdout)\n\(first.stderr.suffix(4_000))")
            #expect(first.stdout.contains("trellisd standalone: stopped"))
            #expect(!FileManager.default.fileExists(atPath: fixture.data + "/postgres/postmaster.pid"))
            try await eventually("postgres \(postmaster) exits", timeout: .seconds(30)) { !StandaloneFixture.runs(postmaster) }
            #expect(FileManager.default.fileExists(atPath: fixture.data + "/postgres/PG_VERSION"))
            #expect(FileManager.default.fileExists(atPath: fixture.data + "/admin-token"))

            // Second start: the same cluster, the same token, the DAG still there.
            let again = try await fixture.start()
            #expect(try fixture.clientConfig().token == config.token)
            let api2 = try await fixture.api(again)
            let dags: Trellis_V1_ListDagsResponse = try await api2.call("ListDags", Trellis_V1_ListDagsRequest())
            #expect(dags.dags.map(\.dagID).contains("standalone_chain"))
            let run2 = try await api2.trigger(submitted.dagID, logicalDate: Date(timeIntervalSince1970: 1_700_086_400))
            let end2 = try await api2.waitForEnd(submitted.dagID, run2, within: .seconds(180), explaining: [again])
            #expect(end2.run.state == .success)
            await api2.close()
            again.signal(SIGTERM)
            #expect(await again.wait() == 0, "\(again.stderr.suffix(4_000))")
            #expect(!FileManager.default.fileExists(atPath: fixture.data + "/postgres/postmaster.pid"))
        }
    }

    @Test func aPostgresLeftByAKilledStandaloneIsStoppedByTheNextStart() async throws {
        try await StandaloneFixture.with { fixture in
            let first = try await fixture.start()
            let token = try fixture.clientConfig().token
            let orphan = try fixture.postmasterPID()
            // SIGKILL: no clean stop; pg_ctl detached the server, so it lives on.
            first.signal(SIGKILL)
            await first.wait()
            #expect(StandaloneFixture.runs(orphan))

            let second = try await fixture.start()
            try await eventually("the orphaned postgres \(orphan) exits", timeout: .seconds(30)) { !StandaloneFixture.runs(orphan) }
            #expect(try fixture.postmasterPID() != orphan)
            #expect(try fixture.clientConfig().token == token)
            let api = try await fixture.api(second)
            let status: Trellis_V1_ServerStatusResponse = try await api.call("ServerStatus", Trellis_V1_ServerStatusRequest())
            #expect(status.connectedAgents == 1)
            await api.close()
            second.signal(SIGINT)
            #expect(await second.wait() == 0)
        }
    }

    @Test func anRPCPortInUseFailsClearlyAndStopsThePostgresItStarted() async throws {
        try await StandaloneFixture.with { fixture in
            let listener = try LoopbackListener()
            defer { listener.close() }
            let result = try await ChildProcess.run(
                try ChildProcess.builtProduct("trellisd"),
                fixture.base + ["--rpc-address", "127.0.0.1:\(listener.port)", "--http-address", "127.0.0.1:0", "--postgres-port", "0"],
                environment: fixture.environment)
            #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
            #expect(result.stderr.contains("cannot listen for agents and clients on 127.0.0.1:\(listener.port)"), "\(result.stderr)")
            #expect(!result.stdout.contains("ready"))
            // It got as far as PostgreSQL, and stopped it.
            #expect(FileManager.default.fileExists(atPath: fixture.data + "/postgres/PG_VERSION"))
            #expect(!FileManager.default.fileExists(atPath: fixture.data + "/postgres/postmaster.pid"))
        }
    }

    @Test func badInputsFailClearlyWithNothingLeftRunning() async throws {
        try await StandaloneFixture.with { fixture in
            let trellisd = try ChildProcess.builtProduct("trellisd")
            // A data directory that cannot be made (under a regular file: even root cannot).
            let file = fixture.scratch + "/a-file"
            _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
            let unwritable = try await ChildProcess.run(trellisd, ["standalone", "--data-dir", file + "/data"] + fixture.ports, environment: fixture.environment)
            #expect(unwritable.status == 1)
            #expect(unwritable.stderr.contains("cannot create the data directory \(file)/data"), "\(unwritable.stderr)")

            // No PostgreSQL binaries where it is told to look.
            let missing = try await ChildProcess.run(trellisd, fixture.arguments + ["--postgres-bin-dir", fixture.scratch], environment: fixture.environment)
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("has no executable initdb"), "\(missing.stderr)")
            #expect(!FileManager.default.fileExists(atPath: fixture.data + "/postgres/PG_VERSION"))

            // Configuration problems exit 2 before anything starts.
            let slots = try await ChildProcess.run(trellisd, fixture.arguments + ["--slots", "0"], environment: fixture.environment)
            #expect(slots.status == 2)
            #expect(slots.stderr.contains("--slots: '0'"), "\(slots.stderr)")
            let database = try await ChildProcess.run(trellisd, fixture.arguments + ["--database-url", "postgresql://elsewhere/db"], environment: fixture.environment)
            #expect(database.status == 2)
            #expect(database.stderr.contains("standalone runs a PostgreSQL of its own"), "\(database.stderr)")
            #expect(!FileManager.default.fileExists(atPath: fixture.data + "/postgres/postmaster.pid"))
        }
    }
}

/// One standalone's scratch area: a data directory (under
/// TRELLIS_TEST_PG_SCRATCH when scripts/test runs, so its PostgreSQL is
/// stopped however the run ends), a private XDG_CONFIG_HOME, the processes
/// started; PostgreSQL is stopped when the test ends, pass or fail.
final class StandaloneFixture: Sendable {
    let scratch: String
    let data: String
    let configHome: String
    let environment: [String: String]
    private let started = Shared<[BackgroundProcess]>([])

    init() throws {
        let base = ProcessInfo.processInfo.environment["TRELLIS_TEST_PG_SCRATCH"] ?? FileManager.default.temporaryDirectory.path
        scratch = base + "/standalone-\(UInt32.random(in: 0...UInt32.max))"
        data = scratch + "/data"
        configHome = scratch + "/config"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CONFIG_HOME"] = configHome
        environment["TRELLIS_DATABASE_URL"] = nil
        self.environment = environment
    }

    var ports: [String] { ["--rpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--postgres-port", "0"] }

    var base: [String] { ["standalone", "--data-dir", data, "--slots", "2", "--sweep-interval", "200ms", "--log-level", "info"] }

    var arguments: [String] { base + ports }

    /// Starts it; returns once it printed its ready line.
    func start(extra: [String] = []) async throws -> BackgroundProcess {
        let process = try BackgroundProcess(try ChildProcess.builtProduct("trellisd"), arguments + extra, environment: environment, name: "standalone")
        started.mutate { $0.append(process) }
        try await process.waitForOutput("trellisd standalone: ready — rpc ", timeout: .seconds(240))
        return process
    }

    func rpcPort(_ process: BackgroundProcess) throws -> Int {
        let line = process.stdout.split(separator: "\n").first { $0.hasPrefix("trellisd standalone: ready — rpc ") } ?? ""
        // "… ready — rpc 127.0.0.1:PORT, http …"
        let address = line.components(separatedBy: " — rpc ").last?.split(separator: ",").first ?? ""
        guard let port = address.split(separator: ":").last.flatMap({ Int($0) }) else {
            throw BackgroundProcess.Failure("no rpc port in '\(line)'")
        }
        return port
    }

    /// The client's config file: its lines, token and mode.
    func clientConfig() throws -> (lines: [String], token: String, mode: Int) {
        let file = configHome + "/trellis/config.yaml"
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let lines = text.split(separator: "\n").map(String.init)
        let token = lines.first { $0.hasPrefix("token: ") }.map { String($0.dropFirst("token: ".count)) } ?? ""
        let mode = (try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int) ?? 0
        return (lines, token, mode)
    }

    /// A client of its API with the address and token of the config file.
    func api(_ process: BackgroundProcess) async throws -> WireConnection {
        let config = try clientConfig()
        return try await WireClient.connect(configuration: WireClientConfiguration(
            host: "127.0.0.1", port: try rpcPort(process), role: .client, credentials: config.token, name: "standalone-test"))
    }

    func postmasterPID() throws -> pid_t {
        let text = try String(contentsOfFile: data + "/postgres/postmaster.pid", encoding: .utf8)
        guard let pid = pid_t(text.split(separator: "\n").first ?? "") else { throw BackgroundProcess.Failure("no pid in postmaster.pid") }
        return pid
    }

    /// Whether `pid` runs (a zombie no longer does: pg_ctl's server is
    /// reaped by whoever adopted it, which may be slow to do so).
    static func runs(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].hasPrefix(" Z")
    }

    /// Kills what still runs, stops its PostgreSQL, removes the scratch area.
    func remove() async {
        for process in started.value { await process.stop() }
        if FileManager.default.fileExists(atPath: data + "/postgres/postmaster.pid"),
           let bin = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql"))?.sorted().last.map({ "/usr/lib/postgresql/\($0)/bin" }) {
            let stop = [bin + "/pg_ctl", "-D", data + "/postgres", "-m", "immediate", "-w", "stop"]
            if getuid() == 0 {
                _ = try? await ChildProcess.run("/usr/sbin/runuser", ["-u", "postgres", "--"] + stop)
            } else {
                _ = try? await ChildProcess.run(stop[0], Array(stop.dropFirst()))
            }
        }
        try? FileManager.default.removeItem(atPath: scratch)
    }

    static func with(_ body: (StandaloneFixture) async throws -> Void) async throws {
        let fixture = try StandaloneFixture()
        do {
            try await body(fixture)
        } catch {
            await fixture.remove()
            throw error
        }
        await fixture.remove()
    }
}

/// A TCP listener on 127.0.0.1 holding a port.
struct LoopbackListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { throw BackgroundProcess.Failure("cannot listen: \(errno)") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(fd) }
}
