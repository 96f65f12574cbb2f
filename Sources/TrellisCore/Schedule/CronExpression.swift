public import Foundation

/// A standard five-field cron expression (`minute hour day-of-month month
/// day-of-week`) or one of the cron presets (`@hourly` … `@yearly`), and the
/// fire times it names in a time zone.
///
/// Field syntax: `*`, numbers, ranges `a-b`, steps `*/n`, `a-b/n` and `a/n`
/// (which means `a-max/n`), comma lists, month names `JAN`–`DEC` and weekday
/// names `SUN`–`SAT` (case-insensitive); weekday 7 is Sunday. `L`, `W`, `#`
/// and `?` are not supported, nor seconds or years fields.
///
/// Day-of-month and day-of-week combine as in Vixie cron and POSIX: when both
/// fields are restricted (neither starts with `*`), a day matches if *either*
/// matches (`0 0 1,15 * MON` runs on the 1st, the 15th and every Monday); when
/// one of them starts with `*` (`*`, `*/2`) only the other one restricts, and
/// both must match (`0 0 */2 * MON` runs on Mondays that fall on odd days).
/// croniter, and therefore Airflow, treats `*/N` in a day field as restricted
/// and would take the OR there; Trellis follows Vixie.
///
/// Fire times follow croniter 7.0.0 with time-zone-aware datetimes:
/// - an instant fires when its local wall-clock time matches;
/// - fall back: a wall time that occurs twice fires twice, once per instant;
/// - spring forward: matching wall times that do not exist move to the
///   transition instant (the first instant after the gap), and all of that
///   gap's fires collapse into that one fire — unless the hour field covers
///   all 24 hours (`30 * * * *`), in which case they are skipped.
///
/// Airflow 2 itself (`airflow/timetables/_cron.py`, `CronMixin._get_next`)
/// runs croniter on naive local times and localizes the result afterwards,
/// so at DST edges Airflow's own runs can differ from these: it fires once in
/// an overlap (the second pass) and moves a nonexistent time by the length
/// of the gap rather than to the transition instant.
public struct CronExpression: Sendable, Hashable, CustomStringConvertible {
    /// The expression as the user wrote it (trimmed), e.g. `@daily`; for display.
    public let text: String
    /// The five fields after expanding a preset, e.g. `0 0 * * *` for `@daily`.
    public let fields: [String]

    // Matching sets as bit masks: bit n set when value n matches.
    let minutes: UInt64  // bits 0-59
    let hours: UInt64  // bits 0-23
    let daysOfMonth: UInt64  // bits 1-31
    let months: UInt64  // bits 1-12
    let daysOfWeek: UInt64  // bits 0-6, Sunday = 0
    /// The day-of-month field starts with `*` (Vixie's DOM_STAR).
    let dayOfMonthStar: Bool
    /// The day-of-week field starts with `*` (Vixie's DOW_STAR).
    let dayOfWeekStar: Bool

    static let allHours: UInt64 = (1 << 24) - 1

    init(
        text: String, fields: [String],
        minutes: UInt64, hours: UInt64, daysOfMonth: UInt64, months: UInt64, daysOfWeek: UInt64,
        dayOfMonthStar: Bool, dayOfWeekStar: Bool
    ) {
        self.text = text
        self.fields = fields
        self.minutes = minutes
        self.hours = hours
        self.daysOfMonth = daysOfMonth
        self.months = months
        self.daysOfWeek = daysOfWeek
        self.dayOfMonthStar = dayOfMonthStar
        self.dayOfWeekStar = dayOfWeekStar
    }

    public var description: String { text }

    /// The first fire time strictly after `date`, or `nil` if there is none
    /// within 400 years (which a parsed expression only reaches near the end
    /// of year 9999, the last one supported).
    public func next(after date: Date, in zone: ScheduleTimeZone = .utc) -> Date? {
        guard let seconds = Self.wholeSeconds(date, roundingUp: false) else { return nil }
        return firstFire(after: seconds, in: zone).map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }

    /// The last fire time strictly before `date`, or `nil` if there is none
    /// within 400 years.
    public func previous(before date: Date, in zone: ScheduleTimeZone = .utc) -> Date? {
        guard let seconds = Self.wholeSeconds(date, roundingUp: true) else { return nil }
        return lastFire(before: seconds, in: zone).map { Date(timeIntervalSince1970: TimeInterval($0)) }
    }

    /// Supported instants: years 1 to 9999 (UTC), in seconds since 1970.
    static let supportedSeconds = -62_135_596_800...253_402_300_799

    /// Fire times fall on whole seconds, so "after 12.5 s" is "after 12 s" and
    /// "before 12.5 s" is "before 13 s". Dates outside years 1–9999 are refused.
    private static func wholeSeconds(_ date: Date, roundingUp: Bool) -> Int? {
        let t = date.timeIntervalSince1970
        guard t >= Double(supportedSeconds.lowerBound), t <= Double(supportedSeconds.upperBound) else { return nil }
        return Int(roundingUp ? t.rounded(.up) : t.rounded(.down))
    }
}
