// Parsing cron text into field masks, with errors that name the field and the
// value a user has to change.

extension CronExpression {
    /// Cron presets and the expressions they stand for (`@once` is not one: it
    /// is a `Schedule` without a cron expression).
    public static let presets: [(name: String, expression: String)] = [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@quarterly", "0 0 1 */3 *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ]

    /// Parses a five-field expression or a preset such as `@daily`; presets
    /// and names are case-insensitive.
    ///
    /// - Throws: `CoreError` with code `.invalidCron` and a message naming the
    ///   offending field and value, e.g.
    ///   `cron "0 25 * * *": hour 25 is out of range 0-23`.
    public init(parsing text: String) throws(CoreError) {
        let trimmed = text.trimmingWhitespace()
        guard !trimmed.isEmpty else {
            throw CoreError(.invalidCron, "cron expression is empty")
        }
        var expanded = trimmed
        if trimmed.hasPrefix("@") {
            let name = trimmed.lowercased()
            if name == "@once" {
                throw CoreError(
                    .invalidCron, "cron \"\(trimmed)\": @once runs a DAG a single time and has no cron expression")
            }
            guard let preset = Self.presets.first(where: { $0.name == name }) else {
                let known = Self.presets.map(\.name).joined(separator: ", ")
                throw CoreError(.invalidCron, "cron \"\(trimmed)\": unknown preset; use one of \(known), @once")
            }
            expanded = preset.expression
        }
        let fields = expanded.split(whereSeparator: \.isWhitespace).map(String.init)
        guard fields.count == 5 else {
            let extra = fields.count == 6 || fields.count == 7 ? "; seconds and years fields are not supported" : ""
            throw CoreError(
                .invalidCron,
                "cron \"\(trimmed)\": expected 5 fields (minute hour day-of-month month day-of-week)"
                    + " but found \(fields.count)\(extra)")
        }
        var masks: [UInt64] = []
        for (field, raw) in zip(CronField.allCases, fields) {
            masks.append(try field.parse(raw, expression: trimmed))
        }
        self.init(
            text: trimmed, fields: fields,
            minutes: masks[0], hours: masks[1], daysOfMonth: masks[2], months: masks[3], daysOfWeek: masks[4],
            dayOfMonthStar: fields[2].hasPrefix("*"), dayOfWeekStar: fields[4].hasPrefix("*"))
        try checkDaysCanOccur()
    }

    /// `0 0 30 2 *` would never fire: reject it instead of searching forever.
    /// Only the day-of-month restricts when the day-of-week field starts with
    /// `*`; otherwise a weekday can always match (OR), or day-of-month starts
    /// with `*` and so contains the 1st.
    private func checkDaysCanOccur() throws(CoreError) {
        guard !dayOfMonthStar, dayOfWeekStar else { return }
        let longest: [Int] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        var longestSelected = 0
        for month in 1...12 where months & (1 << UInt64(month)) != 0 {
            longestSelected = max(longestSelected, longest[month])
        }
        if daysOfMonth.trailingZeroBitCount > longestSelected {
            throw CoreError(
                .invalidCron,
                "cron \"\(text)\": day-of-month \(fields[2]) never occurs in month \(fields[3]), so it would never run")
        }
    }
}

/// One of the five cron fields: its name in messages, its range and names.
enum CronField: CaseIterable {
    case minute, hour, dayOfMonth, month, dayOfWeek

    var name: String {
        switch self {
        case .minute: "minute"
        case .hour: "hour"
        case .dayOfMonth: "day-of-month"
        case .month: "month"
        case .dayOfWeek: "day-of-week"
        }
    }

    /// Values a user may write; 7 is Sunday in the day-of-week field.
    var bounds: ClosedRange<Int> {
        switch self {
        case .minute: 0...59
        case .hour: 0...23
        case .dayOfMonth: 1...31
        case .month: 1...12
        case .dayOfWeek: 0...7
        }
    }

    /// The largest value `*` and `a/n` run up to (day-of-week: Saturday).
    var highest: Int { self == .dayOfWeek ? 6 : bounds.upperBound }

