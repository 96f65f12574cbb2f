import Foundation

/// Files of the repository the tests read (examples, the DAG file schema).
enum RepositoryFiles {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // TrellisCoreTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    static func read(_ path: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    /// Paths (relative to the root) of the files in `directory` ending in `suffix`, sorted.
    static func list(_ directory: String, suffix: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(directory).path)
            .filter { $0.hasSuffix(suffix) }
            .sorted()
            .map { "\(directory)/\($0)" }
    }
}

/// Test resources bundled with the target (Tests/TrellisCoreTests/Resources).
enum TestResources {
    static func url(_ path: String) throws -> URL {
        // The target copies the whole Resources folder into its bundle.
        guard let base = Bundle.module.url(forResource: "Resources", withExtension: nil) else { throw Missing(path: path) }
        return base.appendingPathComponent(path)
    }

    static func read(_ path: String) throws -> String {
        try String(contentsOf: url(path), encoding: .utf8)
    }

    struct Missing: Error { var path: String }
}
