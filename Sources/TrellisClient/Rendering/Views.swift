public import Foundation
public import TrellisProto
import SwiftProtobuf

/// The documents (`-o json|yaml`) and tables of every message the reading
/// verbs print. Field names are the proto JSON names (snake_case); states
/// are Airflow's names; instants are ISO 8601 in UTC; absent values are null.
public enum Views {
    static func time(_ timestamp: Trellis_V1_Timestamp, present: Bool) -> Document {
        present ? .string(Formatting.iso(Formatting.date(timestamp)!)) : .null
    }

    // MARK: DAGs

    public static func document(_ dag: Trellis_V1_DagSummary) -> Document {
        .object([
            "dag_id": .string(dag.dagID),
            "latest_version": .int(dag.latestVersion),
            "paused": .bool(dag.paused),
            "schedule": .string(dag.schedule),
            "description": .string(dag.description_p),
            "tags": .strings(dag.tags),
            "task_count": .int(dag.taskCount),
            "updated_at": time(dag.updatedAt, present: dag.hasUpdatedAt),
            "last_run_state": dag.lastRunState == .unspecified ? .null : .string(Formatting.name(dag.lastRunState)),
            "last_run_logical_date": time(dag.lastRunLogicalDate, present: dag.hasLastRunLogicalDate),
        ])
    }

    public static func document(_ dags: Trellis_V1_ListDagsResponse) -> Document {
        .object(["dags": .list(dags.dags.map(document))])
    }

    public static func table(_ dags: Trellis_V1_ListDagsResponse) -> Table {
        var table = Table([
            .init("DAG", minimumWidth: 10), .init("SCHEDULE", minimumWidth: 8), .init("PAUSED"),
            .init("TASKS", rightAligned: true), .init("VERSION", rightAligned: true),
            .init("LAST RUN", minimumWidth: 8), .init("LOGICAL DATE", minimumWidth: 19),
        ])
        for dag in dags.dags {
            table.append([
                .init(dag.dagID), .init(dag.schedule.isEmpty ? "-" : dag.schedule),
                dag.paused ? .init("yes", .waiting) : .init("no"),
                .init("\(dag.taskCount)"), .init("\(dag.latestVersion)"),
                dag.lastRunState == .unspecified
                    ? .init("-") : .init(Formatting.name(dag.lastRunState), Formatting.style(dag.lastRunState)),
                .init(dag.hasLastRunLogicalDate ? Formatting.shortDate(Formatting.date(dag.lastRunLogicalDate)) : "-"),
            ])
        }
        return table
    }

    /// `dags show`: the summary, the version and the whole spec (the spec
    /// in swift-protobuf's JSON mapping with proto field names).
    public static func document(_ dag: Trellis_V1_GetDagResponse) -> Document {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        let spec = (try? dag.spec.jsonString(options: options)).flatMap { Document(json: $0) } ?? .null
        return .object(["dag": document(dag.dag), "version": .int(dag.version), "spec": spec])
    }

    /// `dags show` as text: a few header lines and the task tree.
    public static func text(_ dag: Trellis_V1_GetDagResponse, terminal: Terminal = .plain) -> [String] {
        var lines: [String] = []
        let spec = dag.spec
        lines.append("DAG \(Style.bold.apply(spec.dagID, colour: terminal.colour)) (version \(dag.version)\(dag.dag.paused ? ", paused" : ""))")
        if !spec.description_p.isEmpty { lines.append("  \(spec.description_p)") }
        lines.append("  schedule: \(spec.schedule.isEmpty ? "none (manual runs only)" : "\(spec.schedule) (\(spec.timezone))")")
        if !spec.tags.isEmpty { lines.append("  tags: \(spec.tags.joined(separator: ", "))") }
        lines.append("  tasks: \(spec.tasks.count)")
        lines.append("")
        lines += DagTree(spec).render(width: terminal.width)
        return lines
    }

    // MARK: Runs

