/// When a DAG runs on its own, as written in its `schedule` field: never
/// (manual triggers only), once, or on a cron expression. Mirrors Airflow's
/// `NullTimetable`, `OnceTimetable` and `CronDataIntervalTimetable`.
public enum Schedule: Sendable, Hashable, CustomStringConvertible {
    /// No `schedule` (null or absent): runs only when triggered by hand.
    case manual
    /// `@once`: a single run at the DAG's start date.
    case once
    /// A cron expression or a cron preset (`@daily`, `@hourly`, …).
    case cron(CronExpression)

    /// Parses a DAG's `schedule` value: `nil` for manual-only, `@once`, a
    /// preset or a five-field cron expression.
    ///
    /// - Throws: `CoreError` with code `.invalidCron` for anything else,
    ///   including an empty string (leave the field out for manual runs).
    public init(parsing text: String?) throws(CoreError) {
        guard let text else {
            self = .manual
            return
        }
        let trimmed = text.trimmingWhitespace()
        if trimmed.isEmpty {
            throw CoreError(.invalidCron, "schedule is empty; leave it out (or set it to null) for manual runs only")
        }
        if trimmed.lowercased() == "@once" {
            self = .once
            return
        }
        self = .cron(try CronExpression(parsing: trimmed))
    }

    /// The schedule as the user wrote it (`@daily` stays `@daily`); `nil` for
    /// manual-only.
    public var text: String? {
        switch self {
        case .manual: nil
        case .once: "@once"
        case .cron(let expression): expression.text
        }
    }

    public var description: String { text ?? "manual" }
}
