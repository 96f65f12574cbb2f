public import TrellisProto

/// A DAG's tasks as a tree, `tree`-style: every task without upstream is a
/// root, its downstream tasks hang below it. A task with several upstream
/// tasks appears under each; its subtree is drawn once, later appearances
/// say `(see above)`.
public struct DagTree: Sendable {
    public struct Node: Sendable, Hashable {
        public var taskID: String
        /// Short facts after the name: executor, retries, trigger rule.
        public var note: String
        public var downstream: [String]
    }

    public let roots: [String]
    public let nodes: [String: Node]

    public init(_ spec: Trellis_V1_DagSpec) {
        var downstream: [String: [String]] = [:]
        for task in spec.tasks {
            for upstream in task.upstream { downstream[upstream, default: []].append(task.taskID) }
        }
        var nodes: [String: Node] = [:]
        for task in spec.tasks {
            nodes[task.taskID] = Node(taskID: task.taskID, note: Self.note(task), downstream: downstream[task.taskID] ?? [])
        }
        self.nodes = nodes
        roots = spec.tasks.filter { $0.upstream.isEmpty }.map(\.taskID)
    }

    static func note(_ task: Trellis_V1_TaskSpec) -> String {
        var facts: [String] = []
        facts.append(task.executor.isEmpty ? "default executor" : task.executor)
        if task.retries > 0 { facts.append("retries \(task.retries)") }
        if task.triggerRule != .allSuccess {
            let name = "\(task.triggerRule)"
            facts.append("trigger " + name.reduce(into: "") { text, character in
                if character.isUppercase { text += "_" + character.lowercased() } else { text.append(character) }
            })
        }
        if task.upstream.count > 1 { facts.append("after \(task.upstream.joined(separator: ", "))") }
        return facts.joined(separator: "; ")
    }

    /// The tree's lines, each cut to `width` characters.
    public func render(width: Int = 80) -> [String] {
        var lines: [String] = []
        var drawn: Set<String> = []
        func draw(_ id: String, prefix: String, connector: String, childPrefix: String) {
            guard let node = nodes[id] else { return }
            let seen = drawn.contains(id)
            var line = prefix + connector + id
            line += seen && !node.downstream.isEmpty ? "  (see above)" : "  (\(node.note))"
            lines.append(truncate(line, to: width))
            guard !seen else { return }
            drawn.insert(id)
            for (index, child) in node.downstream.enumerated() {
                let last = index == node.downstream.count - 1
                draw(child, prefix: prefix + childPrefix, connector: last ? "└── " : "├── ", childPrefix: last ? "    " : "│   ")
            }
        }
        for root in roots { draw(root, prefix: "", connector: "", childPrefix: "") }
        return lines
    }
}
