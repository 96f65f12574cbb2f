public import Foundation

/// Runs a program to completion and captures its output: for tests that
/// drive the real binaries and scripts. Spawns through `BackgroundProcess`
/// (posix_spawn, waitpid on a thread of its own: Foundation's Process did not
/// reap its child inside the test runner, which then hung).
public enum ChildProcess {
    public struct Result: Sendable {
        /// The exit code, or 128 + signal when it was killed.
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    public static func run(
        _ path: String, _ arguments: [String], environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws -> Result {
        let process = try BackgroundProcess(path, arguments, environment: environment)
        let status = await process.wait()
        let result = Result(status: status, stdout: process.stdout, stderr: process.stderr)
        await process.stop()  // removes its output files
        return result
    }

    /// A binary `swift build` put beside the running test bundle.
    public static func builtProduct(_ name: String) throws -> String {
        let binary = URL(fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        let path = binary.deletingLastPathComponent().appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw SpawnFailed(path: path, errno: ENOENT) }
        return path
    }

    public struct SpawnFailed: Error, CustomStringConvertible {
        public var path: String
        public var errno: Int32
        public var description: String { "cannot run \(path): \(String(cString: strerror(errno))) (build the package first)" }
    }
}