    public static func document(_ run: Trellis_V1_DagRun) -> Document {
        .object([
            "dag_id": .string(run.dagID),
            "run_id": .string(run.runID),
            "state": .string(Formatting.name(run.state)),
            "run_type": .string(run.runType),
            "logical_date": time(run.logicalDate, present: run.hasLogicalDate),
            "data_interval_start": time(run.dataIntervalStart, present: run.hasDataIntervalStart),
            "data_interval_end": time(run.dataIntervalEnd, present: run.hasDataIntervalEnd),
            "created_at": time(run.createdAt, present: run.hasCreatedAt),
            "start_date": time(run.startDate, present: run.hasStartDate),
            "end_date": time(run.endDate, present: run.hasEndDate),
            "conf_json": .string(run.confJson),
            "dag_version": .int(run.dagVersion),
            "task_counts": .object(run.taskCounts.sorted { $0.key < $1.key }.map { .init($0.key, .int($0.value)) }),
        ])
    }

    public static func document(_ runs: Trellis_V1_ListRunsResponse) -> Document {
        .object(["runs": .list(runs.runs.map(document))])
    }

    public static func table(_ runs: Trellis_V1_ListRunsResponse, now: Date = Date()) -> Table {
        var table = Table([
            .init("DAG", minimumWidth: 8), .init("RUN", minimumWidth: 12), .init("STATE"),
            .init("LOGICAL DATE", minimumWidth: 19), .init("DURATION", rightAligned: true), .init("TASKS", rightAligned: true),
        ])
        for run in runs.runs {
            table.append([
                .init(run.dagID), .init(run.runID),
                .init(Formatting.name(run.state), Formatting.style(run.state)),
                .init(Formatting.shortDate(Formatting.date(run.hasLogicalDate ? run.logicalDate : nil))),
                .init(Formatting.duration(
                    from: Formatting.date(run.hasStartDate ? run.startDate : nil),
                    to: Formatting.date(run.hasEndDate ? run.endDate : nil), now: now)),
                .init(taskSummary(run.taskCounts)),
            ])
        }
        return table
    }

    /// `finished/total`, e.g. `3/5`.
    static func taskSummary(_ counts: [String: Int32]) -> String {
        let total = counts.values.reduce(0, +)
        let unfinished: Set<String> = ["none", "scheduled", "queued", "running", "up_for_retry"]
        let finished = counts.filter { !unfinished.contains($0.key) }.values.reduce(0, +)
        return "\(finished)/\(total)"
    }

    public static func document(_ task: Trellis_V1_TaskInstance) -> Document {
        var duration = Document.null
        if task.hasStartDate, task.hasEndDate, let start = Formatting.date(task.startDate), let end = Formatting.date(task.endDate) {
            duration = .int(Int64((end.timeIntervalSince(start) * 1000).rounded()))
        }
        return .object([
            "task_id": .string(task.taskID),
            "state": .string(Formatting.name(task.state)),
            "try_number": .int(task.tryNumber),
            "max_tries": .int(task.maxTries),
            "executor": .string(task.executor),
            "pool": .string(task.pool),
            "queue": .string(task.queue),
            "start_date": time(task.startDate, present: task.hasStartDate),
            "end_date": time(task.endDate, present: task.hasEndDate),
            "duration_ms": duration,
            "next_retry_at": time(task.nextRetryAt, present: task.hasNextRetryAt),
            "agent_name": .string(task.agentName),
            "pod_name": .string(task.podName),
            "failure_reason": .string(task.failureReason),
            "waiting_reason": .string(task.waitingReason),
            "exit_code": task.hasExitCode ? .int(task.exitCode.value) : .null,
            "upstream": .strings(task.upstream),
        ])
    }

    public static func document(_ run: Trellis_V1_GetRunResponse) -> Document {
        .object(["run": document(run.run), "tasks": .list(run.tasks.map(document))])
    }

    /// `runs show` as text: the run's line and its task grid.
    public static func text(_ run: Trellis_V1_GetRunResponse, terminal: Terminal = .plain, now: Date = Date()) -> [String] {
        let header = run.run
        let state = Style.bold.apply(Formatting.name(header.state), colour: false)
        var lines = [
            "Run \(header.dagID) \(header.runID): " + Formatting.style(header.state).apply(state, colour: terminal.colour),
            "  type \(header.runType.isEmpty ? "-" : header.runType), logical date \(Formatting.shortDate(Formatting.date(header.hasLogicalDate ? header.logicalDate : nil))), "
                + "duration \(Formatting.duration(from: Formatting.date(header.hasStartDate ? header.startDate : nil), to: Formatting.date(header.hasEndDate ? header.endDate : nil), now: now)), "
                + "DAG version \(header.dagVersion)",
        ]
        if !header.confJson.isEmpty, header.confJson != "{}" { lines.append("  conf \(header.confJson)") }
        lines = lines.map { truncate($0, to: terminal.width) }
        lines.append("")
        lines += grid(run.tasks, now: now).render(terminal)
        lines += waitingNotes(run.tasks, width: terminal.width)
        return lines
    }

