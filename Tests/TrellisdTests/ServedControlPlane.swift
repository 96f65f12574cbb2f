import Foundation
import TrellisCore
import TrellisStore
import TrellisTestSupport

/// A real `trellisd serve` process for binary-level tests: c-instant as the
/// default executor (recording every execution in a file), a database of
/// the test's own, ports chosen by the kernel.
final class ServedControlPlane: Sendable {
    let url: String
    let pluginDirectory: String
    let recordFile: String
    let scratch: URL

    init(url: String) throws {
        self.url = url
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("trellisd-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        pluginDirectory = scratch.appendingPathComponent("plugins").path
        try FileManager.default.createDirectory(atPath: pluginDirectory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: pluginDirectory + "/libtrellis-executor-c-instant.so",
            withDestinationPath: try ChildProcess.builtProduct("libtrellis-executor-c-instant.so"))
        recordFile = scratch.appendingPathComponent("executions.tsv").path
    }

    /// Starts a replica; returns once it printed where it serves.
    func start(name: String, extra: [String] = []) async throws -> BackgroundProcess {
        var environment = ProcessInfo.processInfo.environment
        environment["TRELLIS__EXECUTOR__C_INSTANT__RECORD_FILE"] = recordFile
        let process = try BackgroundProcess(try ChildProcess.builtProduct("trellisd"), [
            "serve", "--database-url", url, "--rpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
            "--plugin-dirs", pluginDirectory, "--default-executor", "c-instant", "--sweep-interval", "200ms",
            "--replica-name", name, "--log-level", "debug",
        ] + extra, environment: environment, name: name)
        do {
            try await process.waitForOutput("trellisd: serving rpc on ")
        } catch {
            await process.stop()
            throw error
        }
        return process
    }

    /// The task id of every execution c-instant recorded, in order.
    func executions() -> [String] {
        guard let text = try? String(contentsOfFile: recordFile, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map { String($0.split(separator: "\t", omittingEmptySubsequences: false)[3]) }
    }

    func remove() {
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
                await pool.close()
                served.remove()
                throw error
            }
            await pool.close()
            served.remove()
        }
    }
}
