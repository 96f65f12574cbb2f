import Foundation

/// A PostgreSQL server of one test's own (scripts/lib/pg-test-cluster), for
/// tests that stop and start it without disturbing the shared cluster.
public struct OwnCluster: Sendable {
    public let directory: String
    /// The server's `postgres` database; `FreshDatabase.replacingDatabase`
    /// names another.
    public let url: String

    public static func create() async throws -> OwnCluster {
        let environment = ProcessInfo.processInfo.environment
        guard let scratch = environment["TRELLIS_TEST_PG_SCRATCH"], environment["TRELLIS_TEST_PG_CLUSTER"] != nil else {
            throw Missing()
        }
        let directory = "\(scratch)/own-\(UInt32.random(in: 0...UInt32.max))"
        try await run("create", directory)
        let url = try String(contentsOfFile: "\(directory)/url", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return OwnCluster(directory: directory, url: url)
    }

    public func stop() async throws { try await Self.run("stop", directory) }
    public func start() async throws { try await Self.run("start", directory) }
    public func remove() async { try? await Self.run("remove", directory) }

    /// Runs `body` with a new cluster, removed afterwards however `body` ends.
    public static func with<T>(_ body: (OwnCluster) async throws -> T) async throws -> T {
        let cluster = try await create()
        do {
            let value = try await body(cluster)
            await cluster.remove()
            return value
        } catch {
            await cluster.remove()
            throw error
        }
    }

    private static func run(_ command: String, _ directory: String) async throws {
        let path = ProcessInfo.processInfo.environment["TRELLIS_TEST_PG_CLUSTER"]!
        let result = try await ChildProcess.run(path, [command, directory])
        guard result.status == 0 else {
            throw Failed(description: "pg-test-cluster \(command) \(directory) failed (exit \(result.status)): \(result.stderr)")
        }
    }

    public struct Missing: Error, CustomStringConvertible {
        public var description: String {
            "TRELLIS_TEST_PG_SCRATCH / TRELLIS_TEST_PG_CLUSTER are not set: run the suite with ./scripts/test"
        }
    }

    public struct Failed: Error, CustomStringConvertible {
        public var description: String
    }
}
