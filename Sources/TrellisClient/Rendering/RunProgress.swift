public import Foundation
public import TrellisProto

/// A run's live progress as `runs watch` and `dags trigger --wait` keep it:
/// the grid from the snapshot, updated by each item of WatchRun, and the
/// line drawn from it.
public struct RunProgress: Sendable {
    public private(set) var run: Trellis_V1_DagRun
    /// In the DAG's task order.
    public private(set) var tasks: [Trellis_V1_TaskInstance]

    public init(_ snapshot: Trellis_V1_GetRunResponse) {
        run = snapshot.run
        tasks = snapshot.tasks
    }

    /// The order a progress line lists states in: finished first.
    public static let stateOrder: [Trellis_V1_TaskState] = [
        .success, .failed, .upstreamFailed, .skipped, .removed, .running, .queued, .scheduled, .upForRetry, .none,
    ]

    /// Applies one WatchRun item; returns what changed, for plain output.
    @discardableResult
    public mutating func apply(_ update: Trellis_V1_RunUpdate) -> Change? {
        switch update.kind {
        case .snapshot(let snapshot):
            self = RunProgress(snapshot)
            return nil
        case .task(let task):
            if let index = tasks.firstIndex(where: { $0.taskID == task.taskID }) {
                let before = tasks[index]
                tasks[index] = task
                guard before.state != task.state || before.tryNumber != task.tryNumber else { return nil }
            } else {
                tasks.append(task)
            }
            return .task(task)
        case .run(let newRun):
            let changed = newRun.state != run.state
            run = newRun
            return changed ? .run(newRun) : nil
        case nil:
            return nil
        }
    }

    public enum Change: Sendable {
        case task(Trellis_V1_TaskInstance)
        case run(Trellis_V1_DagRun)
    }

    public var isFinished: Bool { run.state == .success || run.state == .failed }

    /// Task instances per state.
    public var counts: [Trellis_V1_TaskState: Int] {
        tasks.reduce(into: [:]) { $0[$1.state, default: 0] += 1 }
    }

    /// `[########------------]  3/8  success 3 · running 2 · none 3`, at
    /// most `width` characters (the bar shrinks first, then the counts are
    /// cut). `colour` colours the state names.
    public func line(width: Int = 80, colour: Bool = false) -> String {
        Self.line(counts: counts, total: tasks.count, width: width, colour: colour)
    }

    public static func line(counts: [Trellis_V1_TaskState: Int], total: Int, width: Int = 80, colour: Bool = false) -> String {
        let finishedStates: Set<Trellis_V1_TaskState> = [.success, .failed, .upstreamFailed, .skipped, .removed]
        let finished = counts.filter { finishedStates.contains($0.key) }.values.reduce(0, +)
        let ratio = "\(finished)/\(total)"
        let parts = stateOrder.compactMap { state -> (plain: String, styled: String)? in
            guard let count = counts[state], count > 0 else { return nil }
            let name = Formatting.name(state)
            return ("\(name) \(count)", Formatting.style(state).apply(name, colour: colour) + " \(count)")
        }
        var plainCounts = parts.map(\.plain).joined(separator: " · ")
        var styledCounts = parts.map(\.styled).joined(separator: " · ")
        // bar: "[" + cells + "]" + "  " + ratio + "  " + counts
        let fixed = 2 + 2 + ratio.count + 2
        var cells = min(30, width - fixed - plainCounts.count)
        if cells < 10 {
            cells = max(10, min(30, width - fixed - 12))
            let room = max(width - fixed - cells, 1)
            if plainCounts.count > room {
                plainCounts = truncate(plainCounts, to: room)
                styledCounts = plainCounts
            }
        }
        let filled = total == 0 ? 0 : Int((Double(finished) / Double(total) * Double(cells)).rounded(.down))
        let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: cells - filled) + "]"
        return "\(bar)  \(ratio)" + (styledCounts.isEmpty ? "" : "  \(styledCounts)")
    }

    /// One plain line for a change, for output that is not a terminal.
    public static func describe(_ change: Change, at date: Date) -> String {
        let time = Formatting.iso(date).dropFirst(11).prefix(8)
        switch change {
        case .task(let task):
            var line = "\(time)  \(task.taskID) \(Formatting.name(task.state))"
            if task.tryNumber > 0 { line += " (try \(task.tryNumber)/\(max(task.maxTries, task.tryNumber)))" }
            if (task.state == .failed || task.state == .upForRetry), !task.failureReason.isEmpty {
                line += ": " + (task.failureReason.split(separator: "\n").first.map(String.init) ?? "")
            }
            return line
        case .run(let run):
            return "\(time)  run \(run.runID) \(Formatting.name(run.state))"
        }
    }

    /// The closing line: `run RUN success in 12s: success 8`.
    public func summary(now: Date = Date()) -> String {
        let duration = Formatting.duration(
            from: Formatting.date(run.hasStartDate ? run.startDate : nil), to: Formatting.date(run.hasEndDate ? run.endDate : nil), now: now)
        let parts = Self.stateOrder.compactMap { state -> String? in
            guard let count = counts[state], count > 0 else { return nil }
            return "\(Formatting.name(state)) \(count)"
        }
        return "run \(run.dagID) \(run.runID) \(Formatting.name(run.state)) in \(duration): \(parts.joined(separator: ", "))"
    }
}
