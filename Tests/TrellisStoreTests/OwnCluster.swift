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
        let url = try await run("create", directory).trimmingCharacters(in: .whitespacesAndNewlines)
        return OwnCluster(directory: directory, url: url)
    }

    func stop() async throws { _ = try await Self.run("stop", directory) }
    func start() async throws { _ = try await Self.run("start", directory) }
    func remove() async { _ = try? await Self.run("remove", directory) }

    private static func run(_ command: String, _ directory: String) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.environment["TRELLIS_TEST_PG_CLUSTER"]!)
        process.arguments = [command, directory]
        let output = Pipe()
        process.standardOutput = output
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in continuation.resume() }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failed(description: "pg-test-cluster \(command) exited \(process.terminationStatus): \(text)")
        }
        return text
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
