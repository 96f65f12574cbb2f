public import Foundation

/// Dates as users write `start_date` and `end_date`: `2020-08-07`,
/// `2020-08-07T01:30`, `2020-08-07 01:30:00`, with an optional `Z` or
/// `±HH:MM` offset. Without an offset the time is read in the DAG's time
/// zone, as Airflow reads naive dates in its default zone.
public enum DateText {
    public static func parse(_ text: String, in timeZone: TimeZone) throws(CoreError) -> Date {
        let invalid = CoreError(.invalidDag, "'\(text)' is not a date: write 2020-08-07, 2020-08-07T01:30:00 or 2020-08-07T01:30:00+02:00")
        var rest = Substring(text.trimmingWhitespace())

        func number(_ digits: Int) -> Int? {
            let prefix = rest.prefix(digits)
            guard prefix.count == digits, prefix.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            rest = rest.dropFirst(digits)
            return Int(prefix)
        }
        func literal(_ character: Character) -> Bool {
            guard rest.first == character else { return false }
            rest = rest.dropFirst()
            return true
        }

        guard let year = number(4), literal("-"), let month = number(2), literal("-"), let day = number(2) else { throw invalid }
        var components = DateComponents(year: year, month: month, day: day, hour: 0, minute: 0, second: 0)
        if literal("T") || literal(" ") {
            guard let hour = number(2), literal(":"), let minute = number(2) else { throw invalid }
            components.hour = hour
            components.minute = minute
            if literal(":") {
                guard let second = number(2) else { throw invalid }
                components.second = second
            }
        }
        var zone = timeZone
        if literal("Z") {
            zone = TimeZone(identifier: "UTC")!
        } else if let sign = rest.first, sign == "+" || sign == "-" {
            rest = rest.dropFirst()
            guard let hours = number(2), literal(":"), let minutes = number(2), hours < 24, minutes < 60 else { throw invalid }
            let offset = (hours * 3600 + minutes * 60) * (sign == "-" ? -1 : 1)
            zone = TimeZone(secondsFromGMT: offset)!
        }
        guard rest.isEmpty else { throw invalid }
        guard (1...12).contains(month), (1...31).contains(day),
              (0...23).contains(components.hour!), (0...59).contains(components.minute!), (0...59).contains(components.second!)
        else { throw invalid }

        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        components.timeZone = zone
        guard let date = calendar.date(from: components),
              calendar.component(.day, from: date) == day  // rejects 2021-02-30
        else { throw CoreError(.invalidDag, "'\(text)' is not a date: that day does not exist") }
        return date
    }
}
