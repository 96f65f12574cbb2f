public import TrellisProto

/// The dependency structure of a DAG's tasks, indexed for the scheduler: each
/// task has a position, its direct upstream and downstream positions, and a
/// topological order. Built only from an acyclic, fully resolved task list.
public struct DagGraph: Sendable, Hashable {
    /// Task ids in the order the DAG declares them; a task's position in this
    /// array is its index everywhere else.
    public let taskIDs: [String]
    /// Position of each task id.
    public let index: [String: Int]
    /// Direct upstream positions of each task, in declaration order, without
    /// duplicates.
    public let upstream: [[Int]]
    /// Direct downstream positions of each task, ascending.
    public let downstream: [[Int]]
    /// Every position, each after all of its upstream tasks; among tasks that
    /// are ready at the same time, declaration order.
    public let topologicalOrder: [Int]

    public var count: Int { taskIDs.count }

    /// Why a task list is not a DAG.
    public enum Problem: Error, Sendable, Hashable {
        case duplicateTask(String)
        case unknownUpstream(task: String, upstream: String)
        case selfDependency(String)
        /// The ids along one cycle, first id repeated at the end
        /// (`a → b → c → a`).
        case cycle([String])
    }

    /// Builds the graph of `tasks` (id, direct upstream ids).
    ///
    /// Throws the first problem found; `problems(of:)` lists them all, for
    /// validation.
    public init(tasks: [(id: String, upstream: [String])]) throws(Problem) {
        if let first = Self.problems(of: tasks).first { throw first }
        var index: [String: Int] = [:]
        for (position, task) in tasks.enumerated() { index[task.id] = position }
        var upstream: [[Int]] = []
        var downstream = [[Int]](repeating: [], count: tasks.count)
        for (position, task) in tasks.enumerated() {
            var seen = Set<Int>()
            let direct = task.upstream.compactMap { index[$0] }.filter { seen.insert($0).inserted }
            upstream.append(direct)
            for parent in direct { downstream[parent].append(position) }
        }
        self.taskIDs = tasks.map(\.id)
        self.index = index
        self.upstream = upstream
        self.downstream = downstream.map { $0.sorted() }
        self.topologicalOrder = Self.kahn(upstream: upstream, downstream: self.downstream).order
    }

    public init(spec: Trellis_V1_DagSpec) throws(Problem) {
        try self.init(tasks: spec.tasks.map { ($0.taskID, $0.upstream) })
    }

    /// Every structural problem of a task list: duplicate ids, unknown or
    /// self references, and each cycle (reported once, from its smallest
    /// declared task).
    public static func problems(of tasks: [(id: String, upstream: [String])]) -> [Problem] {
        var problems: [Problem] = []
        var index: [String: Int] = [:]
        for (position, task) in tasks.enumerated() {
            if index[task.id] != nil {
                problems.append(.duplicateTask(task.id))
            } else {
                index[task.id] = position
            }
        }
        var upstream = [[Int]](repeating: [], count: tasks.count)
        for (position, task) in tasks.enumerated() where index[task.id] == position {
            for parent in task.upstream {
                if parent == task.id {
                    problems.append(.selfDependency(task.id))
                } else if let parentPosition = index[parent] {
                    if !upstream[position].contains(parentPosition) { upstream[position].append(parentPosition) }
                } else {
                    problems.append(.unknownUpstream(task: task.id, upstream: parent))
                }
            }
        }
        var downstream = [[Int]](repeating: [], count: tasks.count)
        for (child, parents) in upstream.enumerated() {
            for parent in parents { downstream[parent].append(child) }
        }
        let sorted = kahn(upstream: upstream, downstream: downstream)
        if sorted.order.count < tasks.count {
            for cycle in cycles(among: sorted.unsorted, downstream: downstream) {
                problems.append(.cycle(cycle.map { tasks[$0].id } + [tasks[cycle[0]].id]))
            }
        }
        return problems
    }

