public import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A Kubernetes API simulator — a TEST DOUBLE, not a Kubernetes.
///
/// It serves the subset of the Kubernetes REST API that Trellis's executors
/// use, with the real paths and JSON, on plain HTTP (no TLS; bearer-token
/// authentication when configured): Pods — create, get, list and watch
/// (label selectors, resourceVersions, 410 Gone for a resourceVersion older
/// than its bounded history), label/annotation patches, delete, and logs
/// (whole or followed); the Events a scheduler, kubelet and controllers
/// would record; apps/v1 Deployments with their autoscaling/v1 `scale`
/// subresource, kept at their replica count by a ReplicaSet-like
/// controller. It "runs" each Pod by executing its first container's
/// `command` + `args` as a local process, ignoring the image, so phases,
/// exit codes and logs are real. docs/architecture.md lists it all.
public final class KubeSimulator: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        /// 0 picks a free port (read it back from `port`).
        public var port: Int
        /// Watch events kept for resuming watches; older resourceVersions get 410.
        public var historyLimit: Int
        /// Where the Pods' logs go; a fresh temporary directory by default.
        public var logDirectory: String?
        /// Images whose "pull" fails (besides any from a `*.invalid` registry).
        public var unpullableImages: Set<String> = []
        /// The one node's labels: a Pod whose nodeSelector they do not
        /// satisfy stays Pending, Unschedulable.
        public var nodeLabels: [String: String] = [
            "kubernetes.io/hostname": "trellis-kube-sim", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        ]
        /// How long each Pod stays Pending (ContainerCreating) before its
        /// process starts: a slow start.
        public var startDelay: Duration = .zero
        /// When set, every API request (not `/simulator/…`) must carry
        /// `Authorization: Bearer <token>`; others get 401 Unauthorized.
        public var bearerToken: String? = nil
        /// A file holding the token (surrounding whitespace ignored), read
        /// again on every request so tests can rotate it; wins over
        /// `bearerToken`. A missing or empty file lets no request in.
        public var bearerTokenFile: String? = nil

        public init(host: String = "127.0.0.1", port: Int = 0, historyLimit: Int = 1000, logDirectory: String? = nil) {
            self.host = host
            self.port = port
            self.historyLimit = historyLimit
            self.logDirectory = logDirectory
        }
    }

    public let configuration: Configuration
    let store: PodStore
    /// The temporary log directory made here, removed by `shutdown()`.
    private let ownedLogDirectory: String?
    private let listener = NIOLockedValueBox<(any Channel)?>(nil)
    private let connections = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])
    let traffic = Traffic()

    public init(configuration: Configuration = Configuration()) throws {
        self.configuration = configuration
        let directory = configuration.logDirectory
            ?? NSTemporaryDirectory() + "trellis-kube-sim-" + UUID().uuidString.prefix(8).lowercased()
        ownedLogDirectory = configuration.logDirectory == nil ? directory : nil
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        store = PodStore(historyLimit: configuration.historyLimit, logDirectory: directory, unpullableImages: configuration.unpullableImages,
                         nodeLabels: configuration.nodeLabels, startDelay: configuration.startDelay)
    }

    /// Binds and starts serving.
    public func start() async throws {
        let store = self.store
        let authenticator = Authenticator(token: configuration.bearerToken, tokenFile: configuration.bearerTokenFile)
        let traffic = self.traffic
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    try operations.configureHTTPServerPipeline(withPipeliningAssistance: true, withErrorHandling: true)
                    try operations.addHandler(KubeHTTPHandler(store: store, authenticator: authenticator, traffic: traffic))
                    traffic.connectionAccepted()
                    let key = ObjectIdentifier(channel)
                    connections.withLockedValue { $0[key] = channel }
                    channel.closeFuture.whenComplete { [self] _ in
                        _ = connections.withLockedValue { $0.removeValue(forKey: key) }
                    }
                }
            }
            .bind(host: configuration.host, port: configuration.port)
            .get()
        listener.withLockedValue { $0 = channel }
    }

    /// The port it listens on; nil before `start()`.
    public var port: Int? { listener.withLockedValue { $0?.localAddress?.port } }

    /// The current resourceVersion.
    public var resourceVersion: Int { store.resourceVersion }

    /// Fault injection: the next `count` API requests (of `method` — "GET",
    /// "POST", "DELETE" — if given) are answered with `code` (429 or a
    /// 5xx) as a Status. Also `POST /simulator/faults` with
    /// `{"code":500,"count":2,"method":"POST"}`.
    public func injectFaults(code: Int, count: Int = 1, method: String? = nil) {
        store.inject(Fault(code: code, count: count, method: method))
    }

    /// How many API requests (not `/simulator/…`) arrived with `method` for
    /// `path` (without the query), answered or refused; keys of
    /// `requestCounts` are `"GET /api/v1/namespaces/default/pods"`. Also
    /// `GET /simulator/requests`.
    public func requestCount(method: String, path: String) -> Int { traffic.count(method: method, path: path) }
    public var requestCounts: [String: Int] { traffic.counts }
    /// TCP connections accepted so far (keep-alive reuse shows as fewer
    /// connections than requests).
    public var connectionsAccepted: Int { traffic.connections }
    /// The body of every Pod create request, exactly as the client sent it
    /// (so tests can validate what an executor sends against the schema).
    public var podCreationBodies: [Data] { traffic.podCreations }

    /// Closes every open watch's connection (also `POST /simulator/drop-watches`).
    public func dropWatches() { store.dropWatches() }

    /// Stops listening, closes every connection and kills every Pod's process.
    /// Runs `body` with a started simulator and shuts it down however the
    /// body ends, before returning — so no Pod process outlives a test
    /// (a `defer { Task { await shutdown() } }` may never run before the
    /// test process exits, leaving the Pods' processes behind).
    public static func with<T>(
        configuration: Configuration = Configuration(), _ body: (KubeSimulator) async throws -> T
    ) async throws -> T {
        let simulator = try KubeSimulator(configuration: configuration)
        try await simulator.start()
        do {
            let result = try await body(simulator)
            await simulator.shutdown()
            return result
        } catch {
            await simulator.shutdown()
            throw error
        }
    }

    public func shutdown() async {
        let channel = listener.withLockedValue { value in defer { value = nil }; return value }
        try? await channel?.close()
        for connection in connections.withLockedValue({ Array($0.values) }) { try? await connection.close() }
        store.killAll()
        if let ownedLogDirectory { try? FileManager.default.removeItem(atPath: ownedLogDirectory) }
    }
}

