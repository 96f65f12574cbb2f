public import Foundation

/// A string with Airflow-style `{{ macro }}` placeholders, as allowed in a
/// task's command, arguments and environment values.
///
/// Parsing happens when a DAG is submitted, so an unknown macro is a
/// validation error then, not a failure hours later when the task runs.
/// Only plain macros are supported (no Jinja filters, expressions or blocks).
public struct Template: Sendable, Hashable {
    /// The macros Airflow users rely on.
    public enum Macro: Sendable, Hashable, CustomStringConvertible {
        case ds
        case dsNodash
        case ts
        case tsNodash
        case logicalDate
        case dataIntervalStart
        case dataIntervalEnd
        case runID
        case dagID
        case taskID
        case tryNumber
        /// `params.NAME`: the DAG's params, overridden by the run's conf.
        case param(String)
        /// `xcom.TASK_ID`: the JSON result an upstream task wrote.
        case xcom(String)

        static let plain: [(String, Macro)] = [
            ("ds", .ds), ("ds_nodash", .dsNodash), ("ts", .ts), ("ts_nodash", .tsNodash),
            ("logical_date", .logicalDate), ("data_interval_start", .dataIntervalStart),
            ("data_interval_end", .dataIntervalEnd), ("run_id", .runID), ("dag_id", .dagID),
            ("task_id", .taskID), ("try_number", .tryNumber),
        ]

        public var description: String {
            switch self {
            case .param(let name): "params.\(name)"
            case .xcom(let task): "xcom.\(task)"
            default: Self.plain.first { $0.1 == self }!.0
            }
        }
    }

    public enum Part: Sendable, Hashable {
        case text(String)
        case macro(Macro)
    }

    public let parts: [Part]

    /// The macros used, in order of appearance.
    public var macros: [Macro] {
        parts.compactMap { if case .macro(let macro) = $0 { macro } else { nil } }
    }

    public init(parsing text: String) throws(CoreError) {
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            if open.lowerBound > rest.startIndex { parts.append(.text(String(rest[..<open.lowerBound]))) }
            guard let close = rest[open.upperBound...].range(of: "}}") else {
                throw CoreError(.invalidTemplate, "'{{' without a closing '}}' in \"\(text)\"")
            }
            let inside = String(rest[open.upperBound..<close.lowerBound]).trimmingWhitespace()
            parts.append(.macro(try Self.macro(inside, in: text)))
            rest = rest[close.upperBound...]
        }
        if !rest.isEmpty { parts.append(.text(String(rest))) }
        self.parts = parts
    }

    private static func macro(_ name: String, in text: String) throws(CoreError) -> Macro {
        if let plain = Macro.plain.first(where: { $0.0 == name }) { return plain.1 }
        if name.hasPrefix("params."), name.count > 7 { return .param(String(name.dropFirst(7))) }
        if name.hasPrefix("xcom."), name.count > 5 { return .xcom(String(name.dropFirst(5))) }
        if name.contains("|") {
            throw CoreError(.invalidTemplate, "'{{ \(name) }}' uses a filter; Trellis templates support plain macros only")
        }
        var message = "unknown macro '{{ \(name) }}'"
        let names = Macro.plain.map(\.0) + ["params.NAME", "xcom.TASK_ID"]
        if let close = closestMatch(name, in: names) { message += " (did you mean '{{ \(close) }}'?)" }
        message += "; known macros: \(names.joined(separator: ", "))"
        throw CoreError(.invalidTemplate, message)
    }

    /// The text with every macro replaced from `context`.
    public func render(_ context: TemplateContext) throws(CoreError) -> String {
        var output = ""
        for part in parts {
            switch part {
            case .text(let text): output += text
            case .macro(let macro): output += try context.value(of: macro)
            }
        }
        return output
    }
}

/// The values macros render to for one task attempt. Dates render in UTC,
/// in Airflow's formats (`ds` = `2020-08-07`, `ts` = `2020-08-07T01:00:00+00:00`).
public struct TemplateContext: Sendable, Hashable {
    public var dagID: String
    public var taskID: String
    public var runID: String
    public var tryNumber: Int
    public var logicalDate: Date
    public var dataIntervalStart: Date
    public var dataIntervalEnd: Date
    /// Param values as they render: strings as themselves, anything else as JSON.
    public var params: [String: String]
    /// Upstream results (JSON text) by task id.
    public var xcom: [String: String]

    public init(
        dagID: String, taskID: String, runID: String, tryNumber: Int,
        logicalDate: Date, dataIntervalStart: Date, dataIntervalEnd: Date,
        params: [String: String] = [:], xcom: [String: String] = [:]
    ) {
        self.dagID = dagID
        self.taskID = taskID
        self.runID = runID
        self.tryNumber = tryNumber
        self.logicalDate = logicalDate
        self.dataIntervalStart = dataIntervalStart
        self.dataIntervalEnd = dataIntervalEnd
        self.params = params
        self.xcom = xcom
    }

    func value(of macro: Template.Macro) throws(CoreError) -> String {
        switch macro {
        case .ds: return UTCFormat.date(logicalDate)
        case .dsNodash: return UTCFormat.date(logicalDate).replacingOccurrences(of: "-", with: "")
        case .ts: return UTCFormat.timestamp(logicalDate)
        case .tsNodash: return UTCFormat.compactTimestamp(logicalDate)
        case .logicalDate: return UTCFormat.timestamp(logicalDate)
        case .dataIntervalStart: return UTCFormat.timestamp(dataIntervalStart)
        case .dataIntervalEnd: return UTCFormat.timestamp(dataIntervalEnd)
        case .runID: return runID
        case .dagID: return dagID
        case .taskID: return taskID
        case .tryNumber: return String(tryNumber)
        case .param(let name):
            guard let value = params[name] else {
                throw CoreError(.invalidTemplate, "'{{ params.\(name) }}': the DAG has no param '\(name)' and the run's conf does not set it")
            }
            return value
        case .xcom(let task):
            guard let value = xcom[task] else {
                throw CoreError(.invalidTemplate, "'{{ xcom.\(task) }}': task '\(task)' wrote no result")
            }
            return value
        }
    }
}

/// Airflow's UTC renderings of instants.
enum UTCFormat {
    private static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    private static func parts(_ date: Date) -> DateComponents {
        calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    }

    /// `2020-08-07`
    static func date(_ date: Date) -> String {
        let c = parts(date)
        return "\(pad(c.year!, 4))-\(pad(c.month!))-\(pad(c.day!))"
    }

    /// `2020-08-07T01:00:00+00:00`
    static func timestamp(_ date: Date) -> String {
        let c = parts(date)
        return "\(self.date(date))T\(pad(c.hour!)):\(pad(c.minute!)):\(pad(c.second!))+00:00"
    }

    /// `20200807T010000`
    static func compactTimestamp(_ date: Date) -> String {
        let c = parts(date)
        return "\(pad(c.year!, 4))\(pad(c.month!))\(pad(c.day!))T\(pad(c.hour!))\(pad(c.minute!))\(pad(c.second!))"
    }

    private static func pad(_ value: Int, _ width: Int = 2) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}

/// Run ids in Airflow's form, `<run type>__<logical date in ISO 8601>`
/// (`scheduled__2020-08-07T01:00:00+00:00`), as `DagRun.generate_run_id`
/// makes them, so scripts that parse Airflow run ids keep working.
public enum RunIDs {
    public static func generate(runType: String, logicalDate: Date) -> String {
        "\(runType)__\(UTCFormat.timestamp(logicalDate))"
    }
}
