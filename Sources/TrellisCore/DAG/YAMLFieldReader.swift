import Yams

/// Collects the problems found while reading one DAG file.
final class ProblemCollector {
    let file: String
    private(set) var problems: [DagProblem] = []

    init(file: String) {
        self.file = file
    }

    func add(at mark: Mark?, task: String? = nil, field: String? = nil, _ message: String) {
        problems.append(DagProblem(file: file, line: mark?.line, column: mark?.column, taskID: task, field: field, message: message))
    }
}

/// A value read from YAML together with where it was written, so later
/// checks (which see merged values) can still point at the right line.
struct Located<Value> {
    var value: Value
    var mark: Mark?
}

/// Reads the fields of one YAML mapping, checking each value's type and
/// recording a problem (never throwing) for anything wrong, so that one pass
/// reports every mistake. Remembers which keys were read; `reportUnknownKeys`
/// then flags the rest, with a suggestion for likely typos.
final class YAMLFieldReader {
    let mapping: Node.Mapping?
    let mark: Mark?
    /// The mapping's values by key text. Looking keys up in `Node.Mapping`
    /// compares nodes one by one, which dominated parsing large DAGs.
    private let values: [String: Node]
    /// The task the mapping belongs to, for problem messages.
    let task: String?
    private let problems: ProblemCollector
    private let prefix: String
    private var known: Set<String> = []
    /// Keys whose values were present but unusable (already reported).
    private(set) var rejected: Set<String> = []

    /// `node` should be a mapping; anything else is reported once.
    init(_ node: Node?, what: String, problems: ProblemCollector, task: String? = nil, prefix: String = "") {
        self.problems = problems
        self.task = task
        self.prefix = prefix
        self.mark = node?.mark
        switch node {
        case .mapping(let mapping)?:
            self.mapping = mapping
        case nil:
            self.mapping = nil
        case let other?:
            problems.add(at: other.mark, task: task, field: prefix.isEmpty ? nil : String(prefix.dropLast()), "\(what) must be a mapping of keys to values, not \(other.kindDescription)")
            self.mapping = nil
        }
        var values: [String: Node] = [:]
        for (key, value) in self.mapping ?? [:] {
            if case .scalar(let scalar) = key { values[scalar.string] = value }
        }
        self.values = values
    }

    /// The value under `key`, without marking the key as read.
    subscript(key: String) -> Node? { values[key] }

    func fieldName(_ key: String) -> String { prefix + key }

    /// The raw node under `key`, marking the key as known. YAML null counts
    /// as absent.
    func node(_ key: String) -> Node? {
        known.insert(key)
        guard let value = values[key] else { return nil }
        if value.isNull { return nil }
        return value
    }

    func has(_ key: String) -> Bool { node(key) != nil }

    func report(_ node: Node?, _ key: String, _ message: String) {
        rejected.insert(key)
        problems.add(at: node?.mark ?? mark, task: task, field: fieldName(key), message)
    }

    func string(_ key: String) -> Located<String>? {
        guard let node = node(key) else { return nil }
        guard case .scalar(let scalar) = node else {
            report(node, key, "must be a string, not \(node.kindDescription)")
            return nil
        }
        return Located(value: scalar.string, mark: node.mark)
    }

    func bool(_ key: String) -> Located<Bool>? {
        guard let node = node(key) else { return nil }
        guard let value = node.plainBool else {
            report(node, key, "must be true or false, not \(node.valueDescription)")
            return nil
        }
        return Located(value: value, mark: node.mark)
    }

    func int(_ key: String, in range: ClosedRange<Int>) -> Located<Int>? {
        guard let node = node(key) else { return nil }
        guard let value = node.plainInt else {
            report(node, key, "must be a whole number, not \(node.valueDescription)")
            return nil
        }
        guard range.contains(value) else {
            let bound = value < range.lowerBound ? "at least \(range.lowerBound)" : "at most \(range.upperBound)"
            report(node, key, "must be \(bound), not \(value)")
            return nil
        }
        return Located(value: value, mark: node.mark)
    }

    /// A duration (`30s`, `5m`, `1h30m`, or seconds) in milliseconds.
    func duration(_ key: String) -> Located<Int64>? {
        guard let node = node(key) else { return nil }
        guard case .scalar(let scalar) = node else {
            report(node, key, "must be a duration such as 30s, 5m, 23h or 1d, not \(node.kindDescription)")
            return nil
        }
        do {
            return Located(value: try DurationText.millis(scalar.string), mark: node.mark)
        } catch {
            report(node, key, error.message)
            return nil
        }
    }

    /// A list of strings; a single string is not accepted, to catch
    /// `command: echo hi` (which would be one argv element).
    func stringList(_ key: String) -> Located<[Located<String>]>? {
        guard let node = node(key) else { return nil }
        guard case .sequence(let sequence) = node else {
            report(node, key, "must be a list of strings, not \(node.kindDescription) (write [a, b] or one '- item' per line)")
            return nil
        }
        var items: [Located<String>] = []
        for (position, item) in sequence.enumerated() {
            guard case .scalar(let scalar) = item, !item.isNull else {
                rejected.insert(key)
                problems.add(at: item.mark, task: task, field: "\(fieldName(key))[\(position)]", "must be a string, not \(item.kindDescription)")
                continue
            }
            items.append(Located(value: scalar.string, mark: item.mark))
        }
        return Located(value: items, mark: node.mark)
    }

