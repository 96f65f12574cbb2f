/// Airflow's bitshift notation for dependencies, as written in a DAG file's
/// `dependencies:` list: `a >> b`, `a >> [b, c] >> d`, `d << c`.
///
/// Each operator links the operands beside it: `x >> y` makes every task of
/// `x` upstream of every task of `y`; `x << y` the reverse.
public enum BitshiftDependencies {
    /// One dependency: `upstream` must finish before `downstream`.
    public struct Edge: Sendable, Hashable {
        public var upstream: String
        public var downstream: String
    }

    public static func edges(_ text: String) throws(CoreError) -> [Edge] {
        var operands: [[String]] = []
        var operators: [Bool] = []  // true for >>
        var rest = Substring(text)

        func skipSpaces() { while rest.first?.isWhitespace == true { rest.removeFirst() } }
        func fail(_ why: String) -> CoreError {
            CoreError(.invalidDag, "\"\(text)\" \(why) (write e.g. \"extract >> [clean, enrich] >> load\")")
        }

        while true {
            skipSpaces()
            if rest.first == "[" {
                rest.removeFirst()
                guard let close = rest.firstIndex(of: "]") else { throw fail("has a '[' without ']'") }
                let items = rest[..<close].split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
                guard items.allSatisfy({ !$0.isEmpty }) else { throw fail("has an empty item in a [...] list") }
                operands.append(items)
                rest = rest[rest.index(after: close)...]
            } else {
                let id = rest.prefix { !$0.isWhitespace && $0 != ">" && $0 != "<" && $0 != "[" && $0 != "]" }
                guard !id.isEmpty else { throw fail(operands.isEmpty ? "does not start with a task id" : "ends with an operator") }
                if id.contains(",") { throw fail("lists tasks without [...]") }
                operands.append([String(id)])
                rest = rest.dropFirst(id.count)
            }
            skipSpaces()
            if rest.isEmpty { break }
            if rest.hasPrefix(">>") {
                operators.append(true)
            } else if rest.hasPrefix("<<") {
                operators.append(false)
            } else {
                throw fail("has '\(rest.prefix(10))' where '>>' or '<<' should be")
            }
            rest = rest.dropFirst(2)
        }
        guard !operators.isEmpty else { throw fail("has no '>>' or '<<'") }

        var edges: [Edge] = []
        for (position, downstreamward) in operators.enumerated() {
            let (from, to) = downstreamward ? (operands[position], operands[position + 1]) : (operands[position + 1], operands[position])
            for upstream in from {
                for downstream in to { edges.append(Edge(upstream: upstream, downstream: downstream)) }
            }
        }
        return edges
    }
}
