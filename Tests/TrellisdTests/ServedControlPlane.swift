import Foundation
import SwiftProtobuf
import Synchronization
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisTestSupport
import TrellisWire

/// A real `trellisd serve` process for binary-level tests: c-instant as the
/// default executor (recording every execution in a file), a database of
/// the test's own, ports chosen by the kernel.
final class ServedControlPlane: Sendable {
    let url: String
    let pluginDirectory: String
    let recordFile: String
    /// Where the first replica writes the admin token it creates.
    let adminTokenFile: String
    /// The join token agents present.
    let joinTokenFile: String
    let scratch: URL
    /// Every replica started, killed when the test ends however it ends.
    private let started = Mutex<[BackgroundProcess]>([])

    init(url: String) throws {
        self.url = url
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("trellisd-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        pluginDirectory = scratch.appendingPathComponent("plugins").path
        try FileManager.default.createDirectory(atPath: pluginDirectory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: pluginDirectory + "/libtrellis-executor-c-instant.so",
            withDestinationPath: try ChildProcess.builtProduct("libtrellis-executor-c-instant.so"))
        try FileManager.default.createSymbolicLink(
            atPath: pluginDirectory + "/libtrellis-executor-persistent-pool.so",
            withDestinationPath: try ChildProcess.builtProduct("libtrellis-executor-persistent-pool.so"))
        recordFile = scratch.appendingPathComponent("executions.tsv").path
        adminTokenFile = scratch.appendingPathComponent("admin-token").path
        joinTokenFile = scratch.appendingPathComponent("join-token").path
        try Data("join-\(UUID().uuidString)\n".utf8).write(to: URL(fileURLWithPath: joinTokenFile))
    }

    /// Starts a replica; returns once it printed where it serves.
    func start(name: String, extra: [String] = [], environment extraEnvironment: [String: String] = [:]) async throws -> BackgroundProcess {
        var environment = ProcessInfo.processInfo.environment
        environment["TRELLIS__EXECUTOR__C_INSTANT__RECORD_FILE"] = recordFile
        environment.merge(extraEnvironment) { _, extra in extra }
        let process = try BackgroundProcess(try ChildProcess.builtProduct("trellisd"), [
            "serve", "--database-url", url, "--rpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
            "--plugin-dirs", pluginDirectory, "--default-executor", "c-instant", "--sweep-interval", "200ms",
            "--replica-name", name, "--log-level", "debug", "--bootstrap-admin-token-file", adminTokenFile,
            "--agent-join-token-file", joinTokenFile,
        ] + extra, environment: environment, name: name)
        started.withLock { $0.append(process) }
        do {
            try await process.waitForOutput("trellisd: serving rpc on ")
        } catch {
            await process.stop()
            throw error
        }
        return process
    }

    /// Puts another built plugin (`libtrellis-executor-NAME.so`) in the
    /// plugin directory, for replicas started after.
    func addPlugin(_ file: String) throws {
        try FileManager.default.createSymbolicLink(atPath: pluginDirectory + "/" + file, withDestinationPath: try ChildProcess.builtProduct(file))
    }

    /// Starts a `trellis-agent` joined to `replica`; returns once the
    /// control plane lists it as registered.
    func startAgent(
        _ name: String, on replica: BackgroundProcess, slots: Int = 4, labels: [String: String] = [:], extra: [String] = []
    ) async throws -> BackgroundProcess {
        let work = scratch.appendingPathComponent("agent-\(name)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let labelArguments = labels.sorted { $0.key < $1.key }.flatMap { ["--label", "\($0.key)=\($0.value)"] }
        let process = try BackgroundProcess(try ChildProcess.builtProduct("trellis-agent"), [
            "--control-plane", "127.0.0.1:\(try Self.ports(of: replica).rpc)", "--token-file", joinTokenFile,
            "--pool", "default", "--slots", "\(slots)", "--node-name", name, "--work-dir", work, "--log-level", "debug",
        ] + labelArguments + extra, name: "agent \(name)")
        started.withLock { $0.append(process) }
        let api = try await api(replica)
        defer { Task { await api.close() } }
        do {
            try await eventually("agent \(name) registered", timeout: .seconds(60)) {
                if let status = process.exitStatus { throw BackgroundProcess.Failure("agent \(name) exited with \(status): \(process.stderr)") }
                let agents: Trellis_V1_ListAgentsResponse = try await api.call("ListAgents", Trellis_V1_ListAgentsRequest())
                return agents.agents.contains { $0.name == name && $0.connected && !$0.draining }
            }
        } catch {
            throw BackgroundProcess.Failure("\(error)\nagent stderr:\n\(process.stderr)\ncontrol plane stderr:\n\(replica.stderr)")
        }
        return process
    }

    /// The rpc and http ports a started replica printed.
    static func ports(of process: BackgroundProcess) throws -> (rpc: Int, http: Int) {
        let line = process.stdout.split(separator: "\n").first { $0.hasPrefix("trellisd: serving rpc on ") } ?? ""
        let ports = line.split(separator: ",").compactMap { $0.split(separator: ":").last.flatMap { Int($0) } }
        guard ports.count == 2 else { throw BackgroundProcess.Failure("no ports in '\(line)'") }
        return (ports[0], ports[1])
    }

    /// A client connection to a replica's API with the bootstrap admin token.
    func api(_ process: BackgroundProcess) async throws -> WireConnection {
        let token = try String(contentsOfFile: adminTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return try await WireClient.connect(configuration: WireClientConfiguration(
            host: "127.0.0.1", port: try Self.ports(of: process).rpc, role: .client, credentials: token, name: "serve-test"))
    }

    /// The task id of every execution c-instant recorded, in order.
    func executions() -> [String] {
        guard let text = try? String(contentsOfFile: recordFile, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map { String($0.split(separator: "\t", omittingEmptySubsequences: false)[3]) }
    }

    /// Kills every replica still running and removes the scratch area.
    func remove() async {
        for process in started.withLock({ $0 }) { await process.stop() }
        try? FileManager.default.removeItem(at: scratch)
    }

    /// Runs `body` with a control-plane scratch area on a fresh database.
    static func with(_ body: (ServedControlPlane, StateStore) async throws -> Void) async throws {
        try await FreshDatabase.with { url in
            let served = try ServedControlPlane(url: url)
            let pool = PostgresPool(url, maximumConnections: 2)
            do {
                try await body(served, StateStore(pool: pool))
            } catch {
                await served.remove()
                await pool.close()
                throw error
            }
            await served.remove()
            await pool.close()
        }
    }
}

extension WireConnection {
    /// A typed call of a TrellisAPI method.
    func call<Response: SwiftProtobuf.Message>(
        _ method: String, _ request: some SwiftProtobuf.Message, as type: Response.Type = Response.self
    ) async throws -> Response {
        try await unary("/trellis.v1.TrellisAPI/\(method)", request, as: Response.self, timeout: .seconds(30))
    }

    /// Submits a DAG file's text; its response.
    func submit(_ yaml: String, file: String) async throws -> Trellis_V1_SubmitDagResponse {
        var request = Trellis_V1_SubmitDagRequest()
        request.yaml = yaml
        request.fileName = file
        return try await call("SubmitDag", request)
    }

    /// Triggers a manual run; its run id.
    func trigger(_ dagID: String, logicalDate: Date = Date(timeIntervalSince1970: 1_700_000_000), conf: String = "") async throws -> String {
        var request = Trellis_V1_TriggerRunRequest()
        request.dagID = dagID
        request.confJson = conf
        request.logicalDate.unixMicros = Int64(logicalDate.timeIntervalSince1970 * 1_000_000)
        let response: Trellis_V1_TriggerRunResponse = try await call("TriggerRun", request)
        return response.run.runID
    }

    /// The run and its task grid.
    func grid(_ dagID: String, _ runID: String) async throws -> Trellis_V1_GetRunResponse {
        var request = Trellis_V1_GetRunRequest()
        request.dagID = dagID
        request.runID = runID
        return try await call("GetRun", request)
    }

    /// Waits (polling GetRun) until the run ends; its final grid.
    func waitForEnd(_ dagID: String, _ runID: String, within timeout: Duration = .seconds(120)) async throws -> Trellis_V1_GetRunResponse {
        try await eventually("\(dagID) \(runID) ends", timeout: timeout) {
            let state = try await grid(dagID, runID).run.state
            return state == .success || state == .failed
        }
        return try await grid(dagID, runID)
    }
}

/// One plain HTTP/1.0 GET over a socket: status code and body.
func httpGet(port: Int, path: String) throws -> (status: Int, body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw BackgroundProcess.Failure("socket: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw BackgroundProcess.Failure("connect to \(port): \(errno)") }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count <= 0 { break }
        response += buffer[0..<count]
    }
    let text = String(decoding: response, as: UTF8.self)
    let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
    let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
    return (status, body)
}
