public import Foundation

/// The span of time one scheduled DAG run processes, `[start, end)`. For a
/// cron schedule it runs from one fire time to the next; the run's logical
/// date is `start`, and the run becomes due at `end`, once its data is
/// complete (so a `@daily` run for Monday starts just after Monday ends).
/// An `@once` run has an empty interval at the start date.
public struct DataInterval: Sendable, Hashable, CustomStringConvertible {
    /// Start of the data (inclusive); the run's logical date.
    public var start: Date
    /// End of the data (exclusive); when the run becomes due.
    public var end: Date

    public init(start: Date, end: Date) {
        self.start = start
        self.end = end
    }

    /// Airflow's `logical_date` (formerly `execution_date`).
    public var logicalDate: Date { start }

    /// The earliest moment the run may be created: `end` for every schedule
    /// Trellis knows (Airflow's `run_after`).
    public var runAfter: Date { end }

    public var description: String {
        let format = Date.ISO8601FormatStyle()
        return "[\(start.formatted(format)), \(end.formatted(format)))"
    }
}
