import Foundation
import Testing
import TrellisStore
import TrellisTestSupport

/// The real `trellisd migrate` binary against the test PostgreSQL.
@Suite struct MigrateCommandTests {
    @Test func migratesOnceThenIsANoOp() async throws {
        try await FreshDatabase.with(migrated: false) { url in
            let trellisd = try ChildProcess.builtProduct("trellisd")
            let first = try await ChildProcess.run(trellisd, ["migrate", "--database-url", url])
            #expect(first.status == 0, "\(first.stderr)")
            let versions = try Migrator.bundled().map(\.version)
            let latest = try #require(versions.last)
            #expect(versions.count > 1)
            #expect(first.stdout == "trellisd migrate: applied \(versions.map(String.init).joined(separator: ", ")); the schema is at version \(latest)\n")

            // The URL from the environment this time, as the init container gets it.
            var environment = ProcessInfo.processInfo.environment
            environment["TRELLIS_DATABASE_URL"] = url
            let second = try await ChildProcess.run(trellisd, ["migrate"], environment: environment)
            #expect(second.status == 0, "\(second.stderr)")
            #expect(second.stdout == "trellisd migrate: the schema is current (version \(latest)); nothing to do\n")
        }
    }

    @Test func unreachableDatabaseFailsWithTheReason() async throws {
        let trellisd = try ChildProcess.builtProduct("trellisd")
        let result = try await ChildProcess.run(trellisd, [
            "migrate", "--database-url", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", "--wait-timeout", "0s",
        ])
        #expect(result.status == 1)
        #expect(result.stderr.contains("trellisd migrate: cannot reach the database:"), "\(result.stderr)")
    }

    @Test func configurationProblemsExitTwoAndListEveryOne() async throws {
        let trellisd = try ChildProcess.builtProduct("trellisd")
        var environment = ProcessInfo.processInfo.environment
        environment["TRELLIS_PARALLELISM"] = "many"
        let result = try await ChildProcess.run(trellisd, ["migrate", "--database-url", "x", "--heartbeat-ttl", "soon"], environment: environment)
        #expect(result.status == 2)
        #expect(result.stderr.contains("environment TRELLIS_PARALLELISM: must be a whole number of at least 1, not 'many'"), "\(result.stderr)")
        #expect(result.stderr.contains(#"flag --heartbeat-ttl: "soon" is not a duration"#), "\(result.stderr)")
    }

    @Test func missingDatabaseURLSaysWhereToSetIt() async throws {
        let trellisd = try ChildProcess.builtProduct("trellisd")
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "TRELLIS_DATABASE_URL")
        let result = try await ChildProcess.run(trellisd, ["migrate"], environment: environment)
        #expect(result.status == 2)
        #expect(result.stderr.contains("no database: set database_url in the file, TRELLIS_DATABASE_URL, or --database-url"), "\(result.stderr)")
    }
}

/// Every flag docs/configuration.md documents is one trellisd accepts:
/// `serve` takes them all but standalone's own, `migrate` those of the
/// configuration keys, `standalone` the keys and its own.
@Suite struct TrellisdFlagTests {
    static func flags(in text: some StringProtocol) -> [String] {
        text.split(separator: "`").filter { $0.hasPrefix("--") }.map { String($0.split(separator: " ")[0]) }
    }

    @Test func everyDocumentedFlagIsAccepted() async throws {
        let docs = try String(contentsOf: URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        let serveSection = try #require(docs.range(of: "`trellisd serve` runs one")).lowerBound
        let standaloneSection = try #require(docs.range(of: "## `trellisd standalone`")).lowerBound
        let all = Self.flags(in: docs[..<standaloneSection])
        let keys = Self.flags(in: docs[..<serveSection])
        let standaloneOwn = Self.flags(in: docs[standaloneSection...])
        #expect(keys.count >= 16)
        #expect(all.count > keys.count)
        let trellisd = try ChildProcess.builtProduct("trellisd")
        let serve = try await ChildProcess.run(trellisd, ["serve", "--help"])
        for flag in all {
            #expect(serve.stdout.contains(flag + " "), "trellisd serve --help does not list \(flag)")
        }
        #expect(standaloneOwn.count >= 7)
        let standalone = try await ChildProcess.run(trellisd, ["standalone", "--help"])
        // --wait-timeout is migrate's and serve's: standalone waits for its own PostgreSQL.
        for flag in keys + standaloneOwn where flag != "--wait-timeout" {
            #expect(standalone.stdout.contains(flag + " "), "trellisd standalone --help does not list \(flag)")
        }
        let migrate = try await ChildProcess.run(trellisd, ["migrate", "--help"])
        for flag in keys {
            #expect(migrate.stdout.contains(flag + " "), "trellisd migrate --help does not list \(flag)")
        }
    }
}
