import Foundation
import TrellisStore

/// A database of its own for one test, created on the test cluster and
/// dropped afterwards, so tests run in parallel without seeing each other.
public enum FreshDatabase {
    /// Runs `body` with the URL of a new, empty database (migrated unless
    /// `migrated` is false), then drops the database.
    public static func with<T>(migrated: Bool = true, _ body: (String) async throws -> T) async throws -> T {
        let serverURL = try TestDatabase.url
        let name = "trellis_test_\(UInt64.random(in: 0...UInt64.max) >> 4)"
        let admin = try await PostgresConnection.connect(serverURL)
        // Database names cannot be parameters; this one is ours, not user data.
        try await admin.withSession { try $0.execute(script: "CREATE DATABASE \(name)") }
        let url = replacingDatabase(in: serverURL, with: name)
        do {
            if migrated {
                let connection = try await PostgresConnection.connect(url)
                try await Migrator.migrate(connection)
                await connection.close()
            }
            let value = try await body(url)
            try await admin.withSession { try $0.execute(script: "DROP DATABASE \(name) WITH (FORCE)") }
            await admin.close()
            return value
        } catch {
            _ = try? await admin.withSession { try $0.execute(script: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
            await admin.close()
            throw error
        }
    }

    public static func replacingDatabase(in url: String, with name: String) -> String {
        var components = URLComponents(string: url)!
        components.path = "/" + name
        return components.string!
    }
}
