import Foundation
import TrellisTestSupport

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

    private static func run(_ command: String, _ directory: String) async throws {
        let path = ProcessInfo.processInfo.environment["TRELLIS_TEST_PG_CLUSTER"]!
        let result = try await ChildProcess.run(path, [command, directory])
        guard result.status == 0 else {
            throw Failed(description: "pg-test-cluster \(command) \(directory) failed (exit \(result.status)): \(result.stderr)")
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