    /// Kahn's algorithm with declaration order as the tie-break. Positions
    /// left out of `order` lie on or behind a cycle.
    private static func kahn(upstream: [[Int]], downstream: [[Int]]) -> (order: [Int], unsorted: Set<Int>) {
        var waiting = upstream.map(\.count)
        var ready = Heap()
        for (position, count) in waiting.enumerated() where count == 0 { ready.insert(position) }
        var order: [Int] = []
        order.reserveCapacity(upstream.count)
        while let next = ready.popMin() {
            order.append(next)
            for child in downstream[next] {
                waiting[child] -= 1
                if waiting[child] == 0 { ready.insert(child) }
            }
        }
        let sortedSet = Set(order)
        return (order, Set(upstream.indices).subtracting(sortedSet))
    }

    /// One cycle per strongly connected component among `candidates`, each
    /// starting at the component's smallest position and following the
    /// smallest next position inside the component.
    private static func cycles(among candidates: Set<Int>, downstream: [[Int]]) -> [[Int]] {
        let components = stronglyConnectedComponents(of: candidates, downstream: downstream)
        return components.compactMap { component -> [Int]? in
            guard component.count > 1 else { return nil }
            let members = Set(component)
            let start = component.min()!
            // Walk from start, preferring unvisited members, until we return to start.
            var path = [start]
            var onPath: Set<Int> = [start]
            var stack: [(node: Int, next: Int)] = [(start, 0)]
            while var top = stack.popLast() {
                let children = downstream[top.node].filter { members.contains($0) }
                if top.next < children.count {
                    let child = children[top.next]
                    top.next += 1
                    stack.append(top)
                    if child == start { return path }
                    if !onPath.contains(child) {
                        onPath.insert(child)
                        path.append(child)
                        stack.append((child, 0))
                    }
                } else {
                    path.removeLast()
                }
            }
            return nil
        }
        .sorted { $0[0] < $1[0] }
    }

    /// Tarjan's algorithm, iterative so deep graphs cannot overflow the stack.
    private static func stronglyConnectedComponents(of nodes: Set<Int>, downstream: [[Int]]) -> [[Int]] {
        var indexOf: [Int: Int] = [:]
        var lowLink: [Int: Int] = [:]
        var onStack = Set<Int>()
        var stack: [Int] = []
        var components: [[Int]] = []
        var counter = 0
        for root in nodes.sorted() where indexOf[root] == nil {
            var work: [(node: Int, child: Int)] = [(root, 0)]
            indexOf[root] = counter; lowLink[root] = counter; counter += 1
            stack.append(root); onStack.insert(root)
            while let frame = work.last {
                let children = downstream[frame.node].filter { nodes.contains($0) }
                if frame.child < children.count {
                    work[work.count - 1].child += 1
                    let child = children[frame.child]
                    if indexOf[child] == nil {
                        indexOf[child] = counter; lowLink[child] = counter; counter += 1
                        stack.append(child); onStack.insert(child)
                        work.append((child, 0))
                    } else if onStack.contains(child) {
                        lowLink[frame.node] = min(lowLink[frame.node]!, indexOf[child]!)
                    }
                } else {
                    work.removeLast()
                    if let parent = work.last {
                        lowLink[parent.node] = min(lowLink[parent.node]!, lowLink[frame.node]!)
                    }
                    if lowLink[frame.node] == indexOf[frame.node] {
                        var component: [Int] = []
                        while let member = stack.popLast() {
                            onStack.remove(member)
                            component.append(member)
                            if member == frame.node { break }
                        }
                        components.append(component)
                    }
                }
            }
        }
        return components
    }
}

/// A binary min-heap of positions, for Kahn's algorithm.
private struct Heap {
    private var items: [Int] = []

    mutating func insert(_ item: Int) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child] < items[parent] else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popMin() -> Int? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let min = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count, items[left] < items[smallest] { smallest = left }
            if right < items.count, items[right] < items[smallest] { smallest = right }
            guard smallest != parent else { return min }
            items.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
