// scaled-pool: an executor plugin that runs process tasks on the agents of a
// worker Deployment (pool `scaled`) and sizes that Deployment by the queue
// (Celery workers autoscaled as KEDA would, but never removing a busy
// worker), written in Swift against the C ABI
// (plugins/c-sdk/include/trellis_executor_abi.h). Links AgentPool,
// TrellisKube, the plugin kit and the C SDK: no Swift module of the host's.
import AgentPool
import Foundation
import ScaledPool
import TrellisKube
import TrellisPluginKit
import TrellisPluginSDK

private let executorName = "scaled-pool"

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
        submit: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: ScaledPoolExecutor, bytes) in executor.pool.submit(bytes) } },
        cancel: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: ScaledPoolExecutor, bytes) in executor.pool.cancel(bytes) } },
        adopt: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: ScaledPoolExecutor, bytes) in executor.pool.adopt(bytes) } },
        tick: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: ScaledPoolExecutor, bytes) in executor.tick(bytes) } },
        destroy: { instance in
            guard let instance else { return }
            Unmanaged<ScaledPoolExecutor>.fromOpaque(instance).takeRetainedValue().pool.stop()
        },
        free_error: { error in free(error) },
        agents_changed: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: ScaledPoolExecutor, bytes) in executor.pool.agentsChanged(bytes) } }
    ))
    return table
}()

private func createExecutor(
    _ host: UnsafePointer<trellis_host_v1>?, _ config: UnsafePointer<UInt8>?, _ length: Int,
    _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> UnsafeMutableRawPointer? {
    PluginCreation.create(host, config, length, defaultName: executorName, error: error) { creation throws(SettingsError) in
        let name = creation.name
        let object = creation.settings
        let poolSettings = try PoolSettings.parse(object, executor: name, defaults: PoolSettings(agentPool: "scaled"), otherKeys: ScalerSettings.keys).get()
        let scaler = try ScalerSettings.parse(object, executor: name).get()

        let pluginHost = PluginHost(creation.host)
        var client: KubeClient?
        var namespace = scaler.namespace.isEmpty ? "default" : scaler.namespace
        if scaler.autoscale {
            let endpoint: KubeEndpoint
            do throws(KubeError) {
                endpoint = try KubeEndpoint.forSettings(
                    apiServer: scaler.apiServer, tokenFile: scaler.tokenFile, kubeconfig: scaler.kubeconfig, context: scaler.context)
                var options = KubeClient.Options()
                options.userAgent = "trellis-\(name)/1.0.0"
                client = try KubeClient(endpoint: endpoint, options: options)
            } catch {
                throw SettingsError("\(name): cannot reach Kubernetes to size deployment \(scaler.deployment): \(error.description) (set api_server, kubeconfig or context, or autoscale: false to leave sizing to KEDA)")
            }
            if scaler.namespace.isEmpty { namespace = endpoint.namespace ?? "default" }
        }
        let pool = PoolExecutor(name: name, settings: poolSettings, host: pluginHost)
        let executor = ScaledPoolExecutor(pool: pool, scaler: scaler, client: client, namespace: namespace)
        if scaler.autoscale {
            pool.log(TRELLIS_LOG_INFO, "ready: dispatching to agents of pool '\(poolSettings.agentPool)' and sizing deployment \(namespace)/\(scaler.deployment) between \(scaler.minReplicas) and \(scaler.maxReplicas) replicas, \(scaler.tasksPerWorker) tasks a worker, polled every \(scaler.pollingIntervalSeconds) s, scale-in after \(scaler.cooldownSeconds) s")
        } else {
            pool.log(TRELLIS_LOG_INFO, "ready: dispatching to agents of pool '\(poolSettings.agentPool)'; autoscale is off (the deployment's size is left to KEDA or you)")
        }
        return executor
    }
}
