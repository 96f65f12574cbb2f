import Foundation

/// Label selectors as the API server parses them: equality-based
/// (`k=v`, `k==v`, `k!=v`), existence (`k`, `!k`) and set-based
/// (`k in (a,b)`, `k notin (a,b)`), comma-separated.
struct LabelSelector: Sendable {
    enum Requirement: Sendable {
        case equals(String, String), notEquals(String, String), exists(String), notExists(String)
        case isIn(String, [String]), notIn(String, [String])

        var key: String {
            switch self {
            case .equals(let key, _), .notEquals(let key, _), .exists(let key), .notExists(let key), .isIn(let key, _), .notIn(let key, _): key
            }
        }

        /// As `labels.Selector.String()` writes it.
        var text: String {
            switch self {
            case .equals(let key, let value): "\(key)=\(value)"
            case .notEquals(let key, let value): "\(key)!=\(value)"
            case .exists(let key): key
            case .notExists(let key): "!\(key)"
            case .isIn(let key, let values): "\(key) in (\(values.sorted().joined(separator: ",")))"
            case .notIn(let key, let values): "\(key) notin (\(values.sorted().joined(separator: ",")))"
            }
        }
    }

    var requirements: [Requirement] = []

    init(requirements: [Requirement]) { self.requirements = requirements }

    init(_ text: String?) throws(KubeError) {
        guard let text, !text.isEmpty else { return }
        // Commas inside a set's parentheses do not separate requirements.
        var parts: [String] = [], current = "", depth = 0
        for character in text {
            if character == "(" { depth += 1 } else if character == ")" { depth -= 1 }
            if character == ",", depth == 0 { parts.append(current); current = "" } else { current.append(character) }
        }
        parts.append(current)
        for part in parts.map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            requirements.append(try Self.requirement(part))
        }
    }

    private static func requirement(_ part: String) throws(KubeError) -> Requirement {
        let bad = KubeError(code: 400, reason: "BadRequest", message: "unable to parse requirement: \(part)")
        if let open = part.firstIndex(of: "("), part.hasSuffix(")") {
            let words = part[..<open].split(separator: " ").map(String.init)
            let values = part[part.index(after: open)..<part.index(before: part.endIndex)]
                .split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard words.count == 2, isKey(words[0]) else { throw bad }
            switch words[1] {
            case "in": return .isIn(words[0], values)
            case "notin": return .notIn(words[0], values)
            default: throw bad
            }
        }
        if let range = part.range(of: "!=") {
            return .notEquals(part[..<range.lowerBound].trimmingCharacters(in: .whitespaces), part[range.upperBound...].trimmingCharacters(in: .whitespaces))
        }
        if let range = part.range(of: "==") ?? part.range(of: "=") {
            return .equals(part[..<range.lowerBound].trimmingCharacters(in: .whitespaces), part[range.upperBound...].trimmingCharacters(in: .whitespaces))
        }
        if part.hasPrefix("!") { return .notExists(part.dropFirst().trimmingCharacters(in: .whitespaces)) }
        if isKey(part) { return .exists(part) }
        throw bad
    }

    private static func isKey(_ text: String) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isLetter || $0.isNumber || "-_./".contains($0) }
    }

    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`
    /// with In, NotIn, Exists, DoesNotExist); nil for an object that is
    /// not one.
    init?(object: Any?) {
        guard let object = object as? [String: Any] else { return nil }
        if let matchLabels = object["matchLabels"] {
            guard let labels = matchLabels as? [String: String] else { return nil }
            requirements += labels.map { .equals($0.key, $0.value) }
        }
        for expression in object["matchExpressions"] as? [[String: Any]] ?? [] {
            guard let key = expression["key"] as? String, let op = expression["operator"] as? String else { return nil }
            let values = expression["values"] as? [String] ?? []
            switch op {
            case "In": requirements.append(.isIn(key, values))
            case "NotIn": requirements.append(.notIn(key, values))
            case "Exists": requirements.append(.exists(key))
            case "DoesNotExist": requirements.append(.notExists(key))
            default: return nil
            }
        }
    }

    var isEmpty: Bool { requirements.isEmpty }

    /// The string form (sorted by key), as a Scale's `status.selector`.
    var text: String {
        requirements.enumerated().sorted { ($0.element.key, $0.offset) < ($1.element.key, $1.offset) }.map(\.element.text).joined(separator: ",")
    }

    func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy {
            switch $0 {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .exists(let key): labels[key] != nil
            case .notExists(let key): labels[key] == nil
            case .isIn(let key, let values): labels[key].map(values.contains) ?? false
            case .notIn(let key, let values): labels[key].map { !values.contains($0) } ?? true
            }
        }
    }
}

/// Field selectors (`f=v`, `f==v`, `f!=v`, comma-separated) over the
/// fields a resource supports; any other field is 400, as the API server
/// answers.
struct FieldSelector: Sendable {
    enum Requirement: Sendable { case equals(String, String), notEquals(String, String) }
    var requirements: [Requirement] = []

    init(_ text: String?, supported: Set<String>) throws(KubeError) {
        guard let text, !text.isEmpty else { return }
        for part in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !part.isEmpty {
            let requirement: Requirement
            if let range = part.range(of: "!=") {
                requirement = .notEquals(String(part[..<range.lowerBound]), String(part[range.upperBound...]))
            } else if let range = part.range(of: "==") ?? part.range(of: "=") {
                requirement = .equals(String(part[..<range.lowerBound]), String(part[range.upperBound...]))
            } else {
                throw KubeError(code: 400, reason: "BadRequest", message: "invalid selector: '\(text)'; can't understand '\(part)'")
            }
            let field = switch requirement { case .equals(let field, _), .notEquals(let field, _): field }
            guard supported.contains(field) else {
                throw KubeError(code: 400, reason: "BadRequest", message: "field label not supported: \(field)")
            }
            requirements.append(requirement)
        }
    }

    func matches(_ fields: [String: String]) -> Bool {
        requirements.allSatisfy {
            switch $0 {
            case .equals(let field, let value): (fields[field] ?? "") == value
            case .notEquals(let field, let value): (fields[field] ?? "") != value
            }
        }
    }
}

/// RFC 7386 JSON merge patch (also what a strategic merge patch does to
/// the maps and scalars the simulator's patchable objects hold): objects
/// merge recursively, `null` removes, anything else replaces.
func mergePatch(_ target: Any?, _ patch: Any) -> Any {
    guard let patch = patch as? [String: Any] else { return patch }
    var result = target as? [String: Any] ?? [:]
    for (key, value) in patch {
        if value is NSNull { result.removeValue(forKey: key) } else { result[key] = mergePatch(result[key], value) }
    }
    return result
}
