import Foundation
import PodPerTask
import Synchronization
import TrellisKube
import TrellisPluginKit
import TrellisPluginSDK

/// One pod-per-task instance: every attempt becomes a Pod, created through
/// a bounded number of concurrent requests; pods are followed through one
/// watch per namespace (PodInformer), never by polling each; their logs are
/// copied into the task log while they run (and read whole before a pod is
/// deleted if the stream broke); the pod is deleted or kept as the task's
/// on_finish_action says, and only then is the attempt reported finished.
///
/// State lives behind one mutex; host calls are made outside it except for
/// log chunks, which are emitted under it so their order and the byte count
/// used to resume a broken stream agree (emit_event never blocks long and
/// never calls back into the plugin).
final class PodExecutor: @unchecked Sendable {
    enum Phase: Equatable {
        /// Waiting for a creation slot.
        case queued
        case creating
        /// The pod exists (or, adopted, is believed to).
        case created
        /// Ending: logs being copied, the pod deleted or kept.
        case finishing
    }

    struct Attempt {
        var task: PodTask
        var namespace: String
        /// Known once created, or from the database after a restart (may be
        /// empty then: found by its attempt label).
        var podName: String
        var phase: Phase = .queued
        /// When the pod is considered not to have started in time (µs).
        var startupDeadline: Int64?
        var lastPod: Pod?
        var following: CurlStream?
        /// Whether the followed stream may still deliver bytes.
        var followOpen = false
        /// Bytes of the pod's log the followed stream delivered so far (from
        /// the log's start).
        var logBytes = 0
        var logEnded = false
        /// Adopted after a restart: bytes of the pod's log the control plane
        /// had recorded before it, skipped when the log is read again.
        var recordedBefore: Int?
        var cancelReason: String?
    }

    struct State {
        var attempts: [String: Attempt] = [:]
        var queue: [String] = []
        var creating = 0
        var informers: [String: PodInformer] = [:]
        var stopped = false
        var lastTrouble: [String: Int64] = [:]
    }

    let name: String
    let settings: PodSettings
    let host: PluginHost
    let client: KubeClient
    let defaultNamespace: String
    private let state = Mutex(State())

    init(name: String, settings: PodSettings, host: PluginHost, client: KubeClient, defaultNamespace: String) {
        self.name = name
        self.settings = settings
        self.host = host
        self.client = client
        self.defaultNamespace = defaultNamespace
    }

    // MARK: ABI functions

