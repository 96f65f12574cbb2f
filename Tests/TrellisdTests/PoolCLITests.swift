import Foundation
import Testing
import TrellisTestSupport

/// `trellis pools …` and the pool warnings, with the real `trellis` binary
/// against a real `trellisd serve` (c-instant as the default executor) and
/// PostgreSQL: every verb and format, the exit codes, and end to end a task
/// whose pool is missing waiting, reported, then running once the pool is
/// created.
@Suite struct PoolCLITests {
    typealias CLI = CLITests.CLI

    @Test func everyPoolVerbEveryFormatAndEveryExitCode() async throws {
        try await ServedControlPlane.with { served, _ in
            let trellisd = try await served.start(name: "pools-cli")
            let address = "127.0.0.1:\(try ServedControlPlane.ports(of: trellisd).rpc)"
            let admin = try String(contentsOfFile: served.adminTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let trellis = try CLI(scratch: served.scratch, address: address, token: admin)

            // list / get in every format.
            var result = try await trellis("pools", "list")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.hasPrefix("NAME "), "\(result.stdout)")
            #expect(result.stdout.contains("default_pool") && result.stdout.contains("Default pool"), "\(result.stdout)")
            #expect(CLITests.fits(result.stdout))
            result = try await trellis("pools", "list", "-o", "json")
            let pools = try #require(try CLITests.json(result.stdout)["pools"] as? [[String: Any]], "\(result.stdout)")
            #expect(pools.map { $0["name"] as? String } == ["default_pool"])
            #expect(pools.first?["slots"] as? Int == 128)
            #expect(pools.first?["open_slots"] as? Int == 128)
            result = try await trellis("pools", "list", "-o", "yaml")
            #expect(result.stdout.contains("- name: default_pool"), "\(result.stdout)")

            // set: create, resize (the description stays), every format.
            result = try await trellis("pools", "set", "etl", "4", "--description", "ETL jobs")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "pool etl created with 4 slots (4 open)\n", "\(result.stdout)")
            result = try await trellis("pools", "set", "etl", "6", "-o", "json")
            #expect(result.status == 0, "\(result.stderr)")
            let set = try CLITests.json(result.stdout)
            #expect(set["created"] as? Bool == false)
            #expect((set["pool"] as? [String: Any])?["slots"] as? Int == 6)
            #expect((set["pool"] as? [String: Any])?["description"] as? String == "ETL jobs")
            result = try await trellis("pools", "set", "etl", "6", "-o", "yaml")
            #expect(result.stdout.contains("created: false"), "\(result.stdout)")
            result = try await trellis("pools", "get", "etl")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.split(separator: "\n").count == 2, "\(result.stdout)")
            #expect(result.stdout.contains("etl") && result.stdout.contains("ETL jobs"), "\(result.stdout)")
            result = try await trellis("pools", "get", "etl", "-o", "json")
            #expect(try CLITests.json(result.stdout)["name"] as? String == "etl")
            result = try await trellis("pools", "get", "etl", "-o", "yaml")
            #expect(result.stdout.contains("slots: 6"), "\(result.stdout)")

