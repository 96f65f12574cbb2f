/// Durations as users write them in DAG files: `30s`, `5m`, `23h`, `1d`,
/// combinations such as `1h30m`, or a plain number of seconds (`300`).
public enum DurationText {
    /// Milliseconds per unit suffix.
    private static let units: [(suffix: String, millis: Int64)] = [
        ("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000), ("w", 604_800_000),
    ]

    /// The upper bound Trellis accepts: 10 years, far beyond any sane
    /// timeout, and far from overflowing.
    public static let maximumMillis: Int64 = 10 * 365 * 86_400_000

    /// Parses `text` into milliseconds.
    public static func millis(_ text: String) throws(CoreError) -> Int64 {
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty else { throw invalid(text, "it is empty") }
        if trimmed.hasPrefix("-") { throw invalid(text, "durations cannot be negative") }

        // A bare number is seconds, as in Airflow's numeric timedelta fields.
        if let seconds = Int64(trimmed) {
            guard seconds <= maximumMillis / 1_000 else { throw invalid(text, "it is longer than 10 years") }
            return seconds * 1_000
        }

        var total: Int64 = 0
        var rest = Substring(trimmed)
        var seenUnits: Set<String> = []
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, let value = Int64(digits) else {
                throw invalid(text, "expected a number at '\(rest)'")
            }
            rest = rest.dropFirst(digits.count)
            // "ms" is listed before "m", so "5ms" is never read as minutes.
            guard let unit = units.first(where: { rest.hasPrefix($0.suffix) }) else {
                throw invalid(text, rest.isEmpty ? "'\(digits)' needs a unit" : "unknown unit at '\(rest)'")
            }
            guard seenUnits.insert(unit.suffix).inserted else { throw invalid(text, "unit '\(unit.suffix)' appears twice") }
            rest = rest.dropFirst(unit.suffix.count)
            let (product, overflow) = value.multipliedReportingOverflow(by: unit.millis)
            guard !overflow, product <= maximumMillis - total else { throw invalid(text, "it is longer than 10 years") }
            total += product
        }
        return total
    }

    /// The shortest faithful spelling of a duration (`1h30m`, `45s`, `0s`).
    public static func format(millis: Int64) -> String {
        guard millis > 0 else { return "0s" }
        var rest = millis
        var text = ""
        for unit in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] where rest >= unit.1 {
            text += "\(rest / unit.1)\(unit.0)"
            rest %= unit.1
        }
        return text
    }

    private static func invalid(_ text: String, _ why: String) -> CoreError {
        CoreError(.invalidDuration, "\"\(text)\" is not a duration: \(why) (write 30s, 5m, 23h, 1d, 1h30m, or a number of seconds)")
    }
}
