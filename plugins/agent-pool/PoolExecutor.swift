import Synchronization
public import TrellisPluginKit
import TrellisPluginSDK

#if canImport(Glibc)
import Glibc
#endif

/// One persistent-pool instance: PoolState behind a mutex, and the host's
/// callbacks. The host serializes calls into the instance, but agent call
/// completions arrive on host threads at any time (possibly inside
/// call_agent), so the state is only touched under the mutex and the host
/// is never called while it is held.
public final class PoolExecutor: @unchecked Sendable {
    public let name: String
    public let settings: PoolSettings
    /// The host's callbacks; none is made after `stop()` (completions may
    /// still arrive and find it stopped).
    private let host: PluginHost
    private let state: Mutex<PoolState>

    public init(name: String, settings: PoolSettings, host: PluginHost) {
        self.name = name
        self.settings = settings
        self.host = host
        self.state = Mutex(PoolState(settings: settings, executor: name))
    }

    // MARK: ABI functions

    public func submit(_ bytes: UnsafeRawBufferPointer) -> Result<Void, CallError> {
        guard let assignment = trellis__v1__task_assignment__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, "\(name): submit expects a trellis.v1.TaskAssignment"))
        }
        defer { trellis__v1__task_assignment__free_unpacked(assignment, nil) }
        let task: PendingTask
        switch Messages.task(from: assignment, bytes: bytes, executor: name) {
        case .success(let made): task = made
        case .failure(let problem): return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, problem.message))
        }
        let now = PluginMessages.nowMicros()
        _ = state.withLock { $0.submit(task, now: now) }
        pump()
        return .success(())
    }

    public func cancel(_ bytes: UnsafeRawBufferPointer) -> Result<Void, CallError> {
        guard let request = trellis__v1__cancel_request__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, "\(name): cancel expects a trellis.v1.CancelRequest"))
        }
        defer { trellis__v1__cancel_request__free_unpacked(request, nil) }
        guard let attempt = request.pointee.attempt, !Messages.string(attempt.pointee.attempt_id).isEmpty else {
            return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, "\(name): the cancel request names no attempt"))
        }
        let attemptID = Messages.string(attempt.pointee.attempt_id)
        let reason = Messages.string(request.pointee.reason)
        let action = state.withLock { $0.cancel(attemptID, fencingToken: attempt.pointee.fencing_token, reason: reason) }
        switch action {
        case .emit(let finished): emit(finished)
        case .cancelOnAgent(let agent, let id, let token, let reason): cancelOnAgent(agent, id, token, reason)
        case .deferred: break
        }
        return .success(())
    }

    public func adopt(_ bytes: UnsafeRawBufferPointer) -> Result<Void, CallError> {
        guard let request = trellis__v1__adopt_request__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, "\(name): adopt expects a trellis.v1.AdoptRequest"))
        }
        defer { trellis__v1__adopt_request__free_unpacked(request, nil) }
        let now = PluginMessages.nowMicros()
        var invalid: [FinishedEvent] = []
        var placed = 0, waiting = 0
        for index in 0..<request.pointee.n_attempts {
            guard let adopted = request.pointee.attempts?[index], let assignment = adopted.pointee.assignment,
                  let attempt = assignment.pointee.attempt else { continue }
            let attemptID = Messages.string(attempt.pointee.attempt_id)
            let agent = Messages.string(adopted.pointee.external_id)
            if !agent.isEmpty {
                state.withLock { $0.adoptPlaced(attemptID, fencingToken: attempt.pointee.fencing_token, agent: agent, now: now) }
                placed += 1
                continue
            }
            let bytes = Messages.pack(assignment)
            let made = bytes.withUnsafeBytes { Messages.task(from: assignment, bytes: $0, executor: name) }
            switch made {
            case .success(let task):
                state.withLock { $0.adoptUnplaced(task, now: now) }
                waiting += 1
            case .failure(let problem):
                invalid.append(.failed(attemptID, attempt.pointee.fencing_token, reason: "InvalidTask", message: problem.message))
            }
        }
        log(TRELLIS_LOG_INFO, "adopted \(placed) attempt(s) running on agents and \(waiting) not known to have reached one (held \(settings.adoptGraceSeconds) s for agents to report them)")
        for finished in invalid { emit(finished) }
        pump()
        return .success(())
    }

    public func tick(_ bytes: UnsafeRawBufferPointer) -> Result<Void, CallError> {
        guard let request = trellis__v1__tick_request__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, "\(name): tick expects a trellis.v1.TickRequest"))
        }
        let given = request.pointee.now?.pointee.unix_micros ?? 0
        trellis__v1__tick_request__free_unpacked(request, nil)
        let now = given > 0 ? given : PluginMessages.nowMicros()
        let warnings = state.withLock { $0.tick(now: now) }
        for warning in warnings { log(TRELLIS_LOG_WARNING, warning) }
        pump()
        return .success(())
    }

    public func agentsChanged(_ bytes: UnsafeRawBufferPointer) -> Result<Void, CallError> {
        guard let update = trellis__v1__agents_update__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, "\(name): agents_changed expects a trellis.v1.AgentsUpdate"))
        }
        let agents = Messages.agents(from: update)
        trellis__v1__agents_update__free_unpacked(update, nil)
        let now = PluginMessages.nowMicros()
        state.withLock { $0.replaceAgents(agents, now: now) }
        pump()
        return .success(())
    }

    /// No host calls after this returns; completions still in flight find
    /// the instance stopped and only release their context.
    public func stop() {
        host.stop()
    }

    // MARK: Cordons (scaled-pool)

    /// An agent of the pool, as the autoscaler sees it.
    public struct Worker: Sendable, Equatable {
        public var name: String
        public var busy: Bool
        public var draining: Bool
    }

    public func workers() -> [Worker] {
        state.withLock { state in
            state.poolAgents.map { Worker(name: $0.name, busy: state.isBusy($0.name), draining: $0.draining) }
        }
    }

    /// Stops dispatching to the named agents that are idle at this moment
    /// (under the same lock as dispatch, so none gets work after); returns
    /// those.
    public func cordon(_ names: [String]) -> [String] {
        state.withLock { $0.cordon(names) }
    }

    /// Dispatches to these agents again.
    public func uncordon(_ names: [String]) {
        state.withLock { $0.uncordon(names) }
        pump()
    }

    // MARK: Dispatching

    /// Sends StartTask for every queued task an agent can take now. One
    /// loop runs at a time: a caller that finds one running leaves its
    /// work to it (the state changed under the mutex before, so that loop
    /// sees it), which also bounds recursion when completions run inline.
    func pump() {
        let run = state.withLock { state -> Bool in
            if state.pumping { return false }
            state.pumping = true
            return true
        }
        guard run else { return }
        while let dispatch = state.withLock({ state -> Dispatch? in
            if let next = state.nextDispatch() { return next }
            state.pumping = false
            return nil
        }) {
            send(dispatch)
        }
    }

    private func send(_ dispatch: Dispatch) {
        let context = Unmanaged.passRetained(AgentCall(executor: self, kind: .start(attemptID: dispatch.attemptID, agent: dispatch.agent)))
        let status = callAgent(dispatch.agent, AgentWire.startTask, dispatch.request, completion: startCompletion, context: context.toOpaque())
        guard status != TRELLIS_OK else { return }
        // The call never started; its completion will not come.
        context.release()
        log(TRELLIS_LOG_WARNING, "could not call agent '\(dispatch.agent)' (status \(status)); the task stays queued")
        _ = state.withLock { $0.startRefusedForNow(dispatch.attemptID, agent: dispatch.agent) }
    }

    /// A StartTask call ended.
    fileprivate func startEnded(attemptID: String, agent: String, status: Int32, message: String) {
        let action: StartOutcomeAction
        switch status {
        case GRPCStatus.ok:
            action = state.withLock { $0.startAccepted(attemptID, agent: agent) }
        case GRPCStatus.resourceExhausted, GRPCStatus.failedPrecondition, GRPCStatus.unavailable:
            log(TRELLIS_LOG_DEBUG, "agent '\(agent)' cannot start attempt \(attemptID) now (status \(status): \(message)); requeued at the front")
            action = state.withLock { $0.startRefusedForNow(attemptID, agent: agent) }
        default:
            action = state.withLock { $0.startFailed(attemptID, agent: agent, status: status, message: message) }
        }
        switch action {
        case .nothing: break
        case .emit(let finished): emit(finished)
        case .cancelOnAgent(let agent, let id, let token, let reason): cancelOnAgent(agent, id, token, reason)
        }
        pump()
    }

    private func cancelOnAgent(_ agent: String, _ attemptID: String, _ fencingToken: Int64, _ reason: String) {
        let request = AgentWire.cancelTaskRequest(attemptID: attemptID, fencingToken: fencingToken, reason: reason)
        let context = Unmanaged.passRetained(AgentCall(executor: self, kind: .cancel(attemptID: attemptID, agent: agent)))
        let status = callAgent(agent, AgentWire.cancelTask, request, completion: cancelCompletion, context: context.toOpaque())
        if status != TRELLIS_OK {
            context.release()
            log(TRELLIS_LOG_WARNING, "could not ask agent '\(agent)' to cancel attempt \(attemptID) (status \(status)); the control plane reconciles it when the agent reports")
        }
    }

    /// A CancelTask call ended: the agent reports the finished event, or the
    /// control plane's reconciliation does when the agent is gone.
    fileprivate func cancelEnded(attemptID: String, agent: String, status: Int32, message: String, wasRunning: Bool?) {
        if status != GRPCStatus.ok {
            log(TRELLIS_LOG_WARNING, "agent '\(agent)' did not cancel attempt \(attemptID) (status \(status): \(message))")
        } else if wasRunning == false {
            log(TRELLIS_LOG_INFO, "agent '\(agent)' no longer ran attempt \(attemptID) when asked to cancel it")
        }
    }

    // MARK: Host calls

    private func callAgent(_ agent: String, _ method: String, _ payload: [UInt8], completion: trellis_agent_call_completion, context: UnsafeMutableRawPointer) -> Int32 {
        host.callAgent(agent, method, payload, completion: completion, context: context)
    }

    func emit(_ finished: FinishedEvent) {
        let status = host.emit(PluginMessages.finishedEvent(finished))
        if let status, status != TRELLIS_OK {
            log(TRELLIS_LOG_ERROR, "the host refused the finished event of attempt \(finished.attemptID) (status \(status))")
        }
    }

    public func log(_ level: Int32, _ message: String) {
        host.log(level, message)
    }
}