    func submit(_ bytes: UnsafeRawBufferPointer) -> Result<Void, CallError> {
        guard let assignment = trellis__v1__task_assignment__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, "\(name): submit expects a trellis.v1.TaskAssignment"))
        }
        defer { trellis__v1__task_assignment__free_unpacked(assignment, nil) }
        let task: PodTask
        switch Messages.podTask(assignment, executor: name) {
        case .success(let made): task = made
        case .failure(let problem): return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, problem.message))
        }
        let namespace = PodBuilder.namespace(of: task, settings: settings, fallback: defaultNamespace)
        let podName = PodNames.podName(prefix: task.name.isEmpty ? task.taskID : task.name, suffix: PodNames.randomSuffix())
        let accepted = state.withLock { state -> Bool in
            guard !state.stopped, state.attempts[task.attemptID] == nil else { return false }
            state.attempts[task.attemptID] = Attempt(task: task, namespace: namespace, podName: podName)
            state.queue.append(task.attemptID)
            return true
        }
        guard accepted else {
            return .failure(CallError(TRELLIS_ERROR_UNAVAILABLE, "\(name): attempt \(task.attemptID) is already running here, or the executor is stopping"))
        }
        watch(namespace)
        pumpCreations()
        return .success(())
    }

    func cancel(_ bytes: UnsafeRawBufferPointer) -> Result<Void, CallError> {
        guard let request = trellis__v1__cancel_request__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, "\(name): cancel expects a trellis.v1.CancelRequest"))
        }
        defer { trellis__v1__cancel_request__free_unpacked(request, nil) }
        let attemptID = Messages.string(request.pointee.attempt?.pointee.attempt_id)
        let reason = Messages.string(request.pointee.reason)
        enum Action { case unknown, emitCancelled(Int64), later, deletePod }
        let action = state.withLock { state -> Action in
            guard var attempt = state.attempts[attemptID] else { return .unknown }
            attempt.cancelReason = reason.isEmpty ? "cancelled" : reason
            switch attempt.phase {
            case .queued:
                state.attempts[attemptID] = nil
                state.queue.removeAll { $0 == attemptID }
                return .emitCancelled(attempt.task.fencingToken)
            case .creating, .finishing:
                state.attempts[attemptID] = attempt
                return .later
            case .created:
                attempt.phase = .finishing
                state.attempts[attemptID] = attempt
                return .deletePod
            }
        }
        switch action {
        case .unknown:
            return .failure(CallError(TRELLIS_ERROR_NOT_FOUND, "\(name): attempt \(attemptID) is not running here"))
        case .emitCancelled(let token):
            emitFinished(.cancelled(attemptID, token, reason: "Cancelled", message: reason.isEmpty ? "cancelled before its pod was created" : reason))
        case .later:
            break
        case .deletePod:
            Task { await self.cancelPod(attemptID) }
        }
        return .success(())
    }

    func adopt(_ bytes: UnsafeRawBufferPointer) -> Result<Void, CallError> {
        guard let request = trellis__v1__adopt_request__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            return .failure(CallError(TRELLIS_ERROR_INVALID_ARGUMENT, "\(name): adopt expects a trellis.v1.AdoptRequest"))
        }
        defer { trellis__v1__adopt_request__free_unpacked(request, nil) }
        var namespaces = Set<String>()
        var invalid: [FinishedEvent] = []
        var adopted = 0
        for index in 0..<request.pointee.n_attempts {
            guard let entry = request.pointee.attempts?[index]?.pointee, let assignment = entry.assignment else { continue }
            switch Messages.podTask(assignment, executor: name) {
            case .failure(let problem):
                let ref = assignment.pointee.attempt?.pointee
                invalid.append(.lost(Messages.string(ref?.attempt_id), ref?.fencing_token ?? 0, reason: "InvalidTask", message: problem.message))
            case .success(let task):
                let namespace = PodBuilder.namespace(of: task, settings: settings, fallback: defaultNamespace)
                var attempt = Attempt(task: task, namespace: namespace, podName: Messages.string(entry.external_id))
                attempt.phase = .created
                attempt.recordedBefore = Int(entry.output_bytes)
                // Adopted again by the same process (leadership lost and
                // regained): it is followed already; a second record would
                // orphan its log stream and read the log twice.
                let fresh = state.withLock { state -> Bool in
                    guard state.attempts[task.attemptID] == nil else { return false }
                    state.attempts[task.attemptID] = attempt
                    return true
                }
                guard fresh else { continue }
                namespaces.insert(namespace)
                adopted += 1
            }
        }
        host.log(TRELLIS_LOG_INFO, "adopting \(adopted) attempt(s) whose pods were running before the restart; each is found by its label \(PodBuilder.Label.attempt)")
        for finished in invalid { emitFinished(finished) }
        for namespace in namespaces {
            // A fresh list decides which adopted pods still exist.
            if !watch(namespace) { Task { await self.relistAdopted(namespace) } }
        }
        return .success(())
    }

    func tick(_ bytes: UnsafeRawBufferPointer) -> Result<Void, CallError> {
        let now = PluginMessages.nowMicros()
        let overdue = state.withLock { state in
            state.attempts.filter { $0.value.phase == .created && ($0.value.startupDeadline ?? .max) < now }.map(\.key)
        }
        for attemptID in overdue { evaluate(attemptID) }
        pumpCreations()
        return .success(())
    }

    func stop() {
        let (informers, streams) = state.withLock { state in
            state.stopped = true
            return (Array(state.informers.values), state.attempts.values.compactMap(\.following))
        }
        for informer in informers { informer.stop() }
        for stream in streams { stream.cancel() }
        host.stop()
    }

    // MARK: Creating pods

    /// Starts creations while fewer than max_concurrent_creations are in
    /// flight.
    private func pumpCreations() {
        let next = state.withLock { state -> [String] in
            var started: [String] = []
            while !state.stopped, state.creating < settings.maxConcurrentCreations, !state.queue.isEmpty {
                let attemptID = state.queue.removeFirst()
                guard state.attempts[attemptID]?.phase == .queued else { continue }
                state.attempts[attemptID]?.phase = .creating
                state.creating += 1
                started.append(attemptID)
            }
            return started
        }
        for attemptID in next { Task { await self.create(attemptID) } }
    }

    private func create(_ attemptID: String) async {
        defer {
            state.withLock { $0.creating -= 1 }
            pumpCreations()
        }
        guard let attempt = state.withLock({ $0.attempts[attemptID] }) else { return }
        let task = attempt.task
        var podName = attempt.podName
        var pod = PodBuilder.build(task, settings: settings, executor: name, namespace: attempt.namespace, suffix: String(podName.suffix(8)))
        var created = false
        var failure: (reason: String, message: String)?
        for _ in 0..<3 where !created && failure == nil {
            do {
                _ = try await client.createPod(pod, namespace: attempt.namespace)
                created = true
            } catch where error.isAlreadyExists {
                // Ours, if a retried POST had gone through; else a name clash.
                if let existing = try? await client.getPod(podName, namespace: attempt.namespace),
                   existing.labels[PodBuilder.Label.attempt] == PodNames.safeLabelValue(attemptID) {
                    created = true
                } else {
                    podName = PodNames.podName(prefix: task.name.isEmpty ? task.taskID : task.name, suffix: PodNames.randomSuffix())
                    pod = PodBuilder.build(task, settings: settings, executor: name, namespace: attempt.namespace, suffix: String(podName.suffix(8)))
                }
            } catch {
                let rejected = (error.code ?? 0) >= 400 && (error.code ?? 0) < 500
                failure = (rejected ? "PodRejected" : "KubernetesUnavailable",
                           "the Kubernetes API \(rejected ? "rejected" : "could not take") pod \(podName) in namespace \(attempt.namespace): \(error)")
            }
        }
        if !created, failure == nil { failure = ("PodNameTaken", "pod names for \(task.described) kept clashing with existing pods") }
        if let failure {
            state.withLock { _ = $0.attempts.removeValue(forKey: attemptID) }
            emitLog(attemptID, task.fencingToken, stream: TRELLIS__V1__LOG_STREAM__LOG_STREAM_SYSTEM, Data("\(failure.message)\n".utf8))
            emitFinished(.failed(attemptID, task.fencingToken, reason: failure.reason, message: failure.message))
            return
        }
        host.emit(PluginMessages.startedEvent(attemptID: attemptID, fencingToken: task.fencingToken, externalID: podName, kind: TRELLIS__V1__EXTERNAL_KIND__EXTERNAL_KIND_POD, node: ""))
        let timeout = startupTimeout(task)
        let cancelled = state.withLock { state -> Bool in
            state.attempts[attemptID]?.podName = podName
            state.attempts[attemptID]?.startupDeadline = PluginMessages.nowMicros() + Int64(timeout) * 1_000_000
            if state.attempts[attemptID]?.cancelReason != nil {
                state.attempts[attemptID]?.phase = .finishing
                return true
            }
            state.attempts[attemptID]?.phase = .created
            return false
        }
        if cancelled { await cancelPod(attemptID) } else { evaluate(attemptID) }
    }

    // MARK: Following pods

    /// Starts the watch of a namespace if none runs; false if one did.
    @discardableResult
    private func watch(_ namespace: String) -> Bool {
        let informer = state.withLock { state -> PodInformer? in
            guard !state.stopped, state.informers[namespace] == nil else { return nil }
            let informer = PodInformer(client: client, namespace: namespace, labelSelector: PodBuilder.selector(executor: name)) { [weak self] change in
                self?.changed(change, in: namespace)
            }
            state.informers[namespace] = informer
            return informer
        }
        informer?.start()
        return informer != nil
    }

    private func attemptID(of pod: Pod) -> String? {
        guard let label = pod.labels[PodBuilder.Label.attempt] else { return nil }
        return state.withLock { state in
            if state.attempts[label] != nil { return label }
            // Attempt ids are label-safe already; this covers any that were not.
            return state.attempts.first { PodNames.safeLabelValue($0.key) == label }?.key
        }
    }

    private func changed(_ change: PodInformer.Change, in namespace: String) {
        switch change {
        case .updated(let pod):
            seen(pod)
        case .deleted(let pod):
            seen(pod)
            guard let attemptID = attemptID(of: pod) else { return }
            vanished(attemptID, because: "pod \(pod.name) was deleted before its task ended (by someone other than Trellis)")
        case .listed(let pods):
            for pod in pods { seen(pod) }
            Task { await self.confirmMissing(namespace, listed: Set(pods.map(\.name))) }
        case .trouble(let error):
            let now = PluginMessages.nowMicros()
            let report = state.withLock { state -> Bool in
                if let last = state.lastTrouble[namespace], now - last < 30_000_000 { return false }
                state.lastTrouble[namespace] = now
                return true
            }
            if report { host.log(TRELLIS_LOG_WARNING, "watching pods in namespace \(namespace): \(error); retrying") }
        }
    }

    private func seen(_ pod: Pod) {
        guard let attemptID = attemptID(of: pod) else { return }
        let phase = state.withLock { state -> Phase? in
            guard state.attempts[attemptID] != nil else { return nil }
            state.attempts[attemptID]?.lastPod = pod
            if state.attempts[attemptID]?.podName.isEmpty == true { state.attempts[attemptID]?.podName = pod.name }
            if state.attempts[attemptID]?.startupDeadline == nil, let created = Messages.micros(rfc3339: pod.metadata.creationTimestamp),
               let task = state.attempts[attemptID]?.task {
                let timeout = startupTimeout(task)
                state.attempts[attemptID]?.startupDeadline = created + Int64(timeout) * 1_000_000
            }
            return state.attempts[attemptID]?.phase
        }
        if phase == .created { evaluate(attemptID) }
    }

    /// After a list: adopted or created pods it did not contain are checked
    /// one by one (a pod created while the list was on its way is not lost).
    private func confirmMissing(_ namespace: String, listed: Set<String>) async {
        let candidates = state.withLock { state in
            state.attempts.filter { $0.value.namespace == namespace && $0.value.phase == .created && !listed.contains($0.value.podName) }
                .map { ($0.key, $0.value.podName) }
        }
        for (attemptID, podName) in candidates {
            if podName.isEmpty {
                vanished(attemptID, because: "no pod labelled \(PodBuilder.Label.attempt)=\(attemptID) exists; it was never created or has been deleted")
                continue
            }
            do {
                seen(try await client.getPod(podName, namespace: namespace))
            } catch where error.isNotFound {
                vanished(attemptID, because: "pod \(podName) no longer exists")
            } catch {
                host.log(TRELLIS_LOG_WARNING, "could not check pod \(podName) in namespace \(namespace): \(error); the watch will tell")
            }
        }
    }

    /// A namespace already watched: list it once more for adopted attempts.
    private func relistAdopted(_ namespace: String) async {
        do {
            let list = try await client.listPods(namespace: namespace, labelSelector: PodBuilder.selector(executor: name))
            for pod in list.items { seen(pod) }
            await confirmMissing(namespace, listed: Set(list.items.map(\.name)))
        } catch {
            host.log(TRELLIS_LOG_WARNING, "could not list pods in namespace \(namespace) to adopt them: \(error); the watch will tell")
        }
    }

    /// A pod gone without an ending: the attempt is lost (the scheduler
    /// retries it if tries remain).
    private func vanished(_ attemptID: String, because message: String) {
        let attempt = state.withLock { state -> Attempt? in
            guard let attempt = state.attempts[attemptID], attempt.phase == .created else { return nil }
            state.attempts[attemptID] = nil
            return attempt
        }
        guard let attempt else { return }
        attempt.following?.cancel()
        emitLog(attemptID, attempt.task.fencingToken, stream: TRELLIS__V1__LOG_STREAM__LOG_STREAM_SYSTEM, Data("\(message)\n".utf8))
        emitFinished(.lost(attemptID, attempt.task.fencingToken, reason: "PodDeleted", message: message))
    }

    /// Acts on the latest pod seen for an attempt.
    private func evaluate(_ attemptID: String) {
        let now = PluginMessages.nowMicros()
        enum Action { case nothing, follow(Attempt), finish(PodEnding) }
        let action = state.withLock { state -> Action in
            guard let attempt = state.attempts[attemptID], attempt.phase == .created else { return .nothing }
            let timeout = startupTimeout(attempt.task)
            let expired = (attempt.startupDeadline ?? .max) < now
            guard let pod = attempt.lastPod else {
                if expired {
                    state.attempts[attemptID]?.phase = .finishing
                    return .finish(PodEnding(succeeded: false, exitCode: nil, reason: "StartupTimeout",
                                             message: "pod \(attempt.podName) was never seen running within \(timeout) s", finishedAt: nil))
                }
                return .nothing
            }
            switch PodAssessment.assess(pod, startupExpired: expired, startupTimeoutSeconds: timeout) {
            case .starting:
                return .nothing
            case .running:
                guard attempt.task.getLogs, attempt.following == nil, !attempt.followOpen, !attempt.logEnded else { return .nothing }
                state.attempts[attemptID]?.followOpen = true
                return .follow(attempt)
            case .ended(let ending):
                state.attempts[attemptID]?.phase = .finishing
                return .finish(ending)
            }
        }
        switch action {
        case .nothing: break
        case .follow(let attempt): follow(attemptID, attempt)
        case .finish(let ending): Task { await self.finish(attemptID, ending) }
        }
    }

    private func follow(_ attemptID: String, _ attempt: Attempt) {
        let token = attempt.task.fencingToken
        if let recorded = attempt.recordedBefore {
            emitLog(attemptID, token, stream: TRELLIS__V1__LOG_STREAM__LOG_STREAM_SYSTEM, Data(
                "trellisd restarted; reading pod \(attempt.podName)'s log again after the \(recorded) bytes already recorded\n".utf8))
        }
        let recorded = attempt.recordedBefore ?? 0
        let stream = client.followPodLog(
            attempt.podName, namespace: attempt.namespace, container: PodBuilder.containerName,
            onData: { [weak self] data in
                guard let self else { return }
                self.state.withLock { state in
                    guard let received = state.attempts[attemptID]?.logBytes, state.attempts[attemptID]?.followOpen == true else { return }
                    state.attempts[attemptID]?.logBytes = received + data.count
                    // What was recorded before a restart is not emitted again.
                    let fresh = data.dropFirst(max(0, recorded - received))
                    if !fresh.isEmpty { self.emitLogLocked(attemptID, token, Data(fresh)) }
                }
            },
            onEnd: { [weak self] result in
                guard let self else { return }
                self.state.withLock { state in
                    if case .success = result { state.attempts[attemptID]?.logEnded = true }
                    state.attempts[attemptID]?.followOpen = false
                }
            })
        let stopped = state.withLock { state -> Bool in
            guard state.attempts[attemptID] != nil, !state.stopped else { return true }
            state.attempts[attemptID]?.following = stream
            return false
        }
        if stopped { stream.cancel() }
    }

    // MARK: Ending

    private func finish(_ attemptID: String, _ ending: PodEnding) async {
        guard let attempt = state.withLock({ $0.attempts[attemptID] }) else { return }
        let task = attempt.task
        if task.getLogs {
            await copyRemainingLog(attemptID, attempt, ran: ending.exitCode != nil)
        }
        if !ending.succeeded { await reportEvents(attemptID, attempt) }
        let delete = switch task.onFinish {
        case .deletePod: true
        case .deleteSucceededPod: ending.succeeded
        case .keepPod: false
        }
        if delete { await deletePod(attempt, grace: nil) }
        state.withLock { _ = $0.attempts.removeValue(forKey: attemptID) }
        emitFinished(FinishedEvent(
            attemptID: attemptID, fencingToken: task.fencingToken,
            outcome: ending.succeeded ? TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_SUCCEEDED : TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_FAILED,
            // A success carries no reason: the task list shows reasons as failures.
            exitCode: ending.exitCode, reason: ending.succeeded ? "" : ending.reason, message: ending.succeeded ? "" : ending.message,
            at: Messages.micros(rfc3339: ending.finishedAt)))
    }

    /// Waits (bounded) for the followed log to end; if it did not, or was
    /// never followed, reads the log whole and emits what is missing.
    private func copyRemainingLog(_ attemptID: String, _ attempt: Attempt, ran: Bool) async {
        await waitForFollowedLog(attemptID, atMost: .seconds(settings.logWaitSeconds))
        let (ended, emitted, stream) = state.withLock { state -> (Bool, Int, CurlStream?) in
            let current = state.attempts[attemptID]
            state.attempts[attemptID]?.followOpen = false
            return (current?.logEnded ?? false, max(current?.logBytes ?? 0, current?.recordedBefore ?? 0), current?.following)
        }
        stream?.cancel()
        guard !ended, ran || stream != nil else { return }
        do {
            let whole = try await client.podLog(attempt.podName, namespace: attempt.namespace, container: PodBuilder.containerName)
            if let recorded = attempt.recordedBefore, whole.count < recorded {
                // The kubelet rotated the log away, or the pod is not the
                // one whose output was recorded: say so rather than guess.
                emitLog(attemptID, attempt.task.fencingToken, stream: TRELLIS__V1__LOG_STREAM__LOG_STREAM_SYSTEM, Data(
                    "pod \(attempt.podName)'s log now holds \(whole.count) bytes, fewer than the \(recorded) already recorded; what it wrote after them could not be told apart and is not copied\n".utf8))
            }
            if whole.count > emitted {
                emitLog(attemptID, attempt.task.fencingToken, stream: TRELLIS__V1__LOG_STREAM__LOG_STREAM_STDOUT, whole.dropFirst(emitted))
            }
        } catch {
            emitLog(attemptID, attempt.task.fencingToken, stream: TRELLIS__V1__LOG_STREAM__LOG_STREAM_SYSTEM,
                    Data("the log of pod \(attempt.podName) could not be read: \(error)\n".utf8))
        }
    }

    /// The pod's events (as `kubectl describe pod` ends), into the task log.
    private func reportEvents(_ attemptID: String, _ attempt: Attempt) async {
        guard let events = try? await client.podEvents(attempt.podName, namespace: attempt.namespace), !events.isEmpty else { return }
        var text = "events of pod \(attempt.podName):\n"
        for event in events {
            text += "  \(event.lastTimestamp ?? "") \(event.type ?? "") \(event.reason ?? ""): \(event.message ?? "")\n"
        }
        emitLog(attemptID, attempt.task.fencingToken, stream: TRELLIS__V1__LOG_STREAM__LOG_STREAM_SYSTEM, Data(text.utf8))
    }

    private func cancelPod(_ attemptID: String) async {
        // Follow the log now if nothing does yet (the pod may have started
        // between two watch events): the lines the container writes until
        // it exits are copied before the pod is gone.
        let (snapshot, startFollowing) = state.withLock { state -> (Attempt?, Bool) in
            guard let attempt = state.attempts[attemptID] else { return (nil, false) }
            guard attempt.task.getLogs, attempt.following == nil, !attempt.followOpen, !attempt.logEnded else { return (attempt, false) }
            state.attempts[attemptID]?.followOpen = true
            return (attempt, true)
        }
        guard let attempt = snapshot else { return }
        if startFollowing { follow(attemptID, attempt) }
        let reason = attempt.cancelReason ?? "cancelled"
        await deletePod(attempt, grace: settings.cancelGraceSeconds)
        if attempt.task.getLogs {
            // The container gets SIGTERM; its last lines arrive before the stream ends.
            await waitForFollowedLog(attemptID, atMost: .seconds(settings.cancelGraceSeconds + settings.logWaitSeconds))
        }
        let stream = state.withLock { state -> CurlStream? in
            defer { state.attempts[attemptID] = nil }
            state.attempts[attemptID]?.followOpen = false
            return state.attempts[attemptID]?.following
        }
        stream?.cancel()
        emitFinished(.cancelled(attemptID, attempt.task.fencingToken, reason: "Cancelled", message: "\(reason); pod \(attempt.podName) deleted"))
    }

    /// Waits, at most `limit`, while the attempt's followed log is open and
    /// has not ended.
    private func waitForFollowedLog(_ attemptID: String, atMost limit: Duration) async {
        let deadline = ContinuousClock.now + limit
        while state.withLock({ $0.attempts[attemptID].map { $0.followOpen && !$0.logEnded } ?? false }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The task's startup_timeout_seconds, else the executor's.
    private func startupTimeout(_ task: PodTask) -> Int {
        task.startupTimeoutSeconds > 0 ? task.startupTimeoutSeconds : settings.startupTimeoutSeconds
    }

    private func deletePod(_ attempt: Attempt, grace: Int?) async {
        guard !attempt.podName.isEmpty else { return }
        do {
            try await client.deletePod(attempt.podName, namespace: attempt.namespace, gracePeriodSeconds: grace)
        } catch {
            host.log(TRELLIS_LOG_WARNING, "could not delete pod \(attempt.podName) in namespace \(attempt.namespace): \(error)")
        }
    }

    // MARK: Host events

    private func emitFinished(_ finished: FinishedEvent) {
        if let status = host.emit(PluginMessages.finishedEvent(finished)), status != TRELLIS_OK {
            host.log(TRELLIS_LOG_ERROR, "the host refused the finished event of attempt \(finished.attemptID) (status \(status))")
        }
    }

    private func emitLog(_ attemptID: String, _ fencingToken: Int64, stream: Trellis__V1__LogStream, _ data: some Collection<UInt8>) {
        var offset = data.startIndex
        while offset != data.endIndex {
            let end = data.index(offset, offsetBy: 64 * 1024, limitedBy: data.endIndex) ?? data.endIndex
            host.emit(PluginMessages.logEvent(attemptID: attemptID, fencingToken: fencingToken, stream: stream, data: data[offset..<end]))
            offset = end
        }
    }

    /// emitLog for the followed stream, called with the state locked.
    private func emitLogLocked(_ attemptID: String, _ fencingToken: Int64, _ data: Data) {
        emitLog(attemptID, fencingToken, stream: TRELLIS__V1__LOG_STREAM__LOG_STREAM_STDOUT, data)
    }
}
