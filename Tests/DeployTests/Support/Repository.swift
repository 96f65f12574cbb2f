import Foundation
import TrellisTestSupport

/// The repository this test target lives in, and the tools the tests run.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func text(_ relative: String) throws -> String {
        try String(contentsOfFile: path(relative), encoding: .utf8)
    }

    /// The kustomize trees a user may apply: the base and every overlay.
    static func kustomizations() throws -> [String] {
        let overlays = try FileManager.default.contentsOfDirectory(atPath: path("deploy/overlays"))
            .filter { FileManager.default.fileExists(atPath: path("deploy/overlays/\($0)/kustomization.yaml")) }
            .sorted()
        return ["deploy/base"] + overlays.map { "deploy/overlays/\($0)" }
    }

    /// `name` found on PATH, as the shell would.
    static func tool(_ name: String) throws -> String {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
        for directory in directories {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw Missing(description: "\(name) is not on PATH (./scripts/setup installs what the tests need; kubectl comes with the machine)")
    }

    struct Missing: Error, CustomStringConvertible { var description: String }

    /// Runs a program to completion; its output, or an error with both
    /// outputs when it fails.
    @discardableResult
    static func run(_ path: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> ChildProcess.Result {
        let result = try await ChildProcess.run(path, arguments, environment: environment ?? ProcessInfo.processInfo.environment)
        guard result.status == 0 else {
            throw Failed(description: "\(path) \(arguments.joined(separator: " ")) exited with \(result.status)\nstdout:\n\(result.stdout)\nstderr:\n\(result.stderr)")
        }
        return result
    }

    struct Failed: Error, CustomStringConvertible { var description: String }

    /// A new temporary directory, removed by the caller.
    static func temporaryDirectory(_ prefix: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }
}
