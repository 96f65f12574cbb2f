import Foundation
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisWire

/// Conversions from the store's records to the client API's messages: one
/// place that decides how a row looks on the wire.
enum APIMapping {
    static func timestamp(_ date: Date) -> Trellis_V1_Timestamp {
        var timestamp = Trellis_V1_Timestamp()
        timestamp.unixMicros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        return timestamp
    }

    static func date(_ timestamp: Trellis_V1_Timestamp) -> Date {
        Date(timeIntervalSince1970: Double(timestamp.unixMicros) / 1_000_000)
    }

    static func runState(_ state: TrellisStore.DagRunState) -> Trellis_V1_DagRunState {
        switch state {
        case .queued: .queued
        case .running: .running
        case .success: .success
        case .failed: .failed
        }
    }

    /// nil for UNSPECIFIED (every state); throws for a value this build does not know.
    static func runState(_ state: Trellis_V1_DagRunState) throws(WireError) -> TrellisStore.DagRunState? {
        switch state {
        case .unspecified: nil
        case .queued: .queued
        case .running: .running
        case .success: .success
        case .failed: .failed
        case .UNRECOGNIZED(let value): throw WireError(.invalidArgument, "state \(value) is not a run state (queued, running, success, failed)")
        }
    }

    static func run(_ record: DagRunRecord, counts: [TaskState: Int]) -> Trellis_V1_DagRun {
        var run = Trellis_V1_DagRun()
        run.dagID = record.dagID
        run.runID = record.runID
        run.state = runState(record.state)
        run.runType = record.runType.rawValue
        run.logicalDate = timestamp(record.logicalDate)
        if let start = record.dataIntervalStart { run.dataIntervalStart = timestamp(start) }
        if let end = record.dataIntervalEnd { run.dataIntervalEnd = timestamp(end) }
        run.createdAt = timestamp(record.createdAt)
        if let start = record.startDate { run.startDate = timestamp(start) }
        if let end = record.endDate { run.endDate = timestamp(end) }
        run.confJson = record.conf
        run.dagVersion = Int32(record.dagVersion)
        run.taskCounts = Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, Int32($0.value)) })
        return run
    }

    /// One grid row; `upstream` from the run's DAG version, `defaultExecutor`
    /// for instances that name none.
    static func taskInstance(_ row: TaskGridRow, upstream: [String], defaultExecutor: String?) -> Trellis_V1_TaskInstance {
        let instance = row.instance
        var task = Trellis_V1_TaskInstance()
        task.taskID = instance.taskID
        task.state = instance.state.proto
        task.tryNumber = Int32(instance.tryNumber)
        task.maxTries = Int32(instance.maxTries)
        task.executor = instance.executor.isEmpty ? (defaultExecutor ?? "") : instance.executor
        task.pool = instance.pool
        task.queue = instance.queue
        if let start = instance.startDate { task.startDate = timestamp(start) }
        if let end = instance.endDate { task.endDate = timestamp(end) }
        if let retry = instance.nextRetryAt { task.nextRetryAt = timestamp(retry) }
        task.agentName = row.agentName ?? ""
        task.podName = row.podName ?? ""
        task.failureReason = row.failureReason ?? ""
        if let code = row.exitCode {
            var value = Trellis_V1_Int32Value()
            value.value = Int32(code)
            task.exitCode = value
        }
        task.upstream = upstream
        if [.none, .scheduled, .upForRetry].contains(instance.state),
           let reason = PoolAdvice.waitingReason(pool: instance.pool, poolSlots: instance.poolSlots, poolSize: row.poolSize) {
            task.waitingReason = reason
        }
        return task
    }

    /// The run's grid in the DAG's task order (instances of tasks the
    /// version does not have, if any, last).
    static func grid(_ rows: [TaskGridRow], spec: Trellis_V1_DagSpec, defaultExecutor: String?) -> [Trellis_V1_TaskInstance] {
        let order = Dictionary(spec.tasks.enumerated().map { ($0.element.taskID, $0.offset) }, uniquingKeysWith: { first, _ in first })
        let upstream = Dictionary(spec.tasks.map { ($0.taskID, $0.upstream) }, uniquingKeysWith: { first, _ in first })
        return rows
            .sorted { (order[$0.instance.taskID] ?? .max, $0.instance.taskID) < (order[$1.instance.taskID] ?? .max, $1.instance.taskID) }
            .map { taskInstance($0, upstream: upstream[$0.instance.taskID] ?? [], defaultExecutor: defaultExecutor) }
    }

    static func dagSummary(_ record: DagSummaryRecord) -> Trellis_V1_DagSummary {
        var summary = Trellis_V1_DagSummary()
        summary.dagID = record.dag.dagID
        summary.latestVersion = Int32(record.dag.latestVersion)
        summary.paused = record.dag.isPaused
        summary.schedule = record.spec.schedule
        summary.description_p = record.spec.description_p
        summary.tags = record.spec.tags
        summary.taskCount = Int32(record.spec.tasks.count)
        summary.updatedAt = timestamp(record.dag.updatedAt)
        if let state = record.lastRunState { summary.lastRunState = runState(state) }
        if let date = record.lastRunLogicalDate { summary.lastRunLogicalDate = timestamp(date) }
        return summary
    }

    static func pool(_ record: PoolRecord) -> Trellis_V1_Pool {
        var pool = Trellis_V1_Pool()
        pool.name = record.name
        pool.slots = Int32(clamping: record.slots)
        pool.description_p = record.description
        pool.queuedSlots = Int32(clamping: record.queuedSlots)
        pool.runningSlots = Int32(clamping: record.runningSlots)
        pool.openSlots = Int32(clamping: record.openSlots)
        pool.scheduledSlots = Int32(clamping: record.scheduledSlots)
        return pool
    }

    static func token(_ record: APITokenRecord) -> Trellis_V1_ApiToken {
        var token = Trellis_V1_ApiToken()
        token.name = record.name
        token.role = record.role.rawValue
        token.createdAt = timestamp(record.createdAt)
        if let used = record.lastUsedAt { token.lastUsedAt = timestamp(used) }
        if let revoked = record.revokedAt { token.revokedAt = timestamp(revoked) }
        return token
    }

    /// An agent's labels (a JSON object) as strings; non-string values keep
    /// their JSON text.
    static func labels(_ json: String) -> [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { return [:] }
        var labels: [String: String] = [:]
        for (key, value) in object {
            if let text = value as? String {
                labels[key] = text
            } else if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
                labels[key] = String(decoding: data, as: UTF8.self)
            }
        }
        return labels
    }
}