/// One connection: requests routed to the store; watches and followed logs
/// stream chunked responses.
final class KubeHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let store: PodStore
    let authenticator: Authenticator
    let traffic: Traffic
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    /// The open watch of this connection, if any.
    private var watcher: Int?
    /// Set while a streamed response is open; cleared when it ends.
    private var streaming = false
    private var active = true
    private var tooLarge = false

    init(store: PodStore, authenticator: Authenticator, traffic: Traffic) {
        self.store = store
        self.authenticator = authenticator
        self.traffic = traffic
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var chunk):
            // The real API server's limit on a request body.
            if body.readableBytes + chunk.readableBytes <= 3 * 1024 * 1024 { body.writeBuffer(&chunk) } else { tooLarge = true }
        case .end:
            guard let head else { return }
            self.head = nil
            if tooLarge {
                tooLarge = false
                respond(context: context, head: head, code: 413, body: KubeError(code: 413, reason: "RequestEntityTooLarge", message: "request entity too large").status)
                return
            }
            handle(context: context, head: head, body: Data(body.readableBytesView))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        active = false
        if let watcher { store.cancelWatch(watcher) }
        watcher = nil
        context.fireChannelInactive()
    }

    private func handle(context: ChannelHandlerContext, head: HTTPRequestHead, body: Data) {
        let components = URLComponents(string: "http://simulator" + head.uri)
        let path = (components?.path ?? "").split(separator: "/").map(String.init)
        var query: [String: String] = [:]
        for item in components?.queryItems ?? [] { query[item.name] = item.value ?? "" }
        if path.first == "simulator" {
            control(context: context, head: head, path: path, body: body)
            return
        }
        traffic.record(method: head.method.rawValue, path: components?.path ?? "")
        do throws(KubeError) {
            // As the API server does: authentication before anything else.
            guard authenticator.allows(head.headers["Authorization"].first) else {
                throw KubeError(code: 401, reason: "Unauthorized", message: "Unauthorized")
            }
            if let fault = store.takeFault(method: head.method.rawValue) { throw fault }
            switch path.count {
            case 5... where path[0] == "api" && path[1] == "v1" && path[2] == "namespaces" && path[4] == "pods":
                try pods(context: context, head: head, namespace: path[3], rest: Array(path[5...]), query: query, body: body)
            case 5... where path[0] == "api" && path[1] == "v1" && path[2] == "namespaces" && path[4] == "events":
                try events(context: context, head: head, namespace: path[3], rest: Array(path[5...]), query: query)
            case 3 where path[0] == "api" && path[1] == "v1" && path[2] == "events":
                try events(context: context, head: head, namespace: nil, rest: [], query: query)
            case 6... where path[0] == "apis" && path[1] == "apps" && path[2] == "v1" && path[3] == "namespaces" && path[5] == "deployments":
                try deployments(context: context, head: head, namespace: path[4], rest: Array(path[6...]), query: query, body: body)
            default:
                throw KubeError(code: 404, reason: "NotFound", message: "the server could not find the requested resource")
            }
        } catch {
            respond(context: context, head: head, code: error.code, body: error.status)
        }
    }

    private static let notFound = KubeError(code: 404, reason: "NotFound", message: "the server could not find the requested resource")
    private static let methodNotAllowed = KubeError(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")

    /// `/api/v1/namespaces/{ns}/pods[/{name}[/log]]`.
    private func pods(context: ChannelHandlerContext, head: HTTPRequestHead, namespace: String, rest: [String], query: [String: String], body: Data) throws(KubeError) {
        switch (head.method, rest.count) {
        case (.POST, 0):
            traffic.recordPodCreation(body)
            respond(context: context, head: head, code: 201, body: try store.create(namespace: namespace, body: body))
        case (.GET, 0):
            let selector = try LabelSelector(query["labelSelector"])
            if ["true", "1"].contains(query["watch"] ?? "") {
                watch(context: context, head: head, namespace: namespace, selector: selector, query: query)
            } else {
                respond(context: context, head: head, code: 200, body: store.list(namespace: namespace, selector: selector))
            }
        case (.GET, 1):
            respond(context: context, head: head, code: 200, body: try store.get(namespace: namespace, name: rest[0]))
        case (.DELETE, 1):
            respond(context: context, head: head, code: 200, body: try store.delete(namespace: namespace, name: rest[0], gracePeriodSeconds: Self.gracePeriod(query: query, body: body)))
        case (.PATCH, 1):
            try Self.requirePatchType(head)
            respond(context: context, head: head, code: 200, body: try store.patchPod(namespace: namespace, name: rest[0], body: body))
        case (.GET, 2) where rest[1] == "log":
            try log(context: context, head: head, namespace: namespace, name: rest[0], container: query["container"],
                    follow: ["true", "1"].contains(query["follow"] ?? ""), tailLines: query["tailLines"].flatMap { Int($0) },
                    timestamps: ["true", "1"].contains(query["timestamps"] ?? ""))
        case (_, 0), (_, 1):
            throw Self.methodNotAllowed
        default:
            throw Self.notFound
        }
    }

    /// `/apis/apps/v1/namespaces/{ns}/deployments[/{name}[/scale]]`.
    private func deployments(context: ChannelHandlerContext, head: HTTPRequestHead, namespace: String, rest: [String], query: [String: String], body: Data) throws(KubeError) {
        switch (head.method, rest.count) {
        case (.POST, 0):
            respond(context: context, head: head, code: 201, body: try store.createDeployment(namespace: namespace, body: body))
        case (.GET, 0):
            if ["true", "1"].contains(query["watch"] ?? "") {
                throw KubeError(code: 405, reason: "MethodNotAllowed", message: "the simulator does not serve watches of deployments")
            }
            respond(context: context, head: head, code: 200, body: store.listDeployments(namespace: namespace, selector: try LabelSelector(query["labelSelector"])))
        case (.GET, 1):
            respond(context: context, head: head, code: 200, body: try store.getDeployment(namespace: namespace, name: rest[0]))
        case (.DELETE, 1):
            var policy = query["propagationPolicy"]
            if policy == nil, let options = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] { policy = options["propagationPolicy"] as? String }
            respond(context: context, head: head, code: 200, body: try store.deleteDeployment(namespace: namespace, name: rest[0], propagationPolicy: policy))
        case (.GET, 2) where rest[1] == "scale":
            respond(context: context, head: head, code: 200, body: try store.getScale(namespace: namespace, name: rest[0]))
        case (.PUT, 2) where rest[1] == "scale":
            respond(context: context, head: head, code: 200, body: try store.updateScale(namespace: namespace, name: rest[0], body: body, patch: false))
        case (.PATCH, 2) where rest[1] == "scale":
            try Self.requirePatchType(head)
            respond(context: context, head: head, code: 200, body: try store.updateScale(namespace: namespace, name: rest[0], body: body, patch: true))
        case (_, 0), (_, 1), (_, 2) where rest[1] == "scale":
            throw Self.methodNotAllowed
        default:
            throw Self.notFound
        }
    }

    /// A PATCH must say it is a merge or strategic merge patch (415 otherwise).
    static func requirePatchType(_ head: HTTPRequestHead) throws(KubeError) {
        let type = head.headers["Content-Type"].first?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        guard KubeError.patchMediaTypes.contains(type) else { throw KubeError.unsupportedMediaType }
    }

    /// `gracePeriodSeconds` from the query or a DeleteOptions body.
    static func gracePeriod(query: [String: String], body: Data) -> Int? {
        if let grace = query["gracePeriodSeconds"].flatMap({ Int($0) }) { return grace }
        return ((try? JSONSerialization.jsonObject(with: body)) as? [String: Any])?["gracePeriodSeconds"] as? Int
    }

    /// `/api/v1/namespaces/{ns}/events[/{name}]` and `/api/v1/events`.
    private func events(context: ChannelHandlerContext, head: HTTPRequestHead, namespace: String?, rest: [String], query: [String: String]) throws(KubeError) {
        switch (head.method, rest.count) {
        case (.GET, 0):
            let fields = try FieldSelector(query["fieldSelector"], supported: EventRecord.selectableFields)
            let labels = try LabelSelector(query["labelSelector"])
            respond(context: context, head: head, code: 200, body: store.listEvents(namespace: namespace, fieldSelector: fields, labelSelector: labels))
        case (.GET, 1):
            respond(context: context, head: head, code: 200, body: try store.getEvent(namespace: namespace ?? "", name: rest[0]))
        case (_, 0), (_, 1):
            throw Self.methodNotAllowed
        default:
            throw Self.notFound
        }
    }

    /// The simulator's own control endpoints (not Kubernetes).
    private func control(context: ChannelHandlerContext, head: HTTPRequestHead, path: [String], body: Data) {
        switch (head.method, path.dropFirst().first) {
        case (.POST, "faults"):
            guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any], let code = object["code"] as? Int else {
                respond(context: context, head: head, code: 400, body: KubeError(code: 400, reason: "BadRequest", message: "want {\"code\":500,\"count\":1,\"method\":\"GET\"}").status)
                return
            }
            store.inject(Fault(code: code, count: object["count"] as? Int ?? 1, method: object["method"] as? String))
            respond(context: context, head: head, code: 204, body: Data())
        case (.POST, "drop-watches"):
            respond(context: context, head: head, code: 204, body: Data())
            store.dropWatches()
        case (.GET, "requests"):
            respond(context: context, head: head, code: 200, body: traffic.json())
        default:
            respond(context: context, head: head, code: 404, body: KubeError(code: 404, reason: "NotFound", message: "no such simulator endpoint").status)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, code: Int, body: Data, contentType: String = "application/json") {
        var headers = HTTPHeaders()
        if code == 429 { headers.add(name: "Retry-After", value: "1") }
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .init(statusCode: code), headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: body)))), promise: nil)
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    private func startStream(context: ChannelHandlerContext, head: HTTPRequestHead, contentType: String) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Transfer-Encoding", value: "chunked")
        streaming = true
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
    }

    private func endStream(context: ChannelHandlerContext, head: HTTPRequestHead) {
        guard streaming else { return }
        streaming = false
        if let watcher { store.cancelWatch(watcher) }
        watcher = nil
        let keepAlive = head.isKeepAlive
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }

    private func watch(context: ChannelHandlerContext, head: HTTPRequestHead, namespace: String, selector: LabelSelector, query: [String: String]) {
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        startStream(context: context, head: head, contentType: "application/json")
        let resourceVersion = query["resourceVersion"].flatMap { Int($0) }
        do throws(KubeError) {
            watcher = try store.watch(namespace: namespace, selector: selector, resourceVersion: resourceVersion) { event in
                let line = event.line
                loop.execute {
                    let (handler, context) = bound.value
                    guard handler.streaming else { return }
                    context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: line)))), promise: nil)
                }
            } drop: {
                loop.execute { bound.value.context.close(promise: nil) }
            }
        } catch {
            // As the real API does: an ERROR event carrying the Status, then the end.
            var line = Data(#"{"type":"ERROR","object":"#.utf8)
            line.append(error.status)
            line.append(Data("}\n".utf8))
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: line)))), promise: nil)
            endStream(context: context, head: head)
            return
        }
        if let timeout = query["timeoutSeconds"].flatMap({ Int($0) }), timeout > 0 {
            loop.scheduleTask(in: .seconds(Int64(timeout))) {
                let (handler, context) = bound.value
                handler.endStream(context: context, head: head)
            }
        }
    }

    /// The last `lines` lines of `data` (all of it when nil).
    static func tail(_ data: Data, lines: Int?) -> Data {
        guard let lines else { return data }
        guard lines > 0 else { return Data() }
        var count = 0
        var index = data.endIndex
        if index > data.startIndex, data[data.index(before: index)] == UInt8(ascii: "\n") { index = data.index(before: index) }
        while index > data.startIndex {
            let previous = data.index(before: index)
            if data[previous] == UInt8(ascii: "\n") {
                count += 1
                if count == lines { return data[index...] }
            }
            index = previous
        }
        return data
    }

    private func log(context: ChannelHandlerContext, head: HTTPRequestHead, namespace: String, name: String, container: String?, follow: Bool, tailLines: Int?, timestamps: Bool) throws(KubeError) {
        let (logPath, ended) = try store.log(namespace: namespace, name: name, container: container)
        let path = timestamps ? logPath + ".timestamps" : logPath
        guard follow && !ended else {
            let contents = Self.tail(FileManager.default.contents(atPath: path) ?? Data(), lines: tailLines)
            respond(context: context, head: head, code: 200, body: Data(contents), contentType: "text/plain")
            return
        }
        startStream(context: context, head: head, contentType: "text/plain")
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        let store = self.store
        // Polls the log file until the container has ended and all its
        // output is sent (or the client has gone).
        Thread.detachNewThread {
            guard let file = FileHandle(forReadingAtPath: path) else {
                loop.execute { bound.value.handler.endStream(context: bound.value.context, head: head) }
                return
            }
            defer { try? file.close() }
            var first = true
            while true {
                let ended = store.hasEnded(namespace: namespace, name: name)
                var chunk = file.readDataToEndOfFile()
                if first { chunk = Data(KubeHTTPHandler.tail(chunk, lines: tailLines)); first = false }
                let open = (try? loop.submit { () -> Bool in
                    let (handler, context) = bound.value
                    guard handler.active, handler.streaming else { return false }
                    if !chunk.isEmpty {
                        context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: chunk)))), promise: nil)
                    }
                    return true
                }.wait()) ?? false
                if !open { return }
                if ended { break }
                usleep(50_000)
            }
            loop.execute { bound.value.handler.endStream(context: bound.value.context, head: head) }
        }
    }
}

