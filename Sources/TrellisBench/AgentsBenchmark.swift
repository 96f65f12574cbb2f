import Foundation
import Logging
import TrellisAgent
import TrellisProto
import TrellisStore
import TrellisWire

/// `agents`: the control plane's memory with 1,000 agents connected. The
/// real `trellisd serve` (release build, persistent-pool loaded so every
/// registration reaches an executor too) and 1,000 simulated agents in this
/// process: each is the real `AgentLink` of `trellis-agent` (register, then
/// heartbeats every TTL/3 and the event stream) on its own connection, with
/// a `TaskRunner` that is never given work. No agent processes: 1,000 of
/// them would measure this machine, not trellisd.
///
/// trellisd's resident set (`VmRSS` in /proc) is sampled every second:
/// before any agent (`baseline`), and through a steady window of one
/// heartbeat TTL after the last registration (`rss`, the highest sample);
/// `peak` is the kernel's high-water mark (`VmHWM`), which includes the
/// burst of 1,000 registrations. Bar (ARCHITECTURE.md): under 200 MB.
enum AgentsBenchmark {
    static let agents = 1_000
    static let slots = 8
    /// trellisd's default heartbeat TTL: agents heartbeat every 10 s.
    static let heartbeatTTL: Duration = .seconds(30)

    static func run() async throws -> [Measurement] {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["TRELLIS_BENCH_DATABASE_URL"], let trellisd = environment["TRELLIS_BENCH_TRELLISD"],
              let plugins = environment["TRELLIS_BENCH_PLUGIN_DIR"] else {
            throw BenchError(description: "agents: run it through ./scripts/bench agents, which builds trellisd and the plugin and starts PostgreSQL")
        }
        let (pool, store) = try await SchedulerBenchmark.migratedStore(url)

        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("trellis-bench-agents-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let joinToken = "bench-join-\(UUID().uuidString)"
        let tokenFile = scratch.appendingPathComponent("join-token").path
        try Data("\(joinToken)\n".utf8).write(to: URL(fileURLWithPath: tokenFile))

        let server = try Spawned(trellisd, [
            "serve", "--database-url", url, "--rpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
            "--plugin-dirs", plugins, "--default-executor", "persistent-pool",
            "--agent-join-token-file", tokenFile, "--heartbeat-ttl", "\(heartbeatTTL.components.seconds)s", "--log-level", "warning",
        ])
        defer { server.terminate() }
        try await server.waitForOutput("trellisd: serving rpc on ", timeout: .seconds(60))
        let address = try server.rpcAddress()
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw BenchError(description: "agents: cannot read the port of \(address)")
        }
        let host = String(address[..<colon])

        // Settle, then the baseline: a served control plane with no agent.
        try await Task.sleep(for: .seconds(3))
        let baseline = try memory(of: server.pid)

        var logger = Logger(label: "bench-agent")
        logger.logLevel = .error
        let registerStart = ContinuousClock.now
        return try await withThrowingTaskGroup(of: Void.self) { links -> [Measurement] in
            for index in 1...agents {
                let link = makeLink(index, host: host, port: port, token: joinToken, workDirectory: scratch.path, logger: logger)
                links.addTask { try await link.run() }
            }
            // The connection storm may overflow the listen backlog; links
            // retry with backoff as real ones do.
            try await PoolBenchmark.waitForAgents(store, count: agents, within: .seconds(180), benchmark: "agents")
            let registerSeconds = (ContinuousClock.now - registerStart).seconds

            // The steady window: every agent heartbeats about three times.
            var steady = 0
            let cpuStart = try cpuSeconds(of: server.pid)
            let windowStart = ContinuousClock.now
            while ContinuousClock.now - windowStart < heartbeatTTL {
                try await Task.sleep(for: .seconds(1))
                steady = max(steady, try memory(of: server.pid).rss)
            }
            let cpu = (try cpuSeconds(of: server.pid) - cpuStart) / (ContinuousClock.now - windowStart).seconds
            let connected = try await store.agents().filter(\.isConnected).count
            let peak = try memory(of: server.pid).peak
            links.cancelAll()
            await pool.close()
            guard connected == agents else {
                throw BenchError(description: "agents: \(connected) of \(agents) agents were still connected at the end of the window")
            }
            return [
                Measurement(name: "agents.rss_mb", value: Double(steady) / 1024, unit: "MB (trellisd, \(agents) agents connected, highest 1 s sample over \(heartbeatTTL.components.seconds) s)"),
                Measurement(name: "agents.peak_rss_mb", value: Double(peak) / 1024, unit: "MB (VmHWM, includes the registration burst)"),
                Measurement(name: "agents.baseline_rss_mb", value: Double(baseline.rss) / 1024, unit: "MB (no agent connected)"),
                Measurement(name: "agents.rss_per_agent_kb", value: Double(steady - baseline.rss) / Double(agents), unit: "kB"),
                Measurement(name: "agents.cpu_percent", value: cpu * 100, unit: "% of one core (trellisd over the window: heartbeats, timers)"),
                Measurement(name: "agents.register_seconds", value: registerSeconds, unit: "s (\(agents) agents connecting at once, until all are registered)"),
            ]
        }
    }

    /// One simulated agent: the real link, a runner with nothing to run.
    static func makeLink(_ index: Int, host: String, port: Int, token: String, workDirectory: String, logger: Logger) -> AgentLink {
        let name = "bench-agent-\(index)"
        let runner = TaskRunner(
            settings: TaskRunner.Settings(agentName: name, node: "bench-node-\(index)", slots: slots, workDirectory: workDirectory),
            outbox: Outbox())
        var client = WireClientConfiguration(host: host, port: port, role: .agent, credentials: token, name: name)
        client.connectTimeout = .seconds(30)
        var info = Trellis_V1_AgentInfo()
        info.name = name
        info.node = "bench-node-\(index)"
        info.pool = "default"
        info.slots = Int32(slots)
        info.version = "bench"
        return AgentLink(settings: AgentLink.Settings(client: client, info: info), runner: runner, logger: logger)
    }

    /// User plus system CPU time a process has used, in seconds.
    static func cpuSeconds(of pid: pid_t) throws -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else {
            throw BenchError(description: "agents: cannot read /proc/\(pid)/stat (trellisd exited?)")
        }
        // After "pid (comm) ": state is field 3; utime and stime are 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw BenchError(description: "agents: unexpected /proc/\(pid)/stat")
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// VmRSS and VmHWM of a process, in kB.
    static func memory(of pid: pid_t) throws -> (rss: Int, peak: Int) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else {
            throw BenchError(description: "agents: cannot read /proc/\(pid)/status (trellisd exited?)")
        }
        func field(_ name: String) -> Int? {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        guard let rss = field("VmRSS"), let peak = field("VmHWM") else {
            throw BenchError(description: "agents: no VmRSS/VmHWM in /proc/\(pid)/status")
        }
        return (rss, peak)
    }
}
