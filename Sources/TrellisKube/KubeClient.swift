public import Foundation
import Synchronization

/// A Kubernetes API client for what Trellis's executors need: Pods (create,
/// get, list, watch, logs, delete, events) and Deployments' scale
/// subresource, over libcurl. Requests that fail in a way worth repeating
/// (no connection, 429, 5xx, 409 Conflict) are retried with exponential
/// backoff and jitter, honouring Retry-After. Safe to use from any thread or
/// task; one client serves hundreds of concurrent requests over reused
/// connections.
public final class KubeClient: Sendable {
    public struct Options: Sendable {
        /// Limit for one request (not for watches and followed logs).
        public var requestTimeout: Duration = .seconds(30)
        public var connectTimeout: Duration = .seconds(10)
        /// Tries per request, the first included.
        public var maxAttempts = 6
        public var initialBackoff: Duration = .milliseconds(200)
        public var maxBackoff: Duration = .seconds(10)
        public var userAgent = "trellis"

        public init() {}
    }

    public let endpoint: KubeEndpoint
    public let options: Options
    private let transport: CurlTransport
    private let token: TokenSource?
    private let retries = Atomic<Int>(0)

    public init(endpoint: KubeEndpoint, options: Options = Options()) throws(KubeError) {
        self.endpoint = endpoint
        self.options = options
        var settings = CurlTransport.Settings()
        settings.certificateAuthority = endpoint.certificateAuthority
        settings.insecureSkipTLSVerify = endpoint.insecureSkipTLSVerify
        settings.connectTimeout = options.connectTimeout
        settings.userAgent = options.userAgent
        switch endpoint.credentials {
        case .none: token = nil
        case .token(let value): token = TokenSource(fixed: value)
        case .tokenFile(let path): token = TokenSource(file: path)
        case .clientCertificate(let certificate, let key):
            token = nil
            settings.clientCertificate = certificate
            settings.clientKey = key
        }
        transport = try CurlTransport(settings: settings)
    }

    deinit { transport.shutdown() }

    /// Requests repeated after a retryable failure, since the client was made.
    public var retryCount: Int { retries.load(ordering: .relaxed) }

    // MARK: Pods

    public func createPod(_ pod: Pod, namespace: String) async throws(KubeError) -> Pod {
        try await call("POST", Self.podsPath(namespace), body: try encode(pod))
    }

    public func getPod(_ name: String, namespace: String) async throws(KubeError) -> Pod {
        try await call("GET", Self.podsPath(namespace) + "/" + escape(name))
    }

    public func listPods(namespace: String, labelSelector: String? = nil) async throws(KubeError) -> PodList {
        try await call("GET", Self.podsPath(namespace) + query(["labelSelector": labelSelector]))
    }