    /// Below the grid, once per reason: the tasks that wait for it and the
    /// whole reason with its fix (the grid's REASON cell has only its
    /// first clause), wrapped to `width`.
    static func waitingNotes(_ tasks: [Trellis_V1_TaskInstance], width: Int) -> [String] {
        var reasons: [String] = []
        var waiting: [String: [String]] = [:]
        for task in tasks where !task.waitingReason.isEmpty {
            if waiting[task.waitingReason] == nil { reasons.append(task.waitingReason) }
            waiting[task.waitingReason, default: []].append(task.taskID)
        }
        guard !reasons.isEmpty else { return [] }
        var lines = [""]
        for reason in reasons {
            lines += wrap("waiting: " + (waiting[reason] ?? []).joined(separator: ", "), to: width, indent: "  ")
            let (what, fix) = split(reason)
            lines += wrap(what, to: width, indent: "    ", firstIndent: "  ")
            if let fix { lines += wrap(fix, to: width, indent: "    ", firstIndent: "  ") }
        }
        return lines
    }

    /// A waiting reason's first clause, for the grid: "pool 'etl' does not
    /// exist" of "pool 'etl' does not exist: create it with …".
    static func shortReason(_ reason: String) -> String {
        split(reason).what
    }

    /// What holds a task back, and what fixes it (after the first ": ").
    private static func split(_ reason: String) -> (what: String, fix: String?) {
        guard let colon = reason.range(of: ": ") else { return (reason, nil) }
        return (String(reason[..<colon.lowerBound]), String(reason[colon.upperBound...]))
    }

    /// The task grid: state, try, duration, executor, where it ran, why it failed.
    public static func grid(_ tasks: [Trellis_V1_TaskInstance], now: Date = Date()) -> Table {
        var table = Table([
            .init("TASK", minimumWidth: 12), .init("STATE", minimumWidth: 15), .init("TRY", minimumWidth: 3, rightAligned: true),
            .init("DURATION", rightAligned: true), .init("EXECUTOR", minimumWidth: 10), .init("WHERE", minimumWidth: 8),
            .init("REASON", minimumWidth: 10),
        ])
        for task in tasks {
            var reason = task.failureReason
            if task.hasExitCode, task.exitCode.value != 0, !reason.contains("exit") {
                reason = reason.isEmpty ? "exit code \(task.exitCode.value)" : "\(reason) (exit code \(task.exitCode.value))"
            }
            if task.state == .upForRetry, task.hasNextRetryAt {
                let wait = Formatting.date(task.nextRetryAt)!.timeIntervalSince(now)
                reason = (wait > 0 ? "retry in \(Formatting.duration(wait))" : "retry due") + (reason.isEmpty ? "" : "; \(reason)")
            }
            var style = Style.bad
            if !task.waitingReason.isEmpty {
                reason = shortReason(task.waitingReason) + (reason.isEmpty ? "" : "; \(reason)")
                style = .waiting
            }
            let place = !task.agentName.isEmpty ? task.agentName : (!task.podName.isEmpty ? task.podName : "-")
            table.append([
                .init(task.taskID),
                .init(Formatting.name(task.state), Formatting.style(task.state)),
                .init(task.tryNumber == 0 ? "-" : "\(task.tryNumber)/\(max(task.maxTries, task.tryNumber))"),
                .init(Formatting.duration(
                    from: Formatting.date(task.hasStartDate ? task.startDate : nil),
                    to: Formatting.date(task.hasEndDate ? task.endDate : nil), now: now)),
                .init(task.executor.isEmpty ? "-" : task.executor),
                .init(place),
                .init(reason, style),
            ])
        }
        return table
    }

    // MARK: Agents, executors, tokens, status