    /// A mapping of strings to strings, in the user's order.
    func stringMap(_ key: String) -> Located<[(key: Located<String>, value: Located<String>)]>? {
        guard let node = node(key) else { return nil }
        guard case .mapping(let mapping) = node else {
            report(node, key, "must be a mapping of names to values, not \(node.kindDescription)")
            return nil
        }
        var pairs: [(key: Located<String>, value: Located<String>)] = []
        for (name, value) in mapping {
            guard case .scalar(let nameScalar) = name else {
                problems.add(at: name.mark, task: task, field: fieldName(key), "keys must be strings, not \(name.kindDescription)")
                continue
            }
            guard case .scalar(let valueScalar) = value, !value.isNull else {
                problems.add(at: value.mark, task: task, field: "\(fieldName(key)).\(nameScalar.string)", "must be a string, not \(value.kindDescription)")
                continue
            }
            pairs.append((Located(value: nameScalar.string, mark: name.mark), Located(value: valueScalar.string, mark: value.mark)))
        }
        return Located(value: pairs, mark: node.mark)
    }

    /// A value from a fixed set of spellings.
    func oneOf<Value>(_ key: String, _ choices: [(String, Value)]) -> Located<Value>? {
        guard let text = string(key) else { return nil }
        guard let match = choices.first(where: { $0.0 == text.value }) else {
            let names = choices.map(\.0)
            var message = "'\(text.value)' is not one of \(names.joined(separator: ", "))"
            if let close = closestMatch(text.value, in: names) { message += " (did you mean '\(close)'?)" }
            report(values[key], key, message)
            return nil
        }
        return Located(value: match.1, mark: text.mark)
    }

    /// Flags every key of the mapping that no reader asked for.
    func reportUnknownKeys(alsoAllowed: Set<String> = [], hint: (String) -> String? = { _ in nil }) {
        guard let mapping else { return }
        let allowed = known.union(alsoAllowed)
        for key in mapping.keys {
            guard case .scalar(let scalar) = key else {
                problems.add(at: key.mark, task: task, field: prefix.isEmpty ? nil : String(prefix.dropLast()), "keys must be strings, not \(key.kindDescription)")
                continue
            }
            let name = scalar.string
            guard !allowed.contains(name) else { continue }
            var message = "unknown field"
            if let specific = hint(name) {
                message += ": \(specific)"
            } else if let close = closestMatch(name, in: allowed.sorted()) {
                message += " (did you mean '\(close)'?)"
            }
            problems.add(at: key.mark, task: task, field: fieldName(name), message)
        }
    }
}

/// Scalars are composed with Yams' basic resolver (every scalar a string;
/// the default resolver runs several regular expressions per scalar, which
/// dominated parsing large DAGs), so their types are read here, with the
/// YAML 1.1 spellings Yams' default resolver accepts. Quoted scalars are
/// always strings.
extension Node {
    var plainBool: Bool? {
        guard case .scalar(let scalar) = self, scalar.style == .plain else { return nil }
        switch scalar.string {
        case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON": return true
        case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF": return false
        default: return nil
        }
    }

    var plainInt: Int? {
        guard case .scalar(let scalar) = self, scalar.style == .plain else { return nil }
        var text = Substring(scalar.string)
        let negative = text.first == "-"
        if text.first == "-" || text.first == "+" { text = text.dropFirst() }
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let magnitude = Int(text) else { return nil }
        return negative ? -magnitude : magnitude
    }

    var plainDouble: Double? {
        guard case .scalar(let scalar) = self, scalar.style == .plain,
              scalar.string.contains(where: { $0.isNumber }),
              scalar.string.allSatisfy({ $0.isNumber || "+-.eE".contains($0) })
        else { return nil }
        return Double(scalar.string)
    }

    var isNull: Bool {
        if case .scalar(let scalar) = self {
            return scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
        }
        return false
    }

    /// "a list", "a mapping", "a string", for messages.
    var kindDescription: String {
        switch self {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        case .scalar: isNull ? "null" : "a single value"
        }
    }

    /// The value itself for scalars (quoted), the kind otherwise.
    var valueDescription: String {
        if case .scalar(let scalar) = self, !isNull { return "'\(scalar.string)'" }
        return kindDescription
    }
}

/// The candidate closest to `word` by edit distance, if close enough to be a
/// plausible typo (`retires` → `retries`): for "did you mean" in messages.
public func closestMatch(_ word: String, in candidates: [String]) -> String? {
    let limit = max(1, min(3, word.count / 3))
    var best: (String, Int)?
    for candidate in candidates {
        let distance = editDistance(Array(word.lowercased().utf8), Array(candidate.utf8))
        if distance <= limit, distance < (best?.1 ?? .max) { best = (candidate, distance) }
    }
    return best?.0
}

/// Damerau–Levenshtein distance (optimal string alignment), so a swapped
/// pair of letters counts as one edit.
private func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous2 = [Int](repeating: 0, count: b.count + 1)
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                current[j] = min(current[j], previous2[j - 2] + 1)
            }
        }
        (previous2, previous, current) = (previous, current, previous2)
    }
    return previous[b.count]
}
