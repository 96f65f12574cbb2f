import Foundation

/// A PostgreSQL server of one test's own (scripts/lib/pg-test-cluster), for
/// tests that stop and start it without disturbing the shared cluster.
struct OwnCluster {
    let directory: String
    let url: String

    static func create() async throws -> OwnCluster {
        let environment = ProcessInfo.processInfo.environment
        guard let scratch = environment["TRELLIS_TEST_PG_SCRATCH"], environment["TRELLIS_TEST_PG_CLUSTER"] != nil else {
            throw Missing()
        }
        let directory = "\(scratch)/own-\(UInt32.random(in: 0...UInt32.max))"
        try await run("create", directory)
        let url = try String(contentsOfFile: "\(directory)/url", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return OwnCluster(directory: directory, url: url)
    }

    func stop() async throws { try await Self.run("stop", directory) }
    func start() async throws { try await Self.run("start", directory) }
    func remove() async { try? await Self.run("remove", directory) }

    /// Runs the helper with posix_spawn and waitpid on a thread of its own
    /// (Foundation's Process did not reap it inside the test runner).
    private static func run(_ command: String, _ directory: String) async throws {
        let path = ProcessInfo.processInfo.environment["TRELLIS_TEST_PG_CLUSTER"]!
        let arguments = [path, command, directory]
        let environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            Thread.detachNewThread {
                let argv = arguments.map { strdup($0) } + [nil]
                let envp = environment.map { strdup($0) } + [nil]
                defer {
                    argv.forEach { free($0) }
                    envp.forEach { free($0) }
                }
                var pid: pid_t = 0
                guard posix_spawn(&pid, path, nil, nil, argv, envp) == 0 else {
                    continuation.resume(returning: -1)
                    return
                }
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                continuation.resume(returning: status)
            }
        }
        guard status == 0 else {
            throw Failed(description: "pg-test-cluster \(command) \(directory) failed (wait status \(status))")
        }
    }

    struct Missing: Error, CustomStringConvertible {
        var description: String {
            "TRELLIS_TEST_PG_SCRATCH / TRELLIS_TEST_PG_CLUSTER are not set: run the suite with ./scripts/test"
        }
    }

    struct Failed: Error, CustomStringConvertible {
        var description: String
    }
}
