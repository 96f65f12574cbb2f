import Foundation
import Testing
import TrellisTestSupport
import TrellisClient
import TrellisProto

@Suite struct TableTests {
    @Test func aTableThatFitsIsPrintedWhole() {
        var table = Table([.init("NAME"), .init("COUNT", rightAligned: true)])
        table.append(["alpha", "3"])
        table.append(["b", "12"])
        #expect(table.render() == [
            "NAME   COUNT",
            "alpha      3",
            "b         12",
        ])
    }

    @Test func aWideTableIsCutTo80ColumnsWidestColumnFirst() {
        var table = Table([.init("TASK", minimumWidth: 8), .init("STATE"), .init("REASON", minimumWidth: 6)])
        table.append(["extract", "failed", Table.Cell(String(repeating: "disk full on /data ", count: 10))])
        table.append([Table.Cell(String(repeating: "t", count: 50)), Table.Cell("success"), Table.Cell("")])
        let lines = table.render()
        for line in lines { #expect(line.count <= 80, "\(line.count): \(line)") }
        #expect(lines[1].hasSuffix("…"))
        #expect(lines[1].hasPrefix("extract"))
        // Both long columns gave way; the short one kept its width.
        #expect(lines[2].contains("…  success"))
    }

    @Test func colourIsOnlyAddedWhenAskedAndDoesNotCountTowardsTheWidth() {
        var table = Table([.init("STATE"), .init("TEXT")])
        table.append([.init("failed", .bad), .init(String(repeating: "x", count: 100))])
        let plain = table.render(Terminal(isTerminal: true, colour: false, width: 80))
        #expect(!plain.joined().contains("\u{1B}"))
        let coloured = table.render(Terminal(isTerminal: true, colour: true, width: 80))
        #expect(coloured[1].contains("\u{1B}[31mfailed\u{1B}[0m"))
        let visible = coloured[1].replacingOccurrences(of: "\u{1B}[31m", with: "").replacingOccurrences(of: "\u{1B}[0m", with: "")
        #expect(visible.count == 80)
    }

    @Test func truncationEndsInAnEllipsis() {
        #expect(truncate("abcdef", to: 4) == "abc…")
        #expect(truncate("abc", to: 4) == "abc")
        #expect(truncate("abcdef", to: 1) == "a")
    }

    @Test func theRunGridSnapshot() {
        expectSnapshot(Views.text(Fixtures.run, now: Fixtures.now).joined(separator: "\n") + "\n", named: "runs-show.txt")
        for line in Views.text(Fixtures.run, now: Fixtures.now) { #expect(line.count <= 80, "\(line)") }
    }

    @Test func theRunListSnapshot() {
        var runs = Trellis_V1_ListRunsResponse()
        runs.runs = [Fixtures.run.run, Fixtures.run.run]
        runs.runs[1].runID = "scheduled__2024-04-30T00:00:00+00:00"
        runs.runs[1].state = .success
        let lines = Views.table(runs, now: Fixtures.now).render()
        expectSnapshot(lines.joined(separator: "\n") + "\n", named: "runs-list.txt")
        for line in lines { #expect(line.count <= 80) }
    }
}

@Suite struct DagTreeTests {
    @Test func aDiamondDrawsTheSharedTaskOnceInFull() {
        let lines = DagTree(Fixtures.diamond).render()
        #expect(lines == [
            "extract  (default executor; retries 2)",
            "├── clean  (persistent-pool)",
            "│   └── load  (default executor; after clean, enrich)",
            "│       └── report  (default executor; trigger all_done)",
            "└── enrich  (persistent-pool)",
            "    └── load  (see above)",
            "audit  (default executor)",
        ])
    }

    @Test func longLinesAreCut() {
        var spec = Fixtures.diamond
        spec.tasks[0].taskID = String(repeating: "e", count: 100)
        for index in spec.tasks.indices where spec.tasks[index].upstream == ["extract"] {
            spec.tasks[index].upstream = [spec.tasks[0].taskID]
        }
        for line in DagTree(spec).render(width: 40) { #expect(line.count <= 40) }
    }
}

@Suite struct ProgressTests {
    @Test func theBarShowsFinishedOverTotalAndCountsPerState() {
        let line = RunProgress.line(counts: [.success: 3, .running: 2, .none: 3], total: 8)
        #expect(line == "[###########-------------------]  3/8  success 3 · running 2 · none 3")
    }

    @Test func theLineFitsNarrowTerminals() {
        let counts: [Trellis_V1_TaskState: Int] = [.success: 300, .failed: 12, .upstreamFailed: 40, .running: 20, .queued: 100, .scheduled: 5, .upForRetry: 2, .none: 521]
        for width in [40, 60, 80, 120] {
            let line = RunProgress.line(counts: counts, total: 1000, width: width)
            #expect(line.count <= width, "\(width): \(line)")
            #expect(line.contains("312/1000") || line.contains("352/1000"))
        }
    }

    @Test func updatesChangeTheCountsAndTheRunEnds() {
        var snapshot = Fixtures.run
        snapshot.run.state = .running
        var progress = RunProgress(snapshot)
        var update = Trellis_V1_RunUpdate()
        var task = Fixtures.run.tasks[2]
        task.state = .success
        update.task = task
        guard case .task(let changed) = progress.apply(update) else {
            Issue.record("no change")
            return
        }
        #expect(changed.taskID == task.taskID)
        #expect(progress.counts[.success] == 2)
        #expect(!progress.isFinished)
        var end = Trellis_V1_RunUpdate()
        var run = Fixtures.run.run
        run.state = .success
        end.run = run
        _ = progress.apply(end)
        #expect(progress.isFinished)
        #expect(RunProgress.describe(.task(changed), at: Fixtures.now) == "12:10:00  transform success (try 1/3)")
    }

    @Test func anEmptyRunDrawsAnEmptyBar() {
        #expect(RunProgress.line(counts: [:], total: 0).hasPrefix("[------------------------------]  0/0"))
    }
}

@Suite struct DocumentTests {
    @Test func jsonKeepsFieldOrderAndEscapes() {
        let document = Document.object(["b": .int(1), "a": .string("x\"y\n"), "list": .list([.bool(true), .null]), "empty": .object([])])
        #expect(document.json() == """
            {
              "b": 1,
              "a": "x\\"y\\n",
              "list": [
                true,
                null
              ],
              "empty": {}
            }

            """)
    }

    @Test func yamlQuotesStringsThatReadAsOtherTypes() {
        let yaml = Document.object(["version": .string("123"), "paused": .string("yes"), "count": .int(3), "name": .string("etl")]).yaml()
        #expect(yaml == "version: '123'\npaused: 'yes'\ncount: 3\nname: etl\n")
    }

    @Test func runDocumentsUseSnakeCaseNamesAndAirflowStates() throws {
        let document = Views.document(Fixtures.run)
        let run = try #require(document["run"])
        #expect(run["run_id"] == .string("manual__2024-05-01T12:00:00+00:00"))
        #expect(run["state"] == .string("failed"))
        #expect(run["logical_date"] == .string("2024-05-01T12:00:00Z"))
        #expect(run["end_date"] == .null)
        guard case .list(let tasks) = document["tasks"] else {
            Issue.record("no tasks")
            return
        }
        #expect(tasks[1]["state"] == .string("failed"))
        #expect(tasks[1]["exit_code"] == .int(3))
        #expect(tasks[0]["exit_code"] == .null)
        #expect(tasks[2]["state"] == .string("up_for_retry"))
        expectSnapshot(document.json(), named: "runs-show.json")
        expectSnapshot(document.yaml(), named: "runs-show.yaml")
    }

    @Test func aDagSpecBecomesProtoJSONWithProtoFieldNames() throws {
        var response = Trellis_V1_GetDagResponse()
        response.spec = Fixtures.diamond
        response.version = 2
        response.dag.dagID = "diamond"
        let document = Views.document(response)
        let spec = try #require(document["spec"])
        #expect(spec["dag_id"] == .string("diamond"))
        guard case .list(let tasks) = spec["tasks"] else {
            Issue.record("no tasks")
            return
        }
        #expect(tasks[0]["task_id"] == .string("extract"))
        #expect(document["dag"]?["last_run_state"] == .null)
    }
}

@Suite struct FormattingTests {
    @Test func durations() {
        #expect(Formatting.duration(0.25) == "250ms")
        #expect(Formatting.duration(3.14) == "3.1s")
        #expect(Formatting.duration(42) == "42s")
        #expect(Formatting.duration(185) == "3m05s")
        #expect(Formatting.duration(7260) == "2h01m")
    }

    @Test func logicalDates() {
        #expect(Formatting.parseDate("2024-05-01") == Date(timeIntervalSince1970: 1_714_521_600))
        #expect(Formatting.parseDate("2024-05-01T02:00:00+02:00") == Date(timeIntervalSince1970: 1_714_521_600))
        #expect(Formatting.parseDate("2024-05-01T00:00:00.500Z") == Date(timeIntervalSince1970: 1_714_521_600.5))
        #expect(Formatting.parseDate("yesterday") == nil)
    }

    @Test func runStateNames() {
        for state in [Trellis_V1_DagRunState.queued, .running, .success, .failed] {
            #expect(Formatting.runState(named: Formatting.name(state)) == state)
        }
        #expect(Formatting.runState(named: "done") == nil)
    }
}

enum Fixtures {
    static let now = Date(timeIntervalSince1970: 1_714_565_400)  // 2024-05-01 12:10:00

    static func stamp(_ seconds: Double) -> Trellis_V1_Timestamp {
        Formatting.timestamp(Date(timeIntervalSince1970: seconds))
    }

    static var run: Trellis_V1_GetRunResponse {
        var response = Trellis_V1_GetRunResponse()
        response.run.dagID = "nightly_warehouse_refresh"
        response.run.runID = "manual__2024-05-01T12:00:00+00:00"
        response.run.state = .failed
        response.run.runType = "manual"
        response.run.logicalDate = stamp(1_714_564_800)
        response.run.startDate = stamp(1_714_564_801)
        response.run.dagVersion = 4
        response.run.confJson = "{\"table\":\"orders\"}"
        response.run.taskCounts = ["success": 1, "failed": 1, "up_for_retry": 1, "none": 1]
        var extract = Trellis_V1_TaskInstance()
        extract.taskID = "extract"
        extract.state = .success
        extract.tryNumber = 1
        extract.maxTries = 1
        extract.executor = "persistent-pool"
        extract.agentName = "node-a"
        extract.startDate = stamp(1_714_564_802)
        extract.endDate = stamp(1_714_564_814.5)
        var load = Trellis_V1_TaskInstance()
        load.taskID = "load_into_the_warehouse_with_a_very_long_task_name"
        load.state = .failed
        load.tryNumber = 2
        load.maxTries = 2
        load.executor = "pod-per-task"
        load.podName = "nightly-load-2x7fq"
        load.failureReason = "psql: could not connect to server: Connection refused; is the server running on host warehouse"
        load.exitCode.value = 3
        load.startDate = stamp(1_714_564_815)
        load.endDate = stamp(1_714_565_000)
        var transform = Trellis_V1_TaskInstance()
        transform.taskID = "transform"
        transform.state = .upForRetry
        transform.tryNumber = 1
        transform.maxTries = 3
        transform.executor = "persistent-pool"
        transform.agentName = "node-b"
        transform.nextRetryAt = stamp(1_714_565_460)
        var report = Trellis_V1_TaskInstance()
        report.taskID = "report"
        report.executor = "c-instant"
        response.tasks = [extract, load, transform, report]
        return response
    }

    static var diamond: Trellis_V1_DagSpec {
        func task(_ id: String, _ upstream: [String], executor: String = "") -> Trellis_V1_TaskSpec {
            var task = Trellis_V1_TaskSpec()
            task.taskID = id
            task.upstream = upstream
            task.executor = executor
            return task
        }
        var spec = Trellis_V1_DagSpec()
        spec.dagID = "diamond"
        var extract = task("extract", [])
        extract.retries = 2
        var report = task("report", ["load"])
        report.triggerRule = .allDone
        spec.tasks = [
            extract, task("clean", ["extract"], executor: "persistent-pool"), task("enrich", ["extract"], executor: "persistent-pool"),
            task("load", ["clean", "enrich"]), report, task("audit", []),
        ]
        return spec
    }
}

@Suite struct StatusViewTests {
    /// The server names itself ("trellisd 0.1.0"); the first line must not
    /// say "trellisd trellisd" (seen in the README walk-through).
    @Test func theServerIsNamedOnce() {
        var status = Trellis_V1_ServerStatusResponse()
        status.serverVersion = "trellisd 0.1.0-dev"
        #expect(Views.text(status, address: "127.0.0.1:7400").first == "trellisd 0.1.0-dev at 127.0.0.1:7400")
        status.serverVersion = "0.2.0"
        #expect(Views.text(status, address: "h:1").first == "trellisd 0.2.0 at h:1")
    }
}

@Suite struct PoolViewTests {
    static var pools: [Trellis_V1_Pool] {
        func pool(_ name: String, _ slots: Int32, running: Int32 = 0, queued: Int32 = 0, scheduled: Int32 = 0, _ description: String = "") -> Trellis_V1_Pool {
            var pool = Trellis_V1_Pool()
            pool.name = name
            pool.slots = slots
            pool.runningSlots = running
            pool.queuedSlots = queued
            pool.scheduledSlots = scheduled
            pool.openSlots = slots - running - queued
            pool.description_p = description
            return pool
        }
        return [
            pool("default_pool", 128, running: 3, queued: 1, "Default pool"),
            pool("etl", 4, running: 4, scheduled: 17, "Nightly ETL jobs that load the warehouse from the operational databases"),
            pool("gpu_training_cluster_a100_large", 2, running: 3),
            pool("paused", 0),
        ]
    }

    @Test func thePoolListSnapshot() {
        let lines = Views.table(Self.pools).render()
        expectSnapshot(lines.joined(separator: "\n") + "\n", named: "pools-list.txt")
        for line in lines { #expect(line.count <= 80, "\(line)") }
    }

    @Test func poolDocumentsUseSnakeCaseNames() {
        var list = Trellis_V1_ListPoolsResponse()
        list.pools = Self.pools
        #expect(Views.document(list).json() == Document.object(["pools": .list(Self.pools.map(Views.document))]).json())
        let etl = Views.document(Self.pools[1])
        #expect(etl["name"] == .string("etl"))
        #expect(etl["scheduled_slots"] == .int(17))
        #expect(etl["open_slots"] == .int(0))
        #expect(Views.document(Self.pools[2])["open_slots"] == .int(-1))
    }

    /// Tasks held back by a pool: the first clause in REASON, and below the
    /// grid, once per reason, the tasks and the whole reason with its fix.
    @Test func waitingTasksAreExplainedBelowTheGrid() {
        var run = Fixtures.run
        run.run.state = .running
        var late = Trellis_V1_TaskInstance()
        late.taskID = "late"
        late.state = .scheduled
        late.executor = "persistent-pool"
        late.pool = "warehouse_loads"
        late.waitingReason = "pool 'warehouse_loads' does not exist: create it with `trellis pools set warehouse_loads SLOTS`"
        var later = late
        later.taskID = "later"
        later.state = .none
        var wide = late
        wide.taskID = "wide"
        wide.pool = "gpu"
        wide.waitingReason = "needs 3 slots of pool 'gpu', which has 2: `trellis pools set gpu 3`"
        run.tasks += [late, later, wide]
        let lines = Views.text(run, now: Fixtures.now)
        expectSnapshot(lines.joined(separator: "\n") + "\n", named: "runs-show-waiting.txt")
        for line in lines { #expect(line.count <= 80, "\(line)") }
        // The grid's REASON shows the first clause (cut to fit 80 columns here).
        #expect(lines.contains { $0.hasPrefix("late ") && $0.hasSuffix("pool 'ware…") })
        #expect(Views.grid(run.tasks, now: Fixtures.now).rows.last?.last == Table.Cell("needs 3 slots of pool 'gpu', which has 2", .waiting))
        #expect(lines.contains("waiting: late, later"))
        #expect(lines.contains("waiting: wide"))
        #expect(lines.suffix(3) == ["waiting: wide", "  needs 3 slots of pool 'gpu', which has 2", "  `trellis pools set gpu 3`"])
        // Nothing waits: no notes.
        #expect(Views.text(Fixtures.run, now: Fixtures.now).allSatisfy { !$0.hasPrefix("waiting:") })
    }

    @Test func wrappingBreaksAtSpacesAndCutsOnlyWordsLongerThanALine() {
        #expect(wrap("a bb ccc dddd", to: 6) == ["a bb", "ccc", "dddd"])
        #expect(wrap("a bb ccc dddd", to: 8, indent: "  ", firstIndent: "> ") == ["> a bb", "  ccc", "  dddd"])
        #expect(wrap("abcdefghij", to: 4) == ["abcd", "efgh", "ij"])
        #expect(wrap("", to: 10).isEmpty)
    }
}
