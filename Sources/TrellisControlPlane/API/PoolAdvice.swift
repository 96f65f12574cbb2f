import TrellisProto
import TrellisStore

/// What users are told about pools that keep tasks from running: the
/// `SubmitDag` warnings and a waiting instance's `waiting_reason`. A task
/// whose pool does not exist, or is smaller than its `pool_slots`, is never
/// claimed (as in Airflow); these texts say so and how to fix it.
enum PoolAdvice {
    /// The command that creates or grows `pool`: `trellis pools set NAME SLOTS`.
    static func fix(_ pool: String, slots: Int? = nil) -> String {
        "`trellis pools set \(pool) \(slots.map(String.init) ?? "SLOTS")`"
    }

    /// Why an instance that has not been queued yet cannot be: nil when its
    /// pool exists and is large enough.
    static func waitingReason(pool: String, poolSlots: Int, poolSize: Int?) -> String? {
        guard let poolSize else { return "pool '\(pool)' does not exist: create it with \(fix(pool))" }
        guard poolSize != PoolRecord.unlimited, poolSize < poolSlots else { return nil }
        return "needs \(poolSlots) slots of pool '\(pool)', which has \(poolSize): \(fix(pool, slots: poolSlots))"
    }

    /// One warning per pool the tasks name that does not exist or has fewer
    /// slots than a task needs, in the order the pools first appear.
    /// `pools` maps the existing pools to their slots (-1: unlimited).
    static func submissionWarnings(_ tasks: [Trellis_V1_TaskSpec], pools: [String: Int]) -> [String] {
        var order: [String] = []
        var blocked: [String: [Trellis_V1_TaskSpec]] = [:]
        for task in tasks {
            let need = Int(task.poolSlots)
            if let size = pools[task.pool], size == PoolRecord.unlimited || size >= need { continue }
            if blocked[task.pool] == nil { order.append(task.pool) }
            blocked[task.pool, default: []].append(task)
        }
        return order.map { pool in
            let waiting = blocked[pool] ?? []
            guard let size = pools[pool] else {
                let ids = waiting.map(\.taskID)
                return "pool '\(pool)' does not exist, so \(taskList(ids)) will wait until it is created: \(fix(pool))"
            }
            let needs = waiting.map { "\($0.taskID) (\($0.poolSlots))" }
            let largest = waiting.map { Int($0.poolSlots) }.max() ?? size
            return "pool '\(pool)' has \(size) slot\(size == 1 ? "" : "s"), fewer than \(taskList(needs)) "
                + "need\(waiting.count == 1 ? "s" : ""), so \(waiting.count == 1 ? "it" : "they") will wait until it grows: \(fix(pool, slots: largest))"
        }
    }

    /// `task a`, `tasks a, b, c`, `tasks a, b, c, d, e and 3 more`.
    private static func taskList(_ items: [String]) -> String {
        let shown = items.prefix(5).joined(separator: ", ")
        let more = items.count > 5 ? " and \(items.count - 5) more" : ""
        return (items.count == 1 ? "task " : "tasks ") + shown + more
    }
}