    public static func document(_ agents: Trellis_V1_ListAgentsResponse) -> Document {
        .object(["agents": .list(agents.agents.map { agent in
            .object([
                "name": .string(agent.name),
                "pool": .string(agent.pool),
                "node": .string(agent.node),
                "labels": .object(agent.labels.sorted { $0.key < $1.key }.map { .init($0.key, .string($0.value)) }),
                "slots": .int(agent.slots),
                "running": .int(agent.running),
                "connected": .bool(agent.connected),
                "draining": .bool(agent.draining),
                "version": .string(agent.version),
                "registered_at": time(agent.registeredAt, present: agent.hasRegisteredAt),
                "last_heartbeat_at": time(agent.lastHeartbeatAt, present: agent.hasLastHeartbeatAt),
            ])
        })])
    }

    public static func table(_ agents: Trellis_V1_ListAgentsResponse, now: Date = Date()) -> Table {
        var table = Table([
            .init("NAME", minimumWidth: 8), .init("POOL"), .init("STATUS"), .init("SLOTS", rightAligned: true),
            .init("RUNNING", rightAligned: true), .init("HEARTBEAT", rightAligned: true), .init("LABELS", minimumWidth: 6),
        ])
        for agent in agents.agents {
            let status: Table.Cell = !agent.connected ? .init("lost", .bad) : (agent.draining ? .init("draining", .waiting) : .init("ready", .good))
            let heartbeat = agent.hasLastHeartbeatAt
                ? Formatting.duration(now.timeIntervalSince(Formatting.date(agent.lastHeartbeatAt)!)) + " ago" : "-"
            table.append([
                .init(agent.name), .init(agent.pool.isEmpty ? "-" : agent.pool), status,
                .init("\(agent.slots)"), .init("\(agent.running)"), .init(heartbeat),
                .init(agent.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")),
            ])
        }
        return table
    }

    public static func document(_ executors: Trellis_V1_ListExecutorsResponse) -> Document {
        .object([
            "executors": .list(executors.executors.map { executor in
                .object([
                    "name": .string(executor.name), "version": .string(executor.version), "path": .string(executor.path),
                    "queued": .int(executor.queued), "running": .int(executor.running),
                ])
            }),
            "problems": .strings(executors.problems),
        ])
    }

    public static func table(_ executors: Trellis_V1_ListExecutorsResponse) -> Table {
        var table = Table([
            .init("NAME", minimumWidth: 8), .init("VERSION"), .init("QUEUED", rightAligned: true),
            .init("RUNNING", rightAligned: true), .init("PATH", minimumWidth: 10),
        ])
        for executor in executors.executors {
            table.append([
                .init(executor.name), .init(executor.version.isEmpty ? "-" : executor.version),
                .init("\(executor.queued)"), .init("\(executor.running)"), .init(executor.path),
            ])
        }
        return table
    }

    // MARK: Pools

    public static func document(_ pool: Trellis_V1_Pool) -> Document {
        .object([
            "name": .string(pool.name),
            "slots": .int(pool.slots),
            "description": .string(pool.description_p),
            "running_slots": .int(pool.runningSlots),
            "queued_slots": .int(pool.queuedSlots),
            "scheduled_slots": .int(pool.scheduledSlots),
            "open_slots": .int(pool.openSlots),
        ])
    }

    public static func document(_ pools: Trellis_V1_ListPoolsResponse) -> Document {
        .object(["pools": .list(pools.pools.map(document))])
    }

    /// Slots in use by state, then the slots free; a pool with tasks
    /// waiting and no slot open shows OPEN in the waiting colour.
    public static func table(_ pools: [Trellis_V1_Pool]) -> Table {
        var table = Table([
            .init("NAME", minimumWidth: 12), .init("SLOTS", rightAligned: true), .init("RUNNING", rightAligned: true),
            .init("QUEUED", rightAligned: true), .init("SCHEDULED", rightAligned: true), .init("OPEN", rightAligned: true),
            .init("DESCRIPTION", minimumWidth: 11),
        ])
        for pool in pools {
            // -1: unlimited (Airflow's), whose open slots the API gives as -1.
            let unlimited = pool.slots == -1
            let starved = !unlimited && pool.scheduledSlots > 0 && pool.openSlots <= 0
            table.append([
                .init(pool.name), .init(unlimited ? "unlimited" : "\(pool.slots)"), .init("\(pool.runningSlots)"), .init("\(pool.queuedSlots)"),
                .init("\(pool.scheduledSlots)"), .init(unlimited ? "unlimited" : "\(pool.openSlots)", starved ? .waiting : .plain),
                .init(pool.description_p),
            ])
        }
        return table
    }

    public static func document(_ token: Trellis_V1_ApiToken) -> Document {
        .object([
            "name": .string(token.name),
            "role": .string(token.role),
            "created_at": time(token.createdAt, present: token.hasCreatedAt),
            "last_used_at": time(token.lastUsedAt, present: token.hasLastUsedAt),
            "revoked_at": time(token.revokedAt, present: token.hasRevokedAt),
        ])
    }

    public static func document(_ tokens: Trellis_V1_ListTokensResponse) -> Document {
        .object(["tokens": .list(tokens.tokens.map(document))])
    }

    public static func table(_ tokens: Trellis_V1_ListTokensResponse) -> Table {
        var table = Table([
            .init("NAME", minimumWidth: 8), .init("ROLE"), .init("CREATED", minimumWidth: 10),
            .init("LAST USED", minimumWidth: 10), .init("REVOKED", minimumWidth: 7),
        ])
        for token in tokens.tokens {
            table.append([
                .init(token.name), .init(token.role),
                .init(Formatting.shortDate(Formatting.date(token.hasCreatedAt ? token.createdAt : nil))),
                .init(Formatting.shortDate(Formatting.date(token.hasLastUsedAt ? token.lastUsedAt : nil))),
                token.hasRevokedAt ? .init(Formatting.shortDate(Formatting.date(token.revokedAt)), .bad) : .init("-"),
            ])
        }
        return table
    }

    public static func document(_ status: Trellis_V1_ServerStatusResponse, address: String) -> Document {
        .object([
            "address": .string(address),
            "server_version": .string(status.serverVersion),
            "replica": .string(status.replica),
            "leader": .bool(status.leader),
            "started_at": time(status.startedAt, present: status.hasStartedAt),
            "schema_version": .int(status.schemaVersion),
            "connected_agents": .int(Int64(status.connectedAgents)),
            "connected_clients": .int(Int64(status.connectedClients)),
            "caller_role": .string(status.callerRole),
        ])
    }

    public static func text(_ status: Trellis_V1_ServerStatusResponse, address: String, now: Date = Date()) -> [String] {
        let started = status.hasStartedAt ? Formatting.date(status.startedAt) : nil
        return [
            // The server names itself ("trellisd 0.1.0").
            "\(status.serverVersion.hasPrefix("trellisd") ? status.serverVersion : "trellisd \(status.serverVersion)") at \(address)",
            "  replica:    \(status.replica)\(status.leader ? " (leader)" : " (standby)")",
            "  up:         \(started.map { Formatting.duration(now.timeIntervalSince($0)) + " (since \(Formatting.shortDate($0)) UTC)" } ?? "-")",
            "  schema:     version \(status.schemaVersion)",
            "  agents:     \(status.connectedAgents) connected",
            "  clients:    \(status.connectedClients) connected",
            "  your role:  \(status.callerRole)",
        ]
    }
}

extension Document {
    /// The document of a JSON text (object keys sorted); nil if it is not JSON.
    public init?(json: String) {
        guard let decoded = try? JSONDecoder().decode(JSONValue.self, from: Data(json.utf8)) else { return nil }
        self = decoded.document
    }
}

/// Decodes any JSON value, strictly typed (a JSON `true` is never a number).
private struct JSONValue: Decodable {
    let document: Document

    struct Key: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Swift.Decoder) throws {
        if let object = try? decoder.container(keyedBy: Key.self) {
            document = .object(try object.allKeys.map(\.stringValue).sorted().map {
                Document.Field($0, try object.decode(JSONValue.self, forKey: Key(stringValue: $0)).document)
            })
        } else if var list = try? decoder.unkeyedContainer() {
            var items: [Document] = []
            while !list.isAtEnd { items.append(try list.decode(JSONValue.self).document) }
            document = .list(items)
        } else {
            let value = try decoder.singleValueContainer()
            if value.decodeNil() {
                document = .null
            } else if let bool = try? value.decode(Bool.self) {
                document = .bool(bool)
            } else if let int = try? value.decode(Int64.self) {
                document = .int(int)
            } else if let double = try? value.decode(Double.self) {
                document = .double(double)
            } else {
                document = .string(try value.decode(String.self))
            }
        }
    }
}
