/// A task's `queue`: which agents may run it, as a label selector.
///
/// `k=v,k2=v2` matches agents whose labels hold every pair; the empty
/// selector matches any agent. A bare name (`gpu`) means `queue=gpu`, the
/// form TrellisCore stores a DAG file's queue name in, so both spellings
/// reach the same agents.
struct QueueSelector: Hashable, Sendable, CustomStringConvertible {
    /// The pairs, sorted by key; each key once.
    let pairs: [Pair]

    struct Pair: Hashable, Sendable {
        var key: String
        var value: String
    }

    /// Parses a selector; the error names the part that is wrong.
    static func parse(_ text: String) -> Result<QueueSelector, SelectorError> {
        let trimmed = text.trimmingSpaces
        if trimmed.isEmpty { return .success(QueueSelector(pairs: [])) }
        if !trimmed.contains("=") && !trimmed.contains(",") {
            if trimmed.contains(where: \.isWhitespace) {
                return .failure(SelectorError("'\(trimmed)' is not a queue name (no spaces) nor key=value"))
            }
            return .success(QueueSelector(pairs: [Pair(key: "queue", value: trimmed)]))
        }
        var byKey: [String: String] = [:]
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard pieces.count == 2 else {
                return .failure(SelectorError("'\(part)' is not key=value (write k=v pairs separated by commas)"))
            }
            let key = String(pieces[0]).trimmingSpaces
            let value = String(pieces[1]).trimmingSpaces
            guard !key.isEmpty else { return .failure(SelectorError("'\(part)' has an empty key")) }
            guard !key.contains(where: \.isWhitespace), !value.contains(where: \.isWhitespace), !value.contains("=") else {
                return .failure(SelectorError("'\(part)' is not key=value (keys and values hold no spaces or '=')"))
            }
            if let earlier = byKey[key], earlier != value {
                return .failure(SelectorError("key '\(key)' is given twice ('\(earlier)' and '\(value)'); no agent can match both"))
            }
            byKey[key] = value
        }
        return .success(QueueSelector(pairs: byKey.map { Pair(key: $0.key, value: $0.value) }.sorted { $0.key < $1.key }))
    }

    /// Whether an agent with these labels may run the task.
    func matches(_ labels: [String: String]) -> Bool {
        pairs.allSatisfy { labels[$0.key] == $0.value }
    }

    /// `k=v,k2=v2` (sorted by key), or `(any)` for the empty selector.
    var description: String {
        pairs.isEmpty ? "(any)" : pairs.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}

struct SelectorError: Error, Sendable {
    var message: String
    init(_ message: String) { self.message = message }
}

extension String {
    var trimmingSpaces: String {
        var slice = Substring(self)
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
