import AgentPool
import Foundation
import ScaledPool
import Synchronization
import TrellisKube
import TrellisPluginKit
import TrellisPluginSDK

/// One scaled-pool instance: persistent-pool's dispatching (AgentPool's
/// PoolExecutor) to the agents of a worker Deployment, plus the Autoscaler
/// sizing that Deployment through its scale subresource. Polls run on a
/// task of their own, one at a time, started from the host's tick when one
/// is due; the tick itself never waits on the API.
final class ScaledPoolExecutor: @unchecked Sendable {
    /// The annotation the ReplicaSet controller ranks pods by when it
    /// scales in; lower goes first.
    static let deletionCost = "controller.kubernetes.io/pod-deletion-cost"
    static let victimCost = "-1000"

    let pool: PoolExecutor
    let scaler: ScalerSettings
    let client: KubeClient?
    let namespace: String
    private let autoscaler: Mutex<Autoscaler>
    private let polling = Mutex(false)
    private let lastTrouble = Mutex<Int64>(0)

    init(pool: PoolExecutor, scaler: ScalerSettings, client: KubeClient?, namespace: String) {
        self.pool = pool
        self.scaler = scaler
        self.client = client
        self.namespace = namespace
        autoscaler = Mutex(Autoscaler(configuration: scaler.autoscalerConfiguration))
    }

    func tick(_ bytes: UnsafeRawBufferPointer) -> Result<Void, CallError> {
        let result = pool.tick(bytes)
        guard scaler.autoscale, client != nil,
              let request = trellis__v1__tick_request__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            return result
        }
        let given = request.pointee.now?.pointee.unix_micros ?? 0
        let queued = Int(request.pointee.queued)
        let running = Int(request.pointee.running)
        trellis__v1__tick_request__free_unpacked(request, nil)
        let now = given > 0 ? given : PluginMessages.nowMicros()
        let start = polling.withLock { busy -> Bool in
            guard !busy, autoscaler.withLock({ $0.isDue(now) }) else { return false }
            busy = true
            return true
        }
        if start {
            Task {
                await self.poll(now: now, queued: queued, running: running)
                self.polling.withLock { $0 = false }
            }
        }
        return result
    }

    /// Reads the replicas, asks the autoscaler, carries out its actions.
    private func poll(now: Int64, queued: Int, running: Int) async {
        guard let client else { return }
        let replicas: Int
        do {
            replicas = try await client.getScale(deployment: scaler.deployment, namespace: namespace).spec.replicas ?? 0
        } catch {
            trouble(now, "cannot read the scale of deployment \(scaler.deployment) in namespace \(namespace): \(error)")
            return
        }
        let workers = pool.workers().map { Autoscaler.Worker(name: $0.name, busy: $0.busy, draining: $0.draining) }
        let actions = autoscaler.withLock { $0.poll(now: now, queued: queued, running: running, replicas: replicas, workers: workers) }
        pool.log(TRELLIS_LOG_DEBUG, "poll: \(queued) queued, \(running) running, \(replicas) replicas, \(workers.count) agents (\(workers.filter(\.busy).count) busy, \(workers.filter(\.draining).count) draining): \(actions.isEmpty ? "nothing to do" : "\(actions)")")
        for action in actions {
            switch action {
            case .release(let names):
                pool.uncordon(names)
                for name in names { await mark(name, victim: false) }
                pool.log(TRELLIS_LOG_INFO, "released \(names.joined(separator: ", ")): still serving after the scale-in, so they take tasks again")
            case .scaleOut(let target):
                await setReplicas(target, from: replicas, why: "\(queued) queued + \(running) running at \(scaler.tasksPerWorker) a worker", now: now)
            case .scaleIn(_, let victims):
                // Under the dispatcher's lock: only those still idle now.
                let cordoned = pool.cordon(victims)
                for name in victims where !cordoned.contains(name) { autoscaler.withLock { $0.forget(name) } }
                var marked: [String] = []
                for name in cordoned {
                    if await mark(name, victim: true) {
                        marked.append(name)
                    } else {
                        pool.uncordon([name])
                        autoscaler.withLock { $0.forget(name) }
                    }
                }
                guard !marked.isEmpty else { continue }
                await setReplicas(replicas - marked.count, from: replicas,
                                  why: "idle for the cooldown: \(marked.joined(separator: ", ")) marked cheapest to delete", now: now)
            }
        }
    }

    private func setReplicas(_ target: Int, from replicas: Int, why: String, now: Int64) async {
        guard let client else { return }
        do {
            _ = try await client.patchScale(deployment: scaler.deployment, namespace: namespace, replicas: target)
            pool.log(TRELLIS_LOG_INFO, "scaled deployment \(scaler.deployment) from \(replicas) to \(target) replicas (\(why))")
        } catch {
            trouble(now, "cannot scale deployment \(scaler.deployment) in namespace \(namespace) to \(target): \(error)")
        }
    }

    /// Sets (or removes) the victim's deletion cost on its pod — the agent's
    /// name is its pod's (the worker Deployment sets TRELLIS_AGENT_NAME from
    /// metadata.name).
    @discardableResult
    private func mark(_ agent: String, victim: Bool) async -> Bool {
        guard let client else { return false }
        do {
            _ = try await client.annotatePod(agent, namespace: namespace, annotations: [Self.deletionCost: victim ? Self.victimCost : nil])
            return true
        } catch {
            pool.log(TRELLIS_LOG_WARNING, "cannot \(victim ? "mark" : "unmark") pod \(agent) in namespace \(namespace) (is the agent named after its pod?): \(error)")
            return false
        }
    }

    /// Logs an API problem at most every 30 s.
    private func trouble(_ now: Int64, _ message: String) {
        let report = lastTrouble.withLock { last -> Bool in
            guard now - last >= 30_000_000 else { return false }
            last = now
            return true
        }
        if report { pool.log(TRELLIS_LOG_WARNING, message + "; retrying at the next poll") }
    }
}
