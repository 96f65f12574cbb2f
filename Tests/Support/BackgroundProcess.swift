public import Foundation
import Synchronization
import TrellisProcess

/// A long-running child process for tests that drive real servers
/// (`trellisd serve`): started with posix_spawn (inheriting no descriptors), its output captured in
/// files that can be read while it runs, signalled, waited for, and killed
/// for sure when the test is done, pass or fail.
public final class BackgroundProcess: Sendable {
    public let pid: pid_t
    public let name: String
    private let directory: URL
    private let exit = ExitStatus()
    private let reaped: Task<Int32, Never>

    /// Starts `path` with `arguments`; stdin is /dev/null.
    public init(_ path: String, _ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment, name: String? = nil) throws {
        self.name = name ?? URL(fileURLWithPath: path).lastPathComponent
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("trellis-bg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let out = directory.appendingPathComponent("stdout").path
        let err = directory.appendingPathComponent("stderr").path
        let pid: pid_t
        do {
            pid = try Spawn.start(path, arguments, environment: environment, standardOutput: .file(out), standardError: .file(err))
        } catch {
            throw ChildProcess.SpawnFailed(path: path, errno: error.errno)
        }
        self.pid = pid
        let exit = self.exit
        let child = pid
        // waitpid on a thread of its own: the test's tasks never block on it.
        reaped = Task.detached {
            await withCheckedContinuation { continuation in
                Thread.detachNewThread {
                    let code = Spawn.wait(child)
                    exit.value.withLock { $0 = code }
                    continuation.resume(returning: code)
                }
            }
        }
    }

    /// Everything it wrote to standard output so far.
    public var stdout: String { (try? String(contentsOf: directory.appendingPathComponent("stdout"), encoding: .utf8)) ?? "" }
    /// Everything it wrote to standard error so far.
    public var stderr: String { (try? String(contentsOf: directory.appendingPathComponent("stderr"), encoding: .utf8)) ?? "" }

    /// Its exit status (128 + signal when killed), or nil while it runs.
    public var exitStatus: Int32? { exit.value.withLock { $0 } }

    /// Sends `signal` (SIGTERM, SIGKILL, …) unless it has already exited.
    public func signal(_ signal: Int32) {
        if exitStatus == nil { kill(pid, signal) }
    }

    /// Waits for it to exit; its status.
    @discardableResult
    public func wait() async -> Int32 { await reaped.value }

    /// Waits until standard output contains `text` (up to `timeout`); the
    /// output then. Throws with both outputs when it exits or time runs out.
    @discardableResult
    public func waitForOutput(_ text: String, timeout: Duration = .seconds(60)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            let output = stdout
            if output.contains(text) { return output }
            if let status = exitStatus {
                throw Failure("\(name) exited with \(status) before printing '\(text)'\nstdout:\n\(output)\nstderr:\n\(stderr)")
            }
            if ContinuousClock.now > deadline {
                throw Failure("\(name) did not print '\(text)' within \(timeout)\nstdout:\n\(output)\nstderr:\n\(stderr)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Its output files go with it, however the test ended (a process that
    /// exited on its own was never `stop`ped: 194 such directories had piled
    /// up in /tmp).
    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Kills it (SIGKILL) if it still runs, waits, and removes its output.
    public func stop() async {
        signal(SIGKILL)
        await wait()
        try? FileManager.default.removeItem(at: directory)
    }

    /// Runs `body` with the process, which is killed afterwards however the
    /// body ends.
    public static func with<T>(
        _ path: String, _ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment, name: String? = nil,
        _ body: (BackgroundProcess) async throws -> T
    ) async throws -> T {
        let process = try BackgroundProcess(path, arguments, environment: environment, name: name)
        do {
            let result = try await body(process)
            await process.stop()
            return result
        } catch {
            await process.stop()
            throw error
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }
}

/// The exit status, shared with the thread that reaps the child.
private final class ExitStatus: Sendable {
    let value = Mutex<Int32?>(nil)
}
