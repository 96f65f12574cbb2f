/// The spelling rules of Prometheus's text exposition format 0.0.4: valid
/// names, escaping in help text and label values, and how numbers are
/// written.
enum PrometheusText {
    /// The `Content-Type` of a `/metrics` answer.
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    static func isValidMetricName(_ name: String) -> Bool {
        isValid(name, extra: ":")
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, and not starting with `__` (reserved).
    static func isValidLabelName(_ name: String) -> Bool {
        isValid(name, extra: nil) && !name.hasPrefix("__")
    }

    private static func isValid(_ name: String, extra: Unicode.Scalar?) -> Bool {
        guard !name.isEmpty else { return false }
        for (index, scalar) in name.unicodeScalars.enumerated() {
            let letter = ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || scalar == "_" || scalar == extra
            let digit = ("0"..."9").contains(scalar)
            guard letter || (digit && index > 0) else { return false }
        }
        return true
    }

    /// Help text: backslash and newline escaped.
    static func escapeHelp(_ text: String) -> String {
        escape(text, quotes: false)
    }

    /// A label value: backslash, double quote and newline escaped.
    static func escapeLabelValue(_ text: String) -> String {
        escape(text, quotes: true)
    }

    private static func escape(_ text: String, quotes: Bool) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\"" where quotes: output += "\\\""
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output
    }

    /// `{name="value",…}`, or nothing for no labels.
    static func labelSet(_ pairs: [(String, String)]) -> String {
        guard !pairs.isEmpty else { return "" }
        return "{" + pairs.map { "\($0.0)=\"\(escapeLabelValue($0.1))\"" }.joined(separator: ",") + "}"
    }

    /// A sample value or bucket bound as Prometheus reads it: whole numbers
    /// without a fraction (`3`, `1`), others in Swift's shortest form that
    /// round-trips (`0.005`, `1e-05`), and `+Inf`, `-Inf`, `NaN`.
    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Inf" : "+Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