    /// Deletes a Pod, its containers getting `gracePeriodSeconds` between
    /// SIGTERM and SIGKILL (nil: the Pod's own). A Pod already gone is not an
    /// error.
    public func deletePod(_ name: String, namespace: String, gracePeriodSeconds: Int? = nil) async throws(KubeError) {
        var body: Data?
        if let gracePeriodSeconds {
            body = Data(#"{"kind":"DeleteOptions","apiVersion":"v1","gracePeriodSeconds":\#(gracePeriodSeconds)}"#.utf8)
        }
        do {
            _ = try await send("DELETE", Self.podsPath(namespace) + "/" + escape(name), body: body)
        } catch where error.isNotFound {
            return
        }
    }

    /// Merges `annotations` into a Pod's (a merge patch; a nil value
    /// removes that annotation). The scaled-pool executor marks the pods of
    /// idle workers cheapest to delete this way.
    public func annotatePod(_ name: String, namespace: String, annotations: [String: String?]) async throws(KubeError) -> Pod {
        struct Patch: Encodable {
            struct Metadata: Encodable {
                var annotations: [String: String?]
                func encode(to encoder: any Encoder) throws {
                    var container = encoder.container(keyedBy: Key.self)
                    var nested = container.nestedContainer(keyedBy: Key.self, forKey: Key("annotations"))
                    for (key, value) in annotations {
                        if let value { try nested.encode(value, forKey: Key(key)) } else { try nested.encodeNil(forKey: Key(key)) }
                    }
                }
            }
            var metadata: Metadata
        }
        return try await call(
            "PATCH", Self.podsPath(namespace) + "/" + escape(name), body: try encode(Patch(metadata: .init(annotations: annotations))),
            contentType: "application/merge-patch+json")
    }

    /// A Pod's log so far (`tailLines`: only the last lines).
    public func podLog(
        _ name: String, namespace: String, container: String? = nil, tailLines: Int? = nil
    ) async throws(KubeError) -> Data {
        try await send("GET", Self.podsPath(namespace) + "/" + escape(name) + "/log" + query([
            "container": container, "tailLines": tailLines.map(String.init),
        ])).body
    }

    /// Follows a Pod's log: `onData` gets bytes as the container writes them
    /// (on the client's thread; keep it short), `onEnd` is called once when
    /// the container has ended and its log is complete (.success), or the
    /// stream broke.
    public func followPodLog(
        _ name: String, namespace: String, container: String? = nil,
        onData: @escaping @Sendable (Data) -> Void, onEnd: @escaping @Sendable (Result<Void, KubeError>) -> Void
    ) -> CurlStream {
        let path = Self.podsPath(namespace) + "/" + escape(name) + "/log" + query([
            "follow": "true", "container": container,
        ])
        let request = makeRequest("GET", path, body: nil, timeout: nil)
        return transport.stream(request, onData: onData) { result in
            onEnd(Self.check(result, request: "GET \(path)").map { _ in () })
        }
    }

    /// Watches Pods from `resourceVersion`: `onEvent` gets each event (ERROR
    /// events included: a Status whose code 410 means list again), `onEnd`
    /// when the server closes the stream (normal after `timeoutSeconds`) or
    /// it breaks. `PodInformer` does list + watch + relist for you.
    public func watchPods(
        namespace: String, labelSelector: String?, resourceVersion: String?, timeoutSeconds: Int = 300,
        onEvent: @escaping @Sendable (RawWatchEvent) -> Void, onEnd: @escaping @Sendable (Result<Void, KubeError>) -> Void
    ) -> CurlStream {
        let path = Self.podsPath(namespace) + query([
            "watch": "true", "labelSelector": labelSelector, "resourceVersion": resourceVersion,
            "allowWatchBookmarks": "true", "timeoutSeconds": String(timeoutSeconds),
        ])
        let lines = LineSplitter()
        let request = makeRequest("GET", path, body: nil, timeout: .seconds(timeoutSeconds + 30))
        return transport.stream(request, onData: { data in
            for line in lines.append(data) { onEvent(RawWatchEvent(line: line)) }
        }, onEnd: { result in
            onEnd(Self.check(result, request: "GET \(path)").map { _ in () })
        })
    }

    /// The events of one Pod (scheduling, image pulls, kills), oldest first.
    public func podEvents(_ name: String, namespace: String) async throws(KubeError) -> [Event] {
        let list: EventList = try await call("GET", "/api/v1/namespaces/\(escape(namespace))/events" + query([
            "fieldSelector": "involvedObject.kind=Pod,involvedObject.name=\(name)",
        ]))
        return list.items.sorted { ($0.lastTimestamp ?? "") < ($1.lastTimestamp ?? "") }
    }

    // MARK: Deployments' scale

    public func getScale(deployment: String, namespace: String) async throws(KubeError) -> Scale {
        try await call("GET", Self.scalePath(deployment, namespace))
    }

    /// Sets a Deployment's replicas (a merge patch of the scale subresource).
    public func patchScale(deployment: String, namespace: String, replicas: Int) async throws(KubeError) -> Scale {
        try await call(
            "PATCH", Self.scalePath(deployment, namespace), body: Data(#"{"spec":{"replicas":\#(replicas)}}"#.utf8),
            contentType: "application/merge-patch+json"
        )
    }

    // MARK: Requests

    static func podsPath(_ namespace: String) -> String { "/api/v1/namespaces/\(escape(namespace))/pods" }

    static func scalePath(_ deployment: String, _ namespace: String) -> String {
        "/apis/apps/v1/namespaces/\(escape(namespace))/deployments/\(escape(deployment))/scale"
    }

    private func call<Answer: Decodable>(
        _ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json"
    ) async throws(KubeError) -> Answer {
        let response = try await send(method, path, body: body, contentType: contentType)
        do {
            return try JSONDecoder().decode(Answer.self, from: response.body)
        } catch {
            throw .decoding("\(method) \(path): \(error)")
        }
    }

    /// Sends a request, retrying what is worth retrying.
    private func send(
        _ method: String, _ path: String, body: Data? = nil, contentType: String = "application/json"
    ) async throws(KubeError) -> CurlTransport.Response {
        var attempt = 1
        var refreshedToken = false
        while true {
            let request = makeRequest(method, path, body: body, contentType: contentType, timeout: options.requestTimeout)
            let result = Self.check(await transport.send(request), request: "\(method) \(path)")
            var retryAfter: Int?
            switch result {
            case .success(let response):
                return response
            case .failure(let error):
                if case .api(401, _, _) = error, let token, !refreshedToken, token.isFile {
                    // A rotated ServiceAccount token: read it again, once.
                    token.invalidate()
                    refreshedToken = true
                    continue
                }
                guard attempt < options.maxAttempts, Self.isRetryable(error) else { throw error }
                if case .api(_, _, _) = error { retryAfter = lastRetryAfter(error) }
            }
            let delay = backoff(attempt: attempt, retryAfter: retryAfter)
            retries.add(1, ordering: .relaxed)
            attempt += 1
            try? await Task.sleep(for: delay)
        }
    }

    private func lastRetryAfter(_ error: KubeError) -> Int? {
        if case .api(_, let status, _) = error { return status?.retryAfterSeconds }
        return nil
    }

    static func isRetryable(_ error: KubeError) -> Bool {
        switch error {
        case .transport: true
        case .api(let code, let status, _):
            code == 429 || code == 500 || code == 502 || code == 503 || code == 504
                || (code == 409 && status?.reason == "Conflict")
        case .configuration, .decoding, .cancelled: false
        }
    }

    /// Exponential with full jitter, at least Retry-After when the server
    /// gave one (capped by maxBackoff × 3 so a bad header cannot stall us).
    private func backoff(attempt: Int, retryAfter: Int?) -> Duration {
        let base = options.initialBackoff * (1 << min(attempt - 1, 16))
        let capped = min(base, options.maxBackoff)
        let jittered = capped * Double.random(in: 0.5...1.0)
        if let retryAfter { return min(max(jittered, .seconds(retryAfter)), options.maxBackoff * 3) }
        return jittered
    }

    private func makeRequest(
        _ method: String, _ path: String, body: Data?, contentType: String = "application/json", timeout: Duration?
    ) -> CurlTransport.Request {
        var headers = ["Accept: application/json"]
        if body != nil { headers.append("Content-Type: \(contentType)") }
        if let value = token?.current() { headers.append("Authorization: Bearer \(value)") }
        return CurlTransport.Request(method: method, url: endpoint.server + path, headers: headers, body: body, timeout: timeout)
    }

    /// Turns a non-2xx answer into `.api` with its Status.
    private static func check(_ result: Result<CurlTransport.Response, KubeError>, request: String) -> Result<CurlTransport.Response, KubeError> {
        guard case .success(let response) = result else { return result }
        guard !(200..<300).contains(response.status) else { return result }
        var status = try? JSONDecoder().decode(Status.self, from: response.body)
        if status != nil, let retryAfter = response.retryAfter { status?.retryAfterSeconds = retryAfter }
        if status == nil, let retryAfter = response.retryAfter {
            status = Status(status: "Failure", message: String(decoding: response.body.prefix(200), as: UTF8.self), reason: nil, code: response.status)
            status?.retryAfterSeconds = retryAfter
        }
        return .failure(.api(code: response.status, status: status, request: request))
    }

    private func encode(_ value: some Encodable) throws(KubeError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { return try encoder.encode(value) } catch { throw .decoding("cannot encode the request: \(error)") }
    }

    private func query(_ items: KeyValuePairs<String, String?>) -> String {
        let parts = items.compactMap { key, value in value.map { "\(key)=\(escape($0))" } }
        return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
    }
}

/// A coding key for any string (annotation names).
private struct Key: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// Percent-encodes a path segment or query value.
func escape(_ value: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
}

/// One line of a watch stream, decoded on demand.
public struct RawWatchEvent: Sendable {
    public let line: Data

    public var type: String? {
        (try? JSONDecoder().decode(TypeOnly.self, from: line))?.type
    }

    public func decode<Object: Decodable & Sendable>(_: Object.Type) throws(KubeError) -> WatchEvent<Object> {
        do {
            let event = try JSONDecoder().decode(Envelope<Object>.self, from: line)
            return WatchEvent(type: event.type, object: event.object)
        } catch {
            throw .decoding("watch event: \(error) in \(String(decoding: line.prefix(300), as: UTF8.self))")
        }
    }

    private struct TypeOnly: Decodable { var type: String }
    private struct Envelope<Object: Decodable>: Decodable {
        var type: String
        var object: Object
    }
}

/// Splits a byte stream into newline-terminated lines.
final class LineSplitter: Sendable {
    private let pending = Mutex(Data())

    func append(_ data: Data) -> [Data] {
        pending.withLock { buffer in
            buffer.append(data)
            var lines: [Data] = []
            while let newline = buffer.firstIndex(of: 0x0A) {
                let line = buffer[buffer.startIndex..<newline]
                if !line.isEmpty { lines.append(Data(line)) }
                buffer.removeSubrange(buffer.startIndex...newline)
            }
            return lines
        }
    }
}

/// The bearer token: fixed, or read from a file and re-read when the file
/// changes (checked at most once a second) or after a 401.
final class TokenSource: Sendable {
    private struct Cached {
        var token: String?
        var modified: Date?
        var checked: ContinuousClock.Instant?
    }

    private let path: String?
    private let cached: Mutex<Cached>

    init(fixed: String) {
        path = nil
        cached = Mutex(Cached(token: fixed))
    }

    init(file: String) {
        path = file
        cached = Mutex(Cached())
    }

    var isFile: Bool { path != nil }

    func current() -> String? {
        guard let path else { return cached.withLock { $0.token } }
        return cached.withLock { cache in
            let now = ContinuousClock.now
            if let checked = cache.checked, cache.token != nil, now - checked < .seconds(1) { return cache.token }
            cache.checked = now
            let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
            if cache.token == nil || modified != cache.modified {
                cache.modified = modified
                cache.token = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return cache.token
        }
    }

    func invalidate() {
        cached.withLock { $0 = Cached() }
    }
}
