public import TrellisPluginSDK
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The host's callbacks for one plugin instance, guarded so none is made
/// after `stop()` returns (the ABI's promise to the host at destroy): every
/// call counts itself in and out, and `stop()` waits for those in progress.
/// Shared by the Swift executor plugins; never linked by the host.
public final class PluginHost: @unchecked Sendable {
    private let host: UnsafePointer<trellis_host_v1>
    private let gate = Mutex<(stopped: Bool, active: Int)>((false, 0))

    public init(_ host: UnsafePointer<trellis_host_v1>) {
        self.host = host
    }

    /// Runs `body` with the host table unless the instance stopped.
    public func withHost<T>(_ body: (trellis_host_v1) -> T) -> T? {
        let entered = gate.withLock { gate -> Bool in
            if gate.stopped { return false }
            gate.active += 1
            return true
        }
        guard entered else { return nil }
        defer { gate.withLock { $0.active -= 1 } }
        return body(host.pointee)
    }

    public var isStopped: Bool { gate.withLock { $0.stopped } }

    /// No host calls after this returns.
    public func stop() {
        gate.withLock { $0.stopped = true }
        while gate.withLock({ $0.active }) > 0 { usleep(100) }
    }

    /// Hands an ExecutorEvent's bytes to the host; the host's status.
    @discardableResult
    public func emit(_ event: [UInt8]) -> Int32? {
        withHost { host in event.withUnsafeBufferPointer { host.emit_event(host.ctx, $0.baseAddress, $0.count) } }
    }

    public func log(_ level: Int32, _ message: String) {
        _ = withHost { host in message.withCString { host.log(host.ctx, level, $0) } }
    }

    public func callAgent(
        _ agent: String, _ method: String, _ payload: [UInt8], completion: trellis_agent_call_completion,
        context: UnsafeMutableRawPointer
    ) -> Int32 {
        withHost { host in
            agent.withCString { agent in
                method.withCString { method in
                    payload.withUnsafeBufferPointer { payload in
                        host.call_agent(host.ctx, agent, method, payload.baseAddress, payload.count, completion, context)
                    }
                }
            }
        } ?? TRELLIS_ERROR_UNAVAILABLE
    }
}

/// An error status and message for the host.
public struct CallError: Error, Sendable {
    public var status: Int32
    public var message: String

    public init(_ status: Int32, _ message: String) {
        self.status = status
        self.message = message
    }
}

/// Runs one message-taking ABI function on an instance made with
/// `Unmanaged.passRetained`, turning its result into the ABI's status and
/// error string.
public func callInstance<Instance: AnyObject>(
    _ instance: UnsafeMutableRawPointer?, _ bytes: UnsafePointer<UInt8>?, _ length: Int,
    _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, executor: String,
    _ body: (Instance, UnsafeRawBufferPointer) -> Result<Void, CallError>
) -> Int32 {
    guard let instance else {
        error?.pointee = strdup("\(executor): called without an instance")
        return TRELLIS_ERROR_INVALID_ARGUMENT
    }
    let object = Unmanaged<Instance>.fromOpaque(instance).takeUnretainedValue()
    switch body(object, UnsafeRawBufferPointer(start: bytes, count: bytes == nil ? 0 : length)) {
    case .success:
        return TRELLIS_OK
    case .failure(let failure):
        error?.pointee = strdup(failure.message)
        return failure.status
    }
}

/// What every plugin's `create` starts with: the host table checked and the
/// ExecutorConfig decoded into the registered name and the settings object.
public struct PluginCreation {
    public let host: UnsafePointer<trellis_host_v1>
    /// The name the executor is registered under (`defaultName` if none).
    public let name: String
    /// The executor's settings, a JSON object (empty if none were given).
    public let settings: [String: JSONValue]

    public static func begin(
        _ host: UnsafePointer<trellis_host_v1>?, _ config: UnsafePointer<UInt8>?, _ length: Int, defaultName: String
    ) -> Result<PluginCreation, SettingsError> {
        guard let host else { return .failure(SettingsError("\(defaultName): create was given no host table")) }
        guard host.pointee.struct_size >= MemoryLayout<trellis_host_v1>.size else {
            return .failure(SettingsError("\(defaultName): the host table is \(host.pointee.struct_size) bytes, smaller than the \(MemoryLayout<trellis_host_v1>.size) this plugin needs"))
        }
        guard let decoded = trellis__v1__executor_config__unpack(nil, length, config) else {
            return .failure(SettingsError("\(defaultName): the configuration is not a trellis.v1.ExecutorConfig"))
        }
        let json = PluginMessages.string(decoded.pointee.config_json)
        let registered = PluginMessages.string(decoded.pointee.name)
        trellis__v1__executor_config__free_unpacked(decoded, nil)
        let name = registered.isEmpty ? defaultName : registered
        return JSONValue.settingsObject(json, executor: name).map { PluginCreation(host: host, name: name, settings: $0) }
    }

    /// A plugin's whole `create`: `begin`, then `body` makes the executor
    /// (retained for the host); any problem — from `begin` or thrown by
    /// `body` — goes to the host as `*error`, with nil returned.
    public static func create(
        _ host: UnsafePointer<trellis_host_v1>?, _ config: UnsafePointer<UInt8>?, _ length: Int, defaultName: String,
        error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
        _ body: (PluginCreation) throws(SettingsError) -> AnyObject
    ) -> UnsafeMutableRawPointer? {
        do throws(SettingsError) {
            let executor = try body(try begin(host, config, length, defaultName: defaultName).get())
            return Unmanaged.passRetained(executor).toOpaque()
        } catch let problem {
            return fail(problem.message, error)
        }
    }

    /// Sets `*error` for the host; returns nil for `create` to return.
    public static func fail(_ message: String, _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> UnsafeMutableRawPointer? {
        error?.pointee = strdup(message)
        return nil
    }
}
