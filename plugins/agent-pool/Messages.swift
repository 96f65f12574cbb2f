import TrellisPluginKit
import TrellisPluginSDK

#if canImport(Glibc)
import Glibc
#endif

/// The messages this plugin reads and writes. executor.proto messages go
/// through the C SDK (protobuf-c); the two agent.proto requests are encoded
/// here by hand, because the C SDK compiles only executor.proto and what it
/// imports (protoc-c cannot compile agent.proto's services: a method named
/// `Register` becomes a C member named `register`, a keyword).
enum Messages {
    static let string = PluginMessages.string

    // MARK: TaskAssignment

    /// Checks an assignment is a process task with a valid queue selector
    /// and prepares the StartTask request for it. `assignmentBytes` are the
    /// TaskAssignment's own bytes, embedded unchanged in the request.
    static func task(
        from assignment: UnsafePointer<Trellis__V1__TaskAssignment>, bytes assignmentBytes: UnsafeRawBufferPointer, executor: String
    ) -> Result<PendingTask, SelectorError> {
        let value = assignment.pointee
        guard let attempt = value.attempt, !string(attempt.pointee.attempt_id).isEmpty else {
            return .failure(SelectorError("\(executor): the assignment names no attempt (TaskAssignment.attempt.attempt_id is empty)"))
        }
        let dag = string(value.dag_id)
        let taskID = string(value.task_id)
        let described = "task '\(taskID)' of DAG '\(dag)'"
        guard let task = value.task else {
            return .failure(SelectorError("\(executor): the assignment of \(described) carries no task spec"))
        }
        let spec = task.pointee
        if spec.spec_case == TRELLIS__V1__TASK_SPEC__SPEC_POD {
            return .failure(SelectorError("\(executor) runs process tasks only: \(described) is a pod task (give it a process command, or run it with executor pod-per-task)"))
        }
        guard spec.spec_case == TRELLIS__V1__TASK_SPEC__SPEC_PROCESS, let process = spec.process else {
            return .failure(SelectorError("\(executor) runs process tasks only: \(described) has no process command"))
        }
        let command = process.pointee
        guard command.n_command > 0, let argv = command.command, !string(argv[0]).isEmpty else {
            return .failure(SelectorError("\(executor) runs process tasks only: \(described) has an empty process command"))
        }
        let queueText = string(command.queue)
        let selector: QueueSelector
        switch QueueSelector.parse(queueText) {
        case .success(let parsed): selector = parsed
        case .failure(let problem):
            return .failure(SelectorError("\(executor): \(described) has a malformed queue selector \"\(queueText)\": \(problem.message)"))
        }
        return .success(PendingTask(
            attemptID: string(attempt.pointee.attempt_id),
            fencingToken: attempt.pointee.fencing_token,
            name: "\(dag).\(taskID)",
            selector: selector,
            startRequest: AgentWire.startTaskRequest(assignment: assignmentBytes, executor: executor)
        ))
    }

    /// The bytes of an assignment decoded earlier (AdoptRequest's).
    static func pack(_ assignment: UnsafePointer<Trellis__V1__TaskAssignment>) -> [UInt8] {
        let size = trellis__v1__task_assignment__get_packed_size(assignment)
        var bytes = [UInt8](repeating: 0, count: size)
        bytes.withUnsafeMutableBufferPointer { _ = trellis__v1__task_assignment__pack(assignment, $0.baseAddress) }
        return bytes
    }

    static func packAttemptRef(attemptID: String, fencingToken: Int64) -> [UInt8] {
        attemptID.withCString { id in
            var ref = Trellis__V1__AttemptRef()
            trellis__v1__attempt_ref__init(&ref)
            ref.attempt_id = UnsafeMutablePointer(mutating: id)
            ref.fencing_token = fencingToken
            let size = trellis__v1__attempt_ref__get_packed_size(&ref)
            var bytes = [UInt8](repeating: 0, count: size)
            bytes.withUnsafeMutableBufferPointer { _ = trellis__v1__attempt_ref__pack(&ref, $0.baseAddress) }
            return bytes
        }
    }

    // MARK: AgentsUpdate

