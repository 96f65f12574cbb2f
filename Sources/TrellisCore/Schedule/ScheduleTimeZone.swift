public import Foundation

/// The time zone whose wall clock a DAG's schedule is read in (Airflow takes it
/// from the DAG's `start_date`). `0 9 * * MON-FRI` in `Europe/Berlin` fires at
/// 09:00 Berlin time all year, whatever the UTC offset is.
///
/// Only IANA time zone names are accepted (`Europe/Berlin`, `America/New_York`,
/// `UTC`, `Etc/GMT+5`); Foundation's own spellings such as `GMT+5` are refused
/// so that a DAG file means the same thing to Airflow and to Trellis.
public struct ScheduleTimeZone: Sendable, Hashable, CustomStringConvertible {
    /// The name as the user wrote it; shown back in the UI and in errors.
    public let identifier: String
    /// The resolved zone, with the transition rules of the system's tz data.
    public let timeZone: TimeZone

    /// Coordinated Universal Time: the default when a DAG names no zone.
    public static let utc = ScheduleTimeZone(checked: "UTC", TimeZone(secondsFromGMT: 0)!)

    private init(checked identifier: String, _ timeZone: TimeZone) {
        self.identifier = identifier
        self.timeZone = timeZone
    }

    /// Resolves an IANA name, e.g. `"America/New_York"`.
    ///
    /// - Throws: `CoreError` with code `.invalidTimeZone` naming the zone when
    ///   the name is unknown.
    public init(identifier: String) throws(CoreError) {
        if identifier == "UTC" {
            self = .utc
            return
        }
        // Foundation also resolves its own forms ("GMT+5" becomes "GMT+0500");
        // only a name that resolves to itself is a tz database name.
        guard let zone = TimeZone(identifier: identifier), zone.identifier == identifier else {
            let trimmed = identifier.trimmingCharacters(in: .whitespaces)
            let hint = trimmed != identifier && TimeZone(identifier: trimmed) != nil
                ? " (remove the surrounding spaces)"
                : " (use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\")"
            throw CoreError(.invalidTimeZone, "time zone \"\(identifier)\" is not a known IANA time zone\(hint)")
        }
        self.init(checked: identifier, zone)
    }

    /// Resolves an optional name; `nil` means UTC, as in Airflow.
    public init(parsing identifier: String?) throws(CoreError) {
        guard let identifier else {
            self = .utc
            return
        }
        try self.init(identifier: identifier)
    }

    public var description: String { identifier }

    public static func == (lhs: ScheduleTimeZone, rhs: ScheduleTimeZone) -> Bool {
        lhs.identifier == rhs.identifier
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(identifier)
    }

    // MARK: Offsets and transitions, in whole seconds since 1970

    /// The UTC offset in force at an instant, in seconds (wall = instant + offset).
    func offset(at instant: Int) -> Int {
        timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(instant)))
    }

    /// The first instant strictly after `instant` at which the UTC offset
    /// changes, or `nil` if the tz data knows of none.
    func nextTransition(after instant: Int) -> Int? {
        let from = Date(timeIntervalSince1970: TimeInterval(instant))
        guard let next = timeZone.nextDaylightSavingTimeTransition(after: from) else { return nil }
        // Transitions fall on whole seconds; round away floating-point noise.
        let seconds = Int(next.timeIntervalSince1970.rounded())
        if seconds > instant { return seconds }
        let retry = timeZone.nextDaylightSavingTimeTransition(after: from.addingTimeInterval(1))
        return retry.map { Int($0.timeIntervalSince1970.rounded()) }.flatMap { $0 > instant ? $0 : nil }
    }
}