            // 2: unknown names, bad input, default_pool.
            result = try await trellis("pools", "get", "elt")
            #expect(result.status == 2)
            #expect(result.stderr.contains("trellis: pools get: pool 'elt' does not exist; did you mean 'etl'?"), "\(result.stderr)")
            result = try await trellis("pools", "delete", "nope")
            #expect(result.status == 2)
            #expect(result.stderr.contains("pool 'nope' does not exist (known: default_pool, etl)"), "\(result.stderr)")
            result = try await trellis("pools", "set", "gpu pool", "2")
            #expect(result.status == 2)
            #expect(result.stderr.contains("pool name 'gpu pool' may only contain letters, digits"), "\(result.stderr)")
            result = try await trellis("pools", "set", "gpu", "--", "-2")
            #expect(result.status == 2)
            #expect(result.stderr.contains("SLOTS must be 0 or more, or unlimited (-1), not '-2'"), "\(result.stderr)")
            result = try await trellis("pools", "set", "gpu", "many")
            #expect(result.status == 2)
            // Unlimited, as Airflow's -1: by name or, after --, by number.
            result = try await trellis("pools", "set", "sensors", "unlimited")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "pool sensors created with unlimited slots\n", "\(result.stdout)")
            result = try await trellis("pools", "set", "sensors", "--", "-1")
            #expect(result.stdout == "pool sensors set with unlimited slots\n", "\(result.stdout)")
            result = try await trellis("pools", "get", "sensors")
            #expect(result.stdout.split(separator: "\n").last?.split(separator: " ").filter { $0 == "unlimited" }.count == 2, "\(result.stdout)")
            let sensors = try CLITests.json(try await trellis("pools", "get", "sensors", "-o", "json").stdout)
            #expect(sensors["slots"] as? Int == -1 && sensors["open_slots"] as? Int == -1, "\(sensors)")
            result = try await trellis("pools", "delete", "sensors")
            #expect(result.status == 0, "\(result.stderr)")
            result = try await trellis("pools", "delete", "default_pool")
            #expect(result.status == 2)
            #expect(result.stderr.contains("default_pool cannot be deleted"), "\(result.stderr)")

            // 3: a viewer reads but cannot change pools.
            result = try await trellis("tokens", "create", "reader", "--role", "viewer")
            let viewer = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            result = try await trellis("pools", "list", environment: ["TRELLIS_TOKEN": viewer])
            #expect(result.status == 0, "\(result.stderr)")
            result = try await trellis("pools", "set", "etl", "1", environment: ["TRELLIS_TOKEN": viewer])
            #expect(result.status == 3)
            #expect(result.stderr.contains("SetPool requires the admin role; this token is viewer"), "\(result.stderr)")
            result = try await trellis("pools", "delete", "etl", environment: ["TRELLIS_TOKEN": viewer])
            #expect(result.status == 3)

            // A pool that a run's tasks still need is not deleted (2), then is.
            let dag = try CLITests.write("""
                dag_id: etl_pool
                default_args: {executor: c-instant, executor_config: {delay_ms: 600000}}
                tasks:
                  - {task_id: load, pool: etl}
                """, to: served.scratch, as: "etl_pool.yaml")
            result = try await trellis("dags", "submit", dag)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(!result.stderr.contains("warning:"), "\(result.stderr)")
            result = try await trellis("dags", "trigger", "etl_pool")
            #expect(result.status == 0, "\(result.stderr)")
            try await eventually("load runs", timeout: .seconds(60)) {
                let pool = try CLITests.json(try await trellis("pools", "get", "etl", "-o", "json").stdout)
                return pool["running_slots"] as? Int == 1
            }
            result = try await trellis("pools", "list")
            #expect(result.stdout.contains("ETL jobs"), "\(result.stdout)")
            result = try await trellis("pools", "delete", "etl")
            #expect(result.status == 2)
            #expect(result.stderr.contains("pool 'etl' is still needed by 1 unfinished task instance (1 running) of DAG etl_pool"), "\(result.stderr)")
            // Shrinking below what is in use is allowed, with a note.
            result = try await trellis("pools", "set", "etl", "0")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "pool etl set with 0 slots (-1 open)\n", "\(result.stdout)")
            #expect(result.stderr.contains("note: pool etl has 1 slot in use, more than its 0;"), "\(result.stderr)")
            result = try await trellis("runs", "cancel", "etl_pool", "latest")
            #expect(result.status == 0, "\(result.stderr)")
            result = try await trellis("pools", "delete", "etl")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "pool etl deleted\n", "\(result.stdout)")
            result = try await trellis("pools", "list", "-o", "json")
            #expect((try CLITests.json(result.stdout)["pools"] as? [[String: Any]])?.count == 1, "\(result.stdout)")
        }
    }

    /// End to end: a task in a pool made with `trellis pools set` runs; one
    /// in a missing pool is warned about at submission, waits, is shown
    /// waiting by `runs show` and logged once by trellisd, and runs as soon
    /// as the pool is created.
    @Test func aTaskInAMissingPoolWaitsIsReportedAndRunsOnceThePoolIsCreated() async throws {
        try await ServedControlPlane.with { served, _ in
            let trellisd = try await served.start(name: "pools-e2e")
            let ports = try ServedControlPlane.ports(of: trellisd)
            let admin = try String(contentsOfFile: served.adminTokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            let trellis = try CLI(scratch: served.scratch, address: "127.0.0.1:\(ports.rpc)", token: admin)

            var result = try await trellis("pools", "set", "fast", "2")
            #expect(result.status == 0, "\(result.stderr)")
            let file = try CLITests.write("""
                dag_id: two_pools
                default_args: {executor: c-instant, executor_config: {}}
                tasks:
                  - {task_id: quick, pool: fast}
                  - {task_id: blocked, pool: reports}
                  - {task_id: after, pool: reports, upstream: [blocked]}
                """, to: served.scratch, as: "two_pools.yaml")
            result = try await trellis("dags", "submit", file)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("dag two_pools stored as version 1, 3 tasks"), "\(result.stdout)")
            #expect(result.stderr == """
                warning: \(file): pool 'reports' does not exist, so tasks blocked, after will wait until it is created: \
                `trellis pools set reports SLOTS`

                """, "\(result.stderr)")

            result = try await trellis("dags", "trigger", "two_pools")
            #expect(result.status == 0, "\(result.stderr)")
            try await eventually("quick runs while blocked waits", timeout: .seconds(60)) {
                let grid = try CLITests.json(try await trellis("runs", "show", "two_pools", "latest", "-o", "json").stdout)
                let tasks = (grid["tasks"] as? [[String: Any]]) ?? []
                let states = Dictionary(uniqueKeysWithValues: tasks.map { ($0["task_id"] as? String ?? "", $0["state"] as? String ?? "") })
                return states["quick"] == "success" && states["blocked"] == "scheduled"
            }
            result = try await trellis("runs", "show", "two_pools", "latest", "-o", "json")
            let tasks = try #require(try CLITests.json(result.stdout)["tasks"] as? [[String: Any]])
            let reasons = Dictionary(uniqueKeysWithValues: tasks.map { ($0["task_id"] as? String ?? "", $0["waiting_reason"] as? String ?? "") })
            #expect(reasons == [
                "quick": "",
                "blocked": "pool 'reports' does not exist: create it with `trellis pools set reports SLOTS`",
                "after": "pool 'reports' does not exist: create it with `trellis pools set reports SLOTS`",
            ])
            result = try await trellis("runs", "show", "two_pools", "latest")
            #expect(result.status == 0, "\(result.stderr)")
            #expect(CLITests.fits(result.stdout), "\(result.stdout)")
            #expect(result.stdout.hasSuffix(
                "\nwaiting: blocked, after\n  pool 'reports' does not exist\n  create it with `trellis pools set reports SLOTS`\n"),
                "\(result.stdout)")
            #expect(served.executions() == ["quick"])

            // trellisd's log says so, once, however many passes go by.
            let warning = "tasks using a pool that does not exist will not be scheduled until it is created"
            try await eventually("trellisd logs the missing pool") { trellisd.stderr.contains(warning) }
            let passes = try Self.schedulerPasses(http: ports.http)
            try await eventually("three more scheduler passes", timeout: .seconds(60)) { try Self.schedulerPasses(http: ports.http) >= passes + 3 }
            let logged = trellisd.stderr.split(separator: "\n").filter { $0.contains(warning) }
            #expect(logged.count == 1, "\(logged)")
            #expect(logged.first?.contains("pool=reports") == true, "\(logged)")
            #expect(logged.first?.contains("dags=two_pools") == true, "\(logged)")

            // Creating the pool lets them run; the run succeeds.
            result = try await trellis("pools", "set", "reports", "1")
            #expect(result.status == 0, "\(result.stderr)")
            result = try await trellis("runs", "watch", "two_pools", "latest")
            #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
            #expect(result.stdout.contains("run two_pools manual__") && result.stdout.contains(" success in "), "\(result.stdout)")
            #expect(served.executions() == ["quick", "blocked", "after"])
            result = try await trellis("runs", "show", "two_pools", "latest")
            #expect(!result.stdout.contains("waiting:"), "\(result.stdout)")
        }
    }

    /// `trellis_scheduler_heartbeat_total` from trellisd's /metrics.
    static func schedulerPasses(http: Int) throws -> Int {
        let body = try httpGet(port: http, path: "/metrics").body
        let line = body.split(separator: "\n").first { $0.hasPrefix("trellis_scheduler_heartbeat_total ") } ?? ""
        return Int(Double(line.split(separator: " ").last ?? "") ?? 0)
    }
}
