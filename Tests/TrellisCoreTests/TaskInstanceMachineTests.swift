import Testing

@testable import TrellisCore

/// The state machine against a transition table written out here by hand,
/// cell by cell, independently of `TaskInstanceTransitionRule.table`.
@Suite struct TaskInstanceMachineTests {
    /// Every (state, event) pair. Cells: `-` illegal; otherwise the target
    /// (`non sch que run suc fai ufr upf ski rem`, or `R/F` = up_for_retry
    /// while tries remain, else failed), then flags: `+` starts a try,
    /// `!` cancels the attempt in flight, `*` renews the retries.
    static let expected = """
        state           schedule enqueue start succeed fail time_out skip lose retry propagate_upstream_failed propagate_skip clear mark_success mark_failed remove restore
        none            sch      -       -     -       -    -        -    -    -     upf                       ski            non*  suc          fai         rem    -
        scheduled       -        que     -     -       -    -        -    -    -     -                         -              non*  suc          fai         rem    -
        queued          -        -       run+  -       R/F+ -        -    non  -     -                         -              non*! suc!         fai!        rem!   -
        running         -        -       -     suc     R/F  R/F      ski  R/F  -     -                         -              non*! suc!         fai!        rem!   -
        success         -        -       -     -       -    -        -    -    -     -                         -              non*  -            fai         rem    -
        failed          -        -       -     -       -    -        -    -    -     -                         -              non*  suc          -           rem    -
        up_for_retry    -        -       -     -       -    -        -    -    sch   upf                       ski            non*  suc          fai         rem    -
        upstream_failed -        -       -     -       -    -        -    -    -     -                         -              non*  suc          fai         rem    -
        skipped         -        -       -     -       -    -        -    -    -     -                         -              non*  suc          fai         rem    -
        removed         -        -       -     -       -    -        -    -    -     -                         -              -     -            -           -      non
        """

    static let abbreviations: [String: TaskState] = [
        "non": .none, "sch": .scheduled, "que": .queued, "run": .running, "suc": .success,
        "fai": .failed, "ufr": .upForRetry, "upf": .upstreamFailed, "ski": .skipped, "rem": .removed,
    ]

    struct Cell: Sendable, CustomTestStringConvertible {
        var state: TaskState
        var event: TaskInstanceEvent
        var code: String
        var testDescription: String { "\(state.rawValue) × \(event.rawValue) → \(code)" }
    }

    static let cells: [Cell] = {
        let rows = expected.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        let events = rows[0].dropFirst().map { TaskInstanceEvent(rawValue: $0)! }
        return rows.dropFirst().flatMap { row in
            let state = TaskState(rawValue: row[0])!
            return zip(events, row.dropFirst()).map { Cell(state: state, event: $0, code: $1) }
        }
    }()

    @Test func tableCoversEveryPairOnce() {
        let rows = Self.expected.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(rows[0].dropFirst().map { $0 } == TaskInstanceEvent.allCases.map(\.rawValue))
        #expect(rows.dropFirst().map { $0[0] } == TaskState.allCases.map(\.rawValue))
        #expect(rows.allSatisfy { $0.count == TaskInstanceEvent.allCases.count + 1 })
        #expect(Self.cells.count == TaskState.allCases.count * TaskInstanceEvent.allCases.count)
    }

    @Test(arguments: cells)
    func cell(_ cell: Cell) throws {
        if cell.code == "-" {
            #expect(TaskInstanceTransitionRule.rule(from: cell.state, on: cell.event) == nil)
            var machine = TaskInstanceMachine(taskID: "extract", retries: 1, state: cell.state, tryNumber: 1)
            let before = machine
            do {
                try machine.apply(cell.event)
                Issue.record("\(cell.testDescription): expected an illegal transition")
            } catch {
                #expect(error.code == .illegalTransition)
                #expect(error.message.contains("'extract'"))
                #expect(error.message.contains("'\(cell.state.rawValue)'"))
                #expect(error.message.contains("'\(cell.event.rawValue)'"))
            }
            #expect(machine == before, "an illegal event must change nothing")
            return
        }

        let target = String(cell.code.prefix(3))
        let startsTry = cell.code.contains("+")
        let cancels = cell.code.contains("!")
        let renews = cell.code.contains("*")

        // Tries left: retries 2, one try so far.
        var left = TaskInstanceMachine(taskID: "extract", retries: 2, state: cell.state, tryNumber: 1)
        let done = try left.apply(cell.event)
        // No tries left: the last allowed try (3 of 3) already started, or
        // starts with this event.
        var exhausted = TaskInstanceMachine(
            taskID: "extract", retries: 2, state: cell.state, tryNumber: startsTry ? 2 : 3
        )
        let last = try exhausted.apply(cell.event)

        if target == "R/F" {
            #expect(done.to == .upForRetry)
            #expect(last.to == .failed)
        } else {
            let state = try #require(Self.abbreviations[target])
            #expect(done.to == state)
            #expect(last.to == state)
        }
        #expect(done.from == cell.state && done.event == cell.event && done.taskID == "extract")
        #expect(left.state == done.to)
        #expect(done.startedTry == startsTry)
        #expect(done.tryNumber == (startsTry ? 2 : 1))
        #expect(done.cancelsAttempt == cancels)
        #expect(done.maxTries == (renews ? done.tryNumber + 2 : 2))
    }

    @Test func triesFollowAirflow() throws {
        // retries: 2 → three tries, then failed.
        var ti = TaskInstanceMachine(taskID: "load", retries: 2)
        var outcomes: [TaskState] = []
        try ti.apply(.schedule)
        for _ in 0..<3 {
            try ti.apply(.enqueue)
            try ti.apply(.start)
            let failed = try ti.apply(.fail)
            outcomes.append(failed.to)
            if failed.to == .upForRetry { try ti.apply(.retry) }
        }
        #expect(outcomes == [.upForRetry, .upForRetry, .failed])
        #expect(ti.tryNumber == 3 && ti.maxTries == 2)

        // Clearing grants `retries` more tries after the ones already used
        // (Airflow: max_tries = try_number + retries).
        let cleared = try ti.apply(.clear)
        #expect(cleared.to == .none && cleared.maxTries == 5 && !cleared.cancelsAttempt)
        try ti.apply(.schedule)
        try ti.apply(.enqueue)
        try ti.apply(.start)
        #expect(try ti.apply(.timeOut).to == .upForRetry)
        #expect(ti.tryNumber == 4)
    }

    @Test func losingAQueuedAttemptUsesNoTry() throws {
        var ti = TaskInstanceMachine(taskID: "load", retries: 0)
        try ti.apply(.schedule)
        try ti.apply(.enqueue)
        let lost = try ti.apply(.lose)
        #expect(lost.to == .none && lost.tryNumber == 0 && !lost.startedTry)
        try ti.apply(.schedule)
        try ti.apply(.enqueue)
        try ti.apply(.start)
        // A zombie is a failure; with no retries it is final.
        #expect(try ti.apply(.lose).to == .failed)
    }

    @Test func anExecutorThatCannotStartATaskUsesItsTries() throws {
        var ti = TaskInstanceMachine(taskID: "pod", retries: 1)
        try ti.apply(.schedule)
        try ti.apply(.enqueue)
        #expect(try ti.apply(.fail).to == .upForRetry)
        try ti.apply(.retry)
        try ti.apply(.enqueue)
        #expect(try ti.apply(.fail).to == .failed)
        #expect(ti.tryNumber == 2)
    }
}