    static func agents(from update: UnsafePointer<Trellis__V1__AgentsUpdate>) -> [AgentSnapshot] {
        let value = update.pointee
        var agents: [AgentSnapshot] = []
        agents.reserveCapacity(value.n_agents)
        for index in 0..<value.n_agents {
            guard let agent = value.agents?[index]?.pointee else { continue }
            var labels: [String: String] = [:]
            for label in 0..<agent.n_labels {
                guard let entry = agent.labels?[label]?.pointee else { continue }
                labels[string(entry.key)] = string(entry.value)
            }
            var running = Set<String>()
            for attempt in 0..<agent.n_running_attempt_ids {
                running.insert(string(agent.running_attempt_ids?[attempt]))
            }
            agents.append(AgentSnapshot(
                name: string(agent.name), pool: string(agent.pool), labels: labels,
                slots: Int(agent.slots), freeSlots: Int(agent.free_slots), draining: agent.draining != 0, running: running
            ))
        }
        return agents
    }
}

extension FinishedEvent {
    /// Cancelled before an agent had it (the agent reports the rest).
    static func cancelled(_ attemptID: String, _ fencingToken: Int64, reason: String) -> FinishedEvent {
        .cancelled(attemptID, fencingToken, reason: "Cancelled", message: reason.isEmpty ? "cancelled before it reached an agent" : reason)
    }
}

/// The AgentWorker requests (service in agent.proto; the messages are
/// executor.proto's, in the C SDK). CancelTask goes through protobuf-c;
/// StartTask
/// splices the assignment's bytes, as the host gave them, into field 1
/// instead of decoding and re-encoding them; the tests decode every
/// request with the generated Swift types, so a drift fails there.
enum AgentWire {
    static let startTask = "/trellis.v1.AgentWorker/StartTask"
    static let cancelTask = "/trellis.v1.AgentWorker/CancelTask"

    /// StartTaskRequest { TaskAssignment assignment = 1; string executor = 2; }
    static func startTaskRequest(assignment: UnsafeRawBufferPointer, executor: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(assignment.count + executor.utf8.count + 12)
        appendLengthDelimited(field: 1, assignment, to: &bytes)
        appendLengthDelimited(field: 2, Array(executor.utf8), to: &bytes)
        return bytes
    }

    /// The bytes of a CancelTaskRequest (C SDK).
    static func cancelTaskRequest(attemptID: String, fencingToken: Int64, reason: String) -> [UInt8] {
        attemptID.withCString { id in
            reason.withCString { why in
                var ref = Trellis__V1__AttemptRef()
                trellis__v1__attempt_ref__init(&ref)
                ref.attempt_id = UnsafeMutablePointer(mutating: id)
                ref.fencing_token = fencingToken
                return withUnsafeMutablePointer(to: &ref) { refPointer in
                    var request = Trellis__V1__CancelTaskRequest()
                    trellis__v1__cancel_task_request__init(&request)
                    request.attempt = refPointer
                    request.reason = UnsafeMutablePointer(mutating: why)
                    let size = trellis__v1__cancel_task_request__get_packed_size(&request)
                    var bytes = [UInt8](repeating: 0, count: size)
                    bytes.withUnsafeMutableBufferPointer { _ = trellis__v1__cancel_task_request__pack(&request, $0.baseAddress) }
                    return bytes
                }
            }
        }
    }

    /// CancelTaskResponse.was_running (C SDK); nil if undecodable.
    static func wasRunning(_ response: UnsafeRawBufferPointer) -> Bool? {
        guard let decoded = trellis__v1__cancel_task_response__unpack(
            nil, response.count, response.baseAddress?.assumingMemoryBound(to: UInt8.self)) else { return nil }
        defer { trellis__v1__cancel_task_response__free_unpacked(decoded, nil) }
        return decoded.pointee.was_running != 0
    }

    private static func appendLengthDelimited(field: UInt64, _ payload: some Collection<UInt8>, to bytes: inout [UInt8]) {
        appendVarint(field << 3 | 2, to: &bytes)
        appendVarint(UInt64(payload.count), to: &bytes)
        bytes.append(contentsOf: payload)
    }

    private static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }
}
