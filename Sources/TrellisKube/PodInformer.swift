import Foundation
import Synchronization

/// Keeps up with the Pods of one namespace that match a label selector, the
/// way client-go's informers do: list, then watch from the list's
/// resourceVersion; a watch that ends normally is resumed from the last
/// resourceVersion seen, one that breaks is retried with backoff, and 410
/// Gone (the version is too old) leads to a fresh list. Never polls each Pod.
public final class PodInformer: Sendable {
    /// What the owner hears, in order, on one task at a time.
    public enum Change: Sendable {
        /// A full list: every matching Pod now. Pods the owner knew that are
        /// not in it were deleted while nobody watched.
        case listed([Pod])
        /// A Pod was added or changed.
        case updated(Pod)
        case deleted(Pod)
        /// The API could not be reached or answered an error; the informer
        /// keeps trying.
        case trouble(KubeError)
    }

    private struct State {
        var stopped = false
        var stream: CurlStream?
        var task: Task<Void, Never>?
    }

    private let client: KubeClient
    public let namespace: String
    public let labelSelector: String
    private let watchTimeoutSeconds: Int
    private let onChange: @Sendable (Change) -> Void
    private let state = Mutex(State())
    private let listCount = Atomic<Int>(0)

    public init(
        client: KubeClient, namespace: String, labelSelector: String, watchTimeoutSeconds: Int = 300,
        onChange: @escaping @Sendable (Change) -> Void
    ) {
        self.client = client
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.watchTimeoutSeconds = watchTimeoutSeconds
        self.onChange = onChange
    }

    /// Lists made so far (the first one and every relist).
    public var lists: Int { listCount.load(ordering: .relaxed) }

    public func start() {
        let task = Task { await self.run() }
        state.withLock { $0.task = task }
    }

    public func stop() {
        let (stream, task) = state.withLock { state in
            state.stopped = true
            return (state.stream, state.task)
        }
        stream?.cancel()
        task?.cancel()
    }

    private var stopped: Bool { state.withLock { $0.stopped } }

    private func run() async {
        var failures = 0
        while !stopped {
            let list: PodList
            do {
                list = try await client.listPods(namespace: namespace, labelSelector: labelSelector)
            } catch {
                onChange(.trouble(error))
                failures += 1
                await pause(failures)
                continue
            }
            listCount.add(1, ordering: .relaxed)
            onChange(.listed(list.items))
            var resourceVersion = list.metadata.resourceVersion
            failures = 0
            watching: while !stopped {
                let outcome = await watch(from: resourceVersion)
                switch outcome {
                case .ended(let last):
                    resourceVersion = last ?? resourceVersion
                    failures = 0
                case .gone:
                    break watching
                case .failed(let error, let last):
                    resourceVersion = last ?? resourceVersion
                    if case .cancelled = error { return }
                    onChange(.trouble(error))
                    failures += 1
                    await pause(failures)
                    // After several broken watches in a row, start over from a list.
                    if failures >= 3 { break watching }
                }
            }
        }
    }

    private enum WatchOutcome: Sendable {
        case ended(lastResourceVersion: String?)
        case gone
        case failed(KubeError, lastResourceVersion: String?)
    }

    /// One watch request, to its end.
    private func watch(from resourceVersion: String?) async -> WatchOutcome {
        let last = Mutex<(version: String?, gone: Bool, error: KubeError?)>((nil, false, nil))
        let onChange = self.onChange
        return await withCheckedContinuation { (continuation: CheckedContinuation<WatchOutcome, Never>) in
            let stream = client.watchPods(
                namespace: namespace, labelSelector: labelSelector, resourceVersion: resourceVersion,
                timeoutSeconds: watchTimeoutSeconds,
                onEvent: { raw in
                    switch raw.type {
                    case "ADDED", "MODIFIED", "DELETED":
                        guard let event = try? raw.decode(Pod.self) else {
                            last.withLock { $0.error = .decoding("undecodable watch event: \(String(decoding: raw.line.prefix(200), as: UTF8.self))") }
                            return
                        }
                        last.withLock { $0.version = event.object.metadata.resourceVersion ?? $0.version }
                        onChange(event.type == "DELETED" ? .deleted(event.object) : .updated(event.object))
                    case "BOOKMARK":
                        if let event = try? raw.decode(Bookmark.self) {
                            last.withLock { $0.version = event.object.metadata.resourceVersion ?? $0.version }
                        }
                    case "ERROR":
                        let status = try? raw.decode(Status.self).object
                        if status?.code == 410 || status?.reason == "Expired" || status?.reason == "Gone" {
                            last.withLock { $0.gone = true }
                        } else {
                            last.withLock { $0.error = .api(code: status?.code ?? 500, status: status, request: "watch pods") }
                        }
                    default:
                        break
                    }
                },
                onEnd: { result in
                    let seen = last.withLock { $0 }
                    switch result {
                    case .success:
                        if seen.gone { continuation.resume(returning: .gone) }
                        else if let error = seen.error { continuation.resume(returning: .failed(error, lastResourceVersion: seen.version)) }
                        else { continuation.resume(returning: .ended(lastResourceVersion: seen.version)) }
                    case .failure(let error):
                        continuation.resume(returning: error.isGone ? .gone : .failed(error, lastResourceVersion: seen.version))
                    }
                }
            )
            let alreadyStopped = state.withLock { state in
                state.stream = stream
                return state.stopped
            }
            if alreadyStopped { stream.cancel() }
        }
    }

    private func pause(_ failures: Int) async {
        let seconds = min(0.25 * Double(1 << min(failures, 6)), 10)
        try? await Task.sleep(for: .seconds(seconds * Double.random(in: 0.5...1)))
    }

    private struct Bookmark: Decodable, Sendable {
        var metadata: ObjectMeta
    }
}
