import Foundation

/// Applies the numbered SQL files shipped with TrellisStore
/// (`Migrations/SQL/NNNN_name.sql`) to a database, under an advisory lock so
/// that replicas starting together apply each file once. Applying twice is a
/// no-op; a database migrated by a newer Trellis is refused.
public enum Migrator {
    /// One migration file.
    public struct Migration: Sendable, Hashable {
        public var version: Int
        public var name: String
        public var sql: String

        public init(version: Int, name: String, sql: String) {
            self.version = version
            self.name = name
            self.sql = sql
        }
    }

    /// The advisory lock key migrations hold (an arbitrary constant: "trellis" + 1).
    static let lockKey: Int64 = 0x7472_656c_6c69_7301

    /// The migrations shipped with this build, in order.
    public static func bundled() throws(PostgresError) -> [Migration] {
        guard let directory = Bundle.module.url(forResource: "SQL", withExtension: nil) else {
            throw PostgresError(.migration, "the migration files are missing from the TrellisStore resource bundle")
        }
        let files: [URL]
        do {
            files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
        } catch {
            throw PostgresError(.migration, "cannot list migration files in \(directory.path): \(error)")
        }
        var migrations: [Migration] = []
        for file in files where file.pathExtension == "sql" {
            let name = file.deletingPathExtension().lastPathComponent
            guard let version = Int(name.prefix { $0.isNumber }) else {
                throw PostgresError(.migration, "migration file \(file.lastPathComponent) does not start with a number")
            }
            do {
                migrations.append(Migration(version: version, name: name, sql: try String(contentsOf: file, encoding: .utf8)))
            } catch {
                throw PostgresError(.migration, "cannot read migration file \(file.path): \(error)")
            }
        }
        migrations.sort { $0.version < $1.version }
        for (index, migration) in migrations.enumerated() where migration.version != index + 1 {
            throw PostgresError(.migration, "migrations must be numbered 1, 2, 3, … without gaps; found \(migration.name) at position \(index + 1)")
        }
        return migrations
    }

    /// Brings the database up to date and returns the versions applied now
    /// (empty when it already was). Each file runs in its own transaction.
    @discardableResult
    public static func migrate(
        _ connection: PostgresConnection, migrations: [Migration]? = nil
    ) async throws(PostgresError) -> [Int] {
        let chosen: [Migration]
        if let migrations { chosen = migrations } else { chosen = try Self.bundled() }
        let migrations = chosen
        return try await connection.withSession { session in
            try session.query("SELECT pg_advisory_lock($1)", [lockKey])
            defer { _ = try? session.query("SELECT pg_advisory_unlock($1)", [lockKey]) }
            try session.execute(script: """
                CREATE TABLE IF NOT EXISTS schema_migration (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """)
            let applied = Set(try session.query("SELECT version FROM schema_migration").map { row throws(PostgresError) in
                try row.decode(0, as: Int.self)
            })
            let known = migrations.last?.version ?? 0
            if let newest = applied.max(), newest > known {
                throw PostgresError(
                    .databaseNewerThanCode,
                    "the database schema is at version \(newest) but this Trellis knows versions up to \(known): upgrade Trellis, or point it at another database"
                )
            }
            var appliedNow: [Int] = []
            for migration in migrations where !applied.contains(migration.version) {
                do {
                    try session.transaction { session in
                        try session.execute(script: migration.sql)
                        try session.query(
                            "INSERT INTO schema_migration (version, name) VALUES ($1, $2)",
                            [migration.version, migration.name]
                        )
                    }
                } catch let error as PostgresError where error.code == .server {
                    var failed = error
                    failed.code = .migration
                    failed.message = "migration \(migration.name) failed: \(error.message)"
                    throw failed
                }
                appliedNow.append(migration.version)
            }
            return appliedNow
        }
    }

    /// The highest version applied to the database, or 0 for an empty one.
    public static func currentVersion(_ connection: PostgresConnection) async throws(PostgresError) -> Int {
        try await connection.withSession { session in
            let exists = try session.query("SELECT to_regclass('schema_migration') IS NOT NULL")[0].decode(0, as: Bool.self)
            guard exists else { return 0 }
            return try session.query("SELECT coalesce(max(version), 0) FROM schema_migration")[0].decode(0, as: Int.self)
        }
    }
}
