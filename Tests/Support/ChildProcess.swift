public import Foundation

/// Runs a program to completion and captures its output: for tests that
/// drive the real binaries and scripts. Uses posix_spawn and waitpid on a
/// thread of its own (Foundation's Process did not reap its child inside the
/// test runner, which then hung).
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
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("trellis-child-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("stdout").path
        let err = directory.appendingPathComponent("stderr").path
        let argv = [path] + arguments
        let envp = environment.map { "\($0.key)=\($0.value)" }

        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                let cArguments = argv.map { strdup($0) } + [nil]
                let cEnvironment = envp.map { strdup($0) } + [nil]
                defer {
                    cArguments.forEach { free($0) }
                    cEnvironment.forEach { free($0) }
                }
                var actions = posix_spawn_file_actions_t()
                posix_spawn_file_actions_init(&actions)
                defer { posix_spawn_file_actions_destroy(&actions) }
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                var pid: pid_t = 0
                let spawned = posix_spawn(&pid, path, &actions, nil, cArguments, cEnvironment)
                guard spawned == 0 else {
                    continuation.resume(throwing: SpawnFailed(path: path, errno: spawned))
                    return
                }
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (they are macros).
                let signal = status & 0x7F
                continuation.resume(returning: signal == 0 ? (status >> 8) & 0xFF : 128 + signal)
            }
        }
        return Result(
            status: status,
            stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        )
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