    /// Names and their values, three letters, matched case-insensitively.
    var names: [String: Int] {
        switch self {
        case .month:
            ["JAN": 1, "FEB": 2, "MAR": 3, "APR": 4, "MAY": 5, "JUN": 6,
             "JUL": 7, "AUG": 8, "SEP": 9, "OCT": 10, "NOV": 11, "DEC": 12]
        case .dayOfWeek:
            ["SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6]
        default: [:]
        }
    }

    var rangeText: String {
        switch self {
        case .month: "1-12 (or JAN-DEC)"
        case .dayOfWeek: "0-7 (or SUN-SAT; 0 and 7 are Sunday)"
        default: "\(bounds.lowerBound)-\(bounds.upperBound)"
        }
    }

    /// Parses one field into a bit mask of the values it matches.
    func parse(_ raw: String, expression: String) throws(CoreError) -> UInt64 {
        func failure(_ message: String) -> CoreError {
            CoreError(.invalidCron, "cron \"\(expression)\": \(message)")
        }
        let inField = "\(name) field \"\(raw)\""
        if raw.contains("#") {
            throw failure("\(inField) uses \"#\" (nth weekday of the month), which is not supported")
        }
        if raw.contains("?") {
            throw failure("\(inField) uses \"?\", which is not supported; write \"*\" instead")
        }

        func value(_ token: Substring) throws(CoreError) -> Int {
            if token.isEmpty {
                throw failure("\(inField) has a range or step with a missing number")
            }
            if token.allSatisfy({ $0.isASCII && $0.isNumber }) {
                guard let number = Int(token), bounds.contains(number) else {
                    throw failure("\(name) \(token) is out of range \(rangeText)")
                }
                return number
            }
            if let number = names[token.uppercased()] { return number }
            let upper = token.uppercased()
            if self == .dayOfMonth || self == .dayOfWeek, upper.contains("L") {
                throw failure("\(inField) uses \"L\" (last day), which is not supported")
            }
            if self == .dayOfMonth, upper.contains("W") {
                throw failure("\(inField) uses \"W\" (nearest weekday), which is not supported")
            }
            let expected = switch self {
            case .month: "a month (1-12 or JAN-DEC)"
            case .dayOfWeek: "a weekday (0-7 or SUN-SAT)"
            default: "a number"
            }
            throw failure("\(inField): \"\(token)\" is not \(expected)")
        }

        var mask: UInt64 = 0
        for item in raw.split(separator: ",", omittingEmptySubsequences: false) {
            if item.isEmpty {
                throw failure("\(inField) has an empty list item")
            }
            let parts = item.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count <= 2 else {
                throw failure("\(inField): \"\(item)\" has more than one step")
            }
            var step = 1
            if parts.count == 2 {
                guard !parts[1].isEmpty, parts[1].allSatisfy({ $0.isASCII && $0.isNumber }) else {
                    throw failure("\(inField): step \"\(parts[1])\" is not a positive number")
                }
                guard let number = Int(parts[1]), number >= 1 else {
                    throw failure("\(inField): step \(parts[1]) must be at least 1")
                }
                step = number
            }
            let base = parts[0]
            let low: Int
            let high: Int
            if base == "*" {
                (low, high) = (bounds.lowerBound, highest)
            } else if base.contains("-") {
                let ends = base.split(separator: "-", omittingEmptySubsequences: false)
                guard ends.count == 2 else {
                    throw failure("\(inField): \"\(base)\" is not a range (write a-b)")
                }
                (low, high) = (try value(ends[0]), try value(ends[1]))
                guard low <= high else {
                    throw failure(
                        "\(inField): range \(base) is reversed; ranges do not wrap around, so list two ranges instead")
                }
            } else {
                low = try value(base)
                // "a/n" means "a-max/n" (croniter's reading).
                high = parts.count == 2 ? max(low, highest) : low
            }
            for number in stride(from: low, through: high, by: step) {
                mask |= 1 << UInt64(self == .dayOfWeek && number == 7 ? 0 : number)
            }
        }
        return mask
    }
}
