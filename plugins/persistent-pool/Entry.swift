// persistent-pool: an executor plugin that runs process tasks on long-running
// agents of one pool (a fixed worker set, like Celery's), written in Swift
// against the C ABI (plugins/c-sdk/include/trellis_executor_abi.h).
//
// It links no Swift module of Trellis's and not swift-protobuf: the host
// links those statically, and a second copy in the plugin would split every
// global. Messages go through the C SDK (protobuf-c); only the toolchain's
// dynamic libraries (stdlib, Synchronization, Foundation) are shared.
import AgentPool
import TrellisPluginKit
import TrellisPluginSDK

#if canImport(Glibc)
import Glibc
#endif

private let executorName = "persistent-pool"

/// The one exported symbol; returns the static table (a
/// `const trellis_executor_v1 *`).
@_cdecl("trellis_executor_entry_v1")
public func trellisExecutorEntryV1() -> UnsafeRawPointer {
    UnsafeRawPointer(executorTable)
}

nonisolated(unsafe) private let executorTable: UnsafeMutablePointer<trellis_executor_v1> = {
    let table = UnsafeMutablePointer<trellis_executor_v1>.allocate(capacity: 1)
    table.initialize(to: trellis_executor_v1(
        struct_size: MemoryLayout<trellis_executor_v1>.size,
        abi_major: UInt32(TRELLIS_EXECUTOR_ABI_MAJOR),
        abi_minor: UInt32(TRELLIS_EXECUTOR_ABI_MINOR),
        name: UnsafePointer(strdup(executorName)),
        version: UnsafePointer(strdup("1.0.0")),
        create: { host, config, length, error in createExecutor(host, config, length, error) },
        submit: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: PoolExecutor, bytes) in executor.submit(bytes) } },
        cancel: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: PoolExecutor, bytes) in executor.cancel(bytes) } },
        adopt: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: PoolExecutor, bytes) in executor.adopt(bytes) } },
        tick: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: PoolExecutor, bytes) in executor.tick(bytes) } },
        destroy: { instance in
            guard let instance else { return }
            let executor = Unmanaged<PoolExecutor>.fromOpaque(instance).takeRetainedValue()
            executor.stop()
        },
        free_error: { error in free(error) },
        agents_changed: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: PoolExecutor, bytes) in executor.agentsChanged(bytes) } }
    ))
    return table
}()

private func createExecutor(
    _ host: UnsafePointer<trellis_host_v1>?, _ config: UnsafePointer<UInt8>?, _ length: Int,
    _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> UnsafeMutableRawPointer? {
    PluginCreation.create(host, config, length, defaultName: executorName, error: error) { creation throws(SettingsError) in
        let name = creation.name
        let settings = try PoolSettings.parse(creation.settings, executor: name).get()
        let executor = PoolExecutor(name: name, settings: settings, host: PluginHost(creation.host))
        executor.log(TRELLIS_LOG_INFO, "ready: dispatching process tasks to agents of pool '\(settings.agentPool)' (adopt grace \(settings.adoptGraceSeconds) s)")
        return executor
    }
}
