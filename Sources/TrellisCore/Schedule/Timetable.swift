public import Foundation

/// A DAG's schedule together with what bounds it (time zone, start and end
/// date, catchup): decides which runs are due and when the next one will be.
/// Pure: the caller passes `now` and the newest run it already created.
///
/// The rules are Airflow 2's (`airflow/timetables/interval.py`,
/// `_DataIntervalTimetable.next_dagrun_info` and
/// `CronDataIntervalTimetable._skip_to_latest`; `simple.py` for `@once`):
/// - Each run's data interval is `[fire time, next fire time)`; it is due
///   once `now >= end`.
/// - The first interval starts at the first fire time at or after
///   `startDate`; each later one starts where the newest created one ended
///   (aligned back to a fire time if the schedule changed since).
/// - `catchup: true` creates every missed interval, oldest first.
///   `catchup: false` starts at the latest *complete* interval instead (the
///   one that ended at or before `now`), never earlier than `startDate`
///   allows.
/// - `endDate`: no interval *starts* after it (`start > endDate` ends the
///   schedule); an interval starting at or before it is created in full even
///   if it ends later.
/// - `@once`: one run with the empty interval `[startDate, startDate]`, due
///   when `now >= startDate`, unless `startDate > endDate`; catchup does not
///   matter. Manual-only schedules never create runs.
public struct Timetable: Sendable, Hashable {
    public var schedule: Schedule
    public var timeZone: ScheduleTimeZone
    public var startDate: Date
    public var endDate: Date?
    public var catchup: Bool

    public init(
        schedule: Schedule, timeZone: ScheduleTimeZone = .utc, startDate: Date, endDate: Date? = nil,
        catchup: Bool
    ) {
        self.schedule = schedule
        self.timeZone = timeZone
        self.startDate = startDate
        self.endDate = endDate
        self.catchup = catchup
    }

    /// The next run to create after the newest scheduled run (Airflow's
    /// `next_dagrun_info`), due or not; `nil` when the schedule has no more
    /// runs.
    ///
    /// - Parameters:
    ///   - lastDataIntervalEnd: `end` of the newest run created by the
    ///     schedule (not by a manual trigger), or `nil` if there is none.
    ///   - now: the current time; only matters with `catchup: false`.
    public func nextInterval(lastDataIntervalEnd: Date?, now: Date) -> DataInterval? {
        switch schedule {
        case .manual:
            return nil
        case .once:
            guard lastDataIntervalEnd == nil, !isAfterEnd(startDate) else { return nil }
            return DataInterval(start: startDate, end: startDate)
        case .cron(let cron):
            let earliest = catchup ? align(toNext: startDate, cron) : skipToLatest(now: now, cron)
            guard var start = earliest else { return nil }
            if let lastDataIntervalEnd {
                guard let alignedEnd = align(toPrevious: lastDataIntervalEnd, cron) else { return nil }
                start = max(alignedEnd, start)
            }
            guard !isAfterEnd(start), let end = cron.next(after: start, in: timeZone) else { return nil }
            return DataInterval(start: start, end: end)
        }
    }

    /// The runs due at `now`, oldest first, at most `limit` of them: every
    /// missed interval with catchup, only the latest complete one without.
    public func dueRuns(lastDataIntervalEnd: Date?, now: Date, limit: Int) -> [DataInterval] {
        var runs: [DataInterval] = []
        var last = lastDataIntervalEnd
        while runs.count < limit, let interval = nextInterval(lastDataIntervalEnd: last, now: now),
            interval.runAfter <= now
        {
            runs.append(interval)
            last = interval.end
        }
        return runs
    }

    /// The first interval that is not yet due at `now`, assuming every due run
    /// (see `dueRuns`) gets created: the control plane can sleep until its
    /// `runAfter`. `nil` when no run will ever become due again.
    public func nextRun(lastDataIntervalEnd: Date?, now: Date) -> DataInterval? {
        guard let first = nextInterval(lastDataIntervalEnd: lastDataIntervalEnd, now: now) else { return nil }
        if first.runAfter > now { return first }
        // `first` is due, and so is each interval after it up to `now`: they
        // chain through consecutive fire times, so the first one not due
        // starts at the last fire time at or before `now`.
        guard case .cron(let cron) = schedule, let start = align(toPrevious: now, cron),
            !isAfterEnd(start), let end = cron.next(after: start, in: timeZone)
        else { return nil }
        return DataInterval(start: max(start, first.start), end: end)
    }

    // MARK: Airflow's alignment helpers (CronMixin)

    private func isAfterEnd(_ start: Date) -> Bool {
        endDate.map { start > $0 } ?? false
    }

    /// `date` if it is a fire time, else the next fire time.
    private func align(toNext date: Date, _ cron: CronExpression) -> Date? {
        guard let next = cron.next(after: date, in: timeZone) else { return nil }
        return cron.previous(before: next, in: timeZone) == date ? date : next
    }

    /// `date` if it is a fire time, else the previous fire time.
    private func align(toPrevious date: Date, _ cron: CronExpression) -> Date? {
        guard let previous = cron.previous(before: date, in: timeZone) else { return nil }
        return cron.next(after: previous, in: timeZone) == date ? date : previous
    }

    /// The start of the latest complete interval at `now`, but not before the
    /// first fire time at or after `startDate`.
    private func skipToLatest(now: Date, _ cron: CronExpression) -> Date? {
        guard let lastStart = cron.previous(before: now, in: timeZone),
            let nextStart = cron.next(after: lastStart, in: timeZone)
        else { return nil }
        // On a boundary the interval ending now is complete; between
        // boundaries the one before the current (open) interval is.
        let latest = nextStart == now ? lastStart : cron.previous(before: lastStart, in: timeZone)
        guard let latest, let first = align(toNext: startDate, cron) else { return nil }
        return max(latest, first)
    }
}
