import Foundation
import Synchronization
import SwiftProtobuf
import TrellisPluginABI
import TrellisProto

/// One created executor: a plugin library's instance plus the host table it
/// was given. Calls into the plugin are serialized, as the ABI promises.
final class ExecutorPluginInstance: @unchecked Sendable {
    let library: ExecutorPluginLibrary
    private let callbacks: HostCallbacks
    private let hostTable: UnsafeMutablePointer<trellis_host_v1>
    /// Guards the plugin's instance pointer; nil once destroyed.
    private let state: Mutex<UnsafeMutableRawPointer?>

    init(library: ExecutorPluginLibrary, config: Trellis_V1_ExecutorConfig, callbacks: HostCallbacks) throws(PluginLoadError) {
        let bytes: [UInt8]
        do {
            bytes = try config.serializedBytes()
        } catch {
            throw PluginLoadError(path: library.path, reason: "cannot encode its configuration: \(error)")
        }
        // The table must outlive the instance: plugins keep the pointer.
        let table = UnsafeMutablePointer<trellis_host_v1>.allocate(capacity: 1)
        table.initialize(to: trellis_host_v1(
            struct_size: MemoryLayout<trellis_host_v1>.size,
            ctx: Unmanaged.passUnretained(callbacks).toOpaque(),
            emit_event: hostEmitEvent,
            call_agent: hostCallAgent,
            log: hostLog
        ))
        var error: UnsafeMutablePointer<CChar>?
        let created = bytes.withUnsafeBufferPointer { library.table.pointee.create!(table, $0.baseAddress, $0.count, &error) }
        guard let created else {
            let reason = Self.take(error, library: library) ?? "create returned NULL without a reason"
            table.deallocate()
            throw PluginLoadError(path: library.path, reason: "executor '\(library.name)' failed to start: \(reason)")
        }
        self.library = library
        self.callbacks = callbacks
        self.hostTable = table
        self.state = Mutex(created)
    }

    /// Calls one of the plugin's message-taking functions.
    func call(
        _ function: KeyPath<trellis_executor_v1, (@convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>?, Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32)?>,
        _ message: some SwiftProtobuf.Message
    ) throws(ExecutorHostError) {
        let bytes: [UInt8]
        do {
            bytes = try message.serializedBytes()
        } catch {
            throw ExecutorHostError(.pluginRefused, executor: library.name, "cannot encode \(type(of: message)): \(error)")
        }
        let library = library
        let outcome: (status: Int32, error: String?)? = state.withLock { instance in
            guard let instance, let function = library.table.pointee[keyPath: function] else { return nil }
            var error: UnsafeMutablePointer<CChar>?
            let status = bytes.withUnsafeBufferPointer { function(instance, $0.baseAddress, $0.count, &error) }
            return (status, Self.take(error, library: library))
        }
        guard let outcome else {
            throw ExecutorHostError(.executorStopped, executor: library.name, "the executor has been shut down")
        }
        guard outcome.status == TRELLIS_OK else {
            throw ExecutorHostError(.pluginRefused, executor: library.name, outcome.error ?? "failed with status \(outcome.status)", status: outcome.status)
        }
    }

    /// Stops the plugin instance; no callbacks arrive after this returns.
    func destroy() {
        let library = library
        let destroyed: Bool = state.withLock { instance in
            guard let current = instance else { return false }
            library.table.pointee.destroy!(current)
            instance = nil
            return true
        }
        if destroyed { hostTable.deallocate() }
    }

    deinit { destroy() }

    /// Copies and frees an error string the plugin returned.
    private static func take(_ error: UnsafeMutablePointer<CChar>?, library: ExecutorPluginLibrary) -> String? {
        guard let error else { return nil }
        defer { library.table.pointee.free_error!(error) }
        return String(cString: error)
    }
}

/// What the host's C callbacks reach through their `ctx`: the executor's
/// name, where its events go, and how it logs and calls agents.
final class HostCallbacks: Sendable {
    let executor: String
    let events: @Sendable (ExecutorEventRecord) -> Void
    let log: @Sendable (PluginLogLevel, String) -> Void
    let agents: (any AgentCalling)?

    init(
        executor: String,
        events: @escaping @Sendable (ExecutorEventRecord) -> Void,
        log: @escaping @Sendable (PluginLogLevel, String) -> Void,
        agents: (any AgentCalling)?
    ) {
        self.executor = executor
        self.events = events
        self.log = log
        self.agents = agents
    }

    static func from(_ ctx: UnsafeMutableRawPointer?) -> HostCallbacks {
        Unmanaged<HostCallbacks>.fromOpaque(ctx!).takeUnretainedValue()
    }
}

private let hostEmitEvent: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<UInt8>?, Int) -> Int32 = { ctx, bytes, length in
    let callbacks = HostCallbacks.from(ctx)
    let buffer = UnsafeRawBufferPointer(start: bytes, count: bytes == nil ? 0 : length)
    guard let event = try? Trellis_V1_ExecutorEvent(serializedBytes: Array(buffer)), event.hasAttempt, event.event != nil else {
        callbacks.log(.error, "emitted \(length) bytes that are not a trellis.v1.ExecutorEvent with an attempt and an event; ignored")
        return TRELLIS_ERROR_INVALID_ARGUMENT
    }
    callbacks.events(ExecutorEventRecord(executor: callbacks.executor, event: event))
    return TRELLIS_OK
}

private let hostLog: @convention(c) (UnsafeMutableRawPointer?, Int32, UnsafePointer<CChar>?) -> Void = { ctx, level, message in
    let callbacks = HostCallbacks.from(ctx)
    callbacks.log(PluginLogLevel(rawValue: level) ?? .info, message.map { String(cString: $0) } ?? "")
}

private let hostCallAgent: @convention(c) (
    UnsafeMutableRawPointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafePointer<UInt8>?, Int,
    trellis_agent_call_completion?, UnsafeMutableRawPointer?
) -> Int32 = { ctx, agent, method, payload, length, completion, completionContext in
    let callbacks = HostCallbacks.from(ctx)
    guard let agent, let method, let completion else { return TRELLIS_ERROR_INVALID_ARGUMENT }
    guard let agents = callbacks.agents else {
        callbacks.log(.error, "called agent \(String(cString: agent)), but this control plane has no agent connections")
        return TRELLIS_ERROR_UNAVAILABLE
    }
    let request = AgentCallRequest(
        agent: String(cString: agent), method: String(cString: method),
        payload: Array(UnsafeRawBufferPointer(start: payload, count: payload == nil ? 0 : length))
    )
    let reply = CompletionHandle(completion: completion, context: completionContext)
    Task {
        let result = await agents.call(request)
        reply.complete(result)
    }
    return TRELLIS_OK
}

/// A plugin's completion callback and its context, carried to the task that
/// finishes the agent call.
private struct CompletionHandle: @unchecked Sendable {
    let completion: trellis_agent_call_completion
    let context: UnsafeMutableRawPointer?

    func complete(_ result: AgentCallResult) {
        result.message.withCString { message in
            result.payload.withUnsafeBufferPointer { payload in
                completion(context, result.status, message, payload.baseAddress, payload.count)
            }
        }
    }
}
