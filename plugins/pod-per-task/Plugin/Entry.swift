// pod-per-task: an executor plugin that runs every task in its own
// Kubernetes Pod (Airflow's KubernetesPodOperator and KubernetesExecutor),
// written in Swift against the C ABI
// (plugins/c-sdk/include/trellis_executor_abi.h).
//
// It links TrellisKube (libcurl), the plugin kit and the C SDK, never a
// Swift module the host links: a second copy would split every global.
import Foundation
import PodPerTask
import TrellisKube
import TrellisPluginKit
import TrellisPluginSDK

private let executorName = "pod-per-task"

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
        submit: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: PodExecutor, bytes) in executor.submit(bytes) } },
        cancel: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: PodExecutor, bytes) in executor.cancel(bytes) } },
        adopt: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: PodExecutor, bytes) in executor.adopt(bytes) } },
        tick: { callInstance($0, $1, $2, $3, executor: executorName) { (executor: PodExecutor, bytes) in executor.tick(bytes) } },
        destroy: { instance in
            guard let instance else { return }
            Unmanaged<PodExecutor>.fromOpaque(instance).takeRetainedValue().stop()
        },
        free_error: { error in free(error) },
        agents_changed: nil
    ))
    return table
}()

private func createExecutor(
    _ host: UnsafePointer<trellis_host_v1>?, _ config: UnsafePointer<UInt8>?, _ length: Int,
    _ error: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
) -> UnsafeMutableRawPointer? {
    PluginCreation.create(host, config, length, defaultName: executorName, error: error) { creation throws(SettingsError) in
        let name = creation.name
        let settings = try PodSettings.parse(creation.settings, executor: name).get()
        let endpoint: KubeEndpoint
        do throws(KubeError) {
            endpoint = try KubeEndpoint.forSettings(
                apiServer: settings.apiServer, tokenFile: settings.tokenFile, kubeconfig: settings.kubeconfig, context: settings.context)
        } catch {
            throw SettingsError("\(name): cannot reach Kubernetes: \(error.description) (set api_server, kubeconfig or context in its settings)")
        }
        var options = KubeClient.Options()
        options.userAgent = "trellis-\(name)/1.0.0"
        let client: KubeClient
        do throws(KubeError) {
            client = try KubeClient(endpoint: endpoint, options: options)
        } catch {
            throw SettingsError("\(name): \(error.description)")
        }
        let pluginHost = PluginHost(creation.host)
        let namespace = settings.namespace.isEmpty ? (endpoint.namespace ?? "default") : settings.namespace
        let executor = PodExecutor(name: name, settings: settings, host: pluginHost, client: client, defaultNamespace: namespace)
        pluginHost.log(TRELLIS_LOG_INFO, "ready: one pod per task through \(endpoint.server), namespace \(namespace) unless a task names one, at most \(settings.maxConcurrentCreations) creations at once")
        return executor
    }
}