/// gRPC status codes agents answer with (agent.proto).
enum GRPCStatus {
    static let ok: Int32 = 0
    static let invalidArgument: Int32 = 3
    static let resourceExhausted: Int32 = 8
    static let failedPrecondition: Int32 = 9
    static let unavailable: Int32 = 14
}

/// The completion context of one agent call; retained until it completes.
private final class AgentCall {
    enum Kind {
        case start(attemptID: String, agent: String)
        case cancel(attemptID: String, agent: String)
    }

    let executor: PoolExecutor
    let kind: Kind

    init(executor: PoolExecutor, kind: Kind) {
        self.executor = executor
        self.kind = kind
    }
}

private let startCompletion: trellis_agent_call_completion = { context, status, message, _, _ in
    let call = Unmanaged<AgentCall>.fromOpaque(context!).takeRetainedValue()
    guard case .start(let attemptID, let agent) = call.kind else { return }
    call.executor.startEnded(attemptID: attemptID, agent: agent, status: status, message: Messages.string(UnsafeMutablePointer(mutating: message)))
}

private let cancelCompletion: trellis_agent_call_completion = { context, status, message, response, length in
    let call = Unmanaged<AgentCall>.fromOpaque(context!).takeRetainedValue()
    guard case .cancel(let attemptID, let agent) = call.kind else { return }
    let wasRunning = status == GRPCStatus.ok ? AgentWire.wasRunning(UnsafeRawBufferPointer(start: response, count: response == nil ? 0 : length)) : nil
    call.executor.cancelEnded(attemptID: attemptID, agent: agent, status: status, message: Messages.string(UnsafeMutablePointer(mutating: message)), wasRunning: wasRunning)
}