/// Bearer-token authentication, as the API server's token authenticator
/// answers it: no header, another scheme or another token is 401.
struct Authenticator: Sendable {
    var token: String?
    var tokenFile: String?

    /// The token in force now (the file is read on every call); nil when
    /// authentication is off.
    func currentToken() -> String?? {
        if let tokenFile {
            let contents = FileManager.default.contents(atPath: tokenFile).map { String(decoding: $0, as: UTF8.self) } ?? ""
            return .some(contents.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if let token { return .some(token) }
        return .none
    }

    func allows(_ authorization: String?) -> Bool {
        guard case .some(let expected) = currentToken() else { return true }
        guard let expected, !expected.isEmpty, let authorization else { return false }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return false }
        let given = Array(parts[1].trimmingCharacters(in: .whitespaces).utf8), wanted = Array(expected.utf8)
        // Constant time for tokens of the same length.
        guard given.count == wanted.count else { return false }
        return zip(given, wanted).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

/// What arrived: API requests per method and path, connections accepted.
final class Traffic: Sendable {
    private let state = NIOLockedValueBox<(counts: [String: Int], connections: Int)>(([:], 0))
    private let creations = NIOLockedValueBox<[Data]>([])

    func recordPodCreation(_ body: Data) { creations.withLockedValue { $0.append(body) } }
    var podCreations: [Data] { creations.withLockedValue { $0 } }

    func record(method: String, path: String) {
        state.withLockedValue { $0.counts["\(method) \(path)", default: 0] += 1 }
    }

    func connectionAccepted() { state.withLockedValue { $0.connections += 1 } }

    func count(method: String, path: String) -> Int { state.withLockedValue { $0.counts["\(method) \(path)"] ?? 0 } }
    var counts: [String: Int] { state.withLockedValue { $0.counts } }
    var connections: Int { state.withLockedValue { $0.connections } }

    /// `{"requests":{"GET /api/v1/…":2},"connections":1}`.
    func json() -> Data {
        let (counts, connections) = state.withLockedValue { ($0.counts, $0.connections) }
        return (try? JSONSerialization.data(withJSONObject: ["requests": counts, "connections": connections], options: [.sortedKeys])) ?? Data()
    }
}
