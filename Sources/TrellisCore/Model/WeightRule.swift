public import TrellisProto

/// How a task's `priority_weight` becomes the weight the scheduler orders
/// ready tasks by (Airflow's `weight_rule`). The raw values are Airflow's
/// spellings, as written in DAG files.
public enum WeightRule: String, CaseIterable, Sendable, Hashable, Codable {
    /// Its own weight plus that of every task downstream of it (direct or
    /// not): a task that many others wait for goes first. Airflow's default.
    case downstream
    /// Its own weight plus that of every task upstream of it: runs that are
    /// further along finish first.
    case upstream
    /// Its own weight only.
    case absolute
}

extension WeightRule {
    public init(_ proto: Trellis_V1_WeightRule) throws(CoreError) {
        switch proto {
        case .downstream: self = .downstream
        case .upstream: self = .upstream
        case .absolute: self = .absolute
        case .UNRECOGNIZED(let value):
            throw CoreError(.unknownEnumValue, "unknown weight rule \(value)")
        }
    }

    public var proto: Trellis_V1_WeightRule {
        switch self {
        case .downstream: .downstream
        case .upstream: .upstream
        case .absolute: .absolute
        }
    }
}

/// The weight each task instance of a run is ordered by: a task's own
/// `priority_weight`, plus its relatives' as its `weight_rule` says (each
/// relative counted once, however many paths lead to it; a relative's own
/// weight, not its effective one, as Airflow's `priority_weight_total`).
public enum PriorityWeights {
    /// One weight per task of `spec`, in the order of `spec.tasks`, clamped
    /// to the database's integer range. A spec whose graph cannot be built
    /// (never the case for a stored DAG) gets each task's own weight.
    public static func effective(_ spec: Trellis_V1_DagSpec) -> [Int] {
        let own = spec.tasks.map { Int($0.priorityWeight) }
        guard let graph = try? DagGraph(tasks: spec.tasks.map { (id: $0.taskID, upstream: $0.upstream) }),
              graph.count == spec.tasks.count else { return own }
        // DagGraph numbers tasks as `spec.tasks` lists them.
        var weights = own
        var seen = [Int](repeating: -1, count: graph.count)
        var stack: [Int] = []
        for (position, task) in spec.tasks.enumerated() {
            let rule = (try? WeightRule(task.weightRule)) ?? .downstream
            let edges: [[Int]]
            switch rule {
            case .absolute: continue
            case .downstream: edges = graph.downstream
            case .upstream: edges = graph.upstream
            }
            var total = own[position]
            seen[position] = position
            stack.append(contentsOf: edges[position])
            while let next = stack.popLast() {
                guard seen[next] != position else { continue }
                seen[next] = position
                total += own[next]
                stack.append(contentsOf: edges[next])
            }
            weights[position] = min(max(total, Int(Int32.min)), Int(Int32.max))
        }
        return weights
    }
}
