import Testing
import TrellisStore
import TrellisTestSupport

@Suite struct MigrationTests {
    @Test func migratingTwiceIsANoOp() async throws {
        try await FreshDatabase.with(migrated: false) { url in
            let connection = try await PostgresConnection.connect(url)
            defer { Task { await connection.close() } }
            let bundled = try Migrator.bundled()
            #expect(try await Migrator.currentVersion(connection) == 0)
            let first = try await Migrator.migrate(connection)
            #expect(first == bundled.map(\.version))
            let tables = try await connection.withSession { try $0.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0].decode(0, as: Int.self) }
            let second = try await Migrator.migrate(connection)
            #expect(second.isEmpty)
            #expect(try await Migrator.currentVersion(connection) == bundled.count)
            let tablesAfter = try await connection.withSession { try $0.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0].decode(0, as: Int.self) }
            #expect(tables == tablesAfter)
            let pools = try await connection.withSession { try $0.query("SELECT count(*) FROM pool")[0].decode(0, as: Int.self) }
            #expect(pools == 1)
        }
    }

    @Test func concurrentMigratorsApplyEachFileOnce() async throws {
        try await FreshDatabase.with(migrated: false) { url in
            let applied = try await withThrowingTaskGroup(of: [Int].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        let connection = try await PostgresConnection.connect(url)
                        defer { Task { await connection.close() } }
                        return try await Migrator.migrate(connection)
                    }
                }
                var all: [Int] = []
                for try await versions in group { all += versions }
                return all
            }
            #expect(applied.sorted() == (try Migrator.bundled()).map(\.version))
        }
    }

    @Test func aDatabaseNewerThanTheCodeIsRefused() async throws {
        try await FreshDatabase.with { url in
            let connection = try await PostgresConnection.connect(url)
            defer { Task { await connection.close() } }
            try await connection.withSession { session in
                try session.query("INSERT INTO schema_migration (version, name) VALUES ($1, $2)", [999, "0999_future"])
            }
            do {
                try await Migrator.migrate(connection)
                Issue.record("a newer database was accepted")
            } catch let error as PostgresError {
                #expect(error.code == .databaseNewerThanCode)
                #expect(error.message.contains("999"))
                #expect(error.message.contains("upgrade Trellis"))
            }
        }
    }

    @Test func aFailingMigrationLeavesTheDatabaseAsItWas() async throws {
        try await FreshDatabase.with(migrated: false) { url in
            let connection = try await PostgresConnection.connect(url)
            defer { Task { await connection.close() } }
            let broken = [
                Migrator.Migration(version: 1, name: "0001_ok", sql: "CREATE TABLE a (x int)"),
                Migrator.Migration(version: 2, name: "0002_broken", sql: "CREATE TABLE b (x int); SELECT * FROM nope"),
            ]
            await #expect(throws: PostgresError.self) { try await Migrator.migrate(connection, migrations: broken) }
            #expect(try await Migrator.currentVersion(connection) == 1)
            let b = try await connection.withSession { try $0.query("SELECT to_regclass('b') IS NULL")[0].decode(0, as: Bool.self) }
            #expect(b)
        }
    }
}
