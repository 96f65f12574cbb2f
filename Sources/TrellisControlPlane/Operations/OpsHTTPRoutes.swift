/// What the ops server answers, apart from the HTTP plumbing: the routes,
/// the methods they allow, and each answer's status, type and body.
struct OpsHTTPRoutes: Sendable {
    let registry: MetricsRegistry
    let readiness: @Sendable () async -> Readiness
    let beforeMetrics: (@Sendable () async -> Void)?

    /// An answer before it is encoded.
    struct Answer: Sendable, Equatable {
        var status: Int
        var contentType = "text/plain; charset=utf-8"
        var body: String
        var headers: [(String, String)] = []

        static func == (lhs: Answer, rhs: Answer) -> Bool {
            lhs.status == rhs.status && lhs.contentType == rhs.contentType && lhs.body == rhs.body
                && lhs.headers.elementsEqual(rhs.headers) { $0 == $1 }
        }
    }

    /// The paths served, by their path.
    enum Route: String, CaseIterable {
        case healthz = "/healthz"
        case readyz = "/readyz"
        case metrics = "/metrics"
    }

    /// How a request is answered: at once, or after awaiting the readiness
    /// check or the metrics refresh.
    enum Plan {
        case immediate(Answer)
        case readiness
        case metrics
    }

    static let allowedMethods = "GET, HEAD"

    /// The plan for `method` on `uri` (its query string is ignored).
    func plan(method: String, uri: String) -> Plan {
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? uri
        guard let route = Route(rawValue: path) else {
            return .immediate(Answer(status: 404, body: "not found: \(path)\n"))
        }
        guard method == "GET" || method == "HEAD" else {
            return .immediate(Answer(status: 405, body: "method not allowed\n", headers: [("Allow", Self.allowedMethods)]))
        }
        switch route {
        case .healthz: return .immediate(Answer(status: 200, body: "ok\n"))
        case .readyz: return .readiness
        case .metrics: return .metrics
        }
    }

    /// `/readyz`: 200 `ready`, or 503 `not ready` followed by one reason a line.
    func readinessAnswer() async -> Answer {
        let readiness = await readiness()
        if readiness.isReady { return Answer(status: 200, body: "ready\n") }
        let reasons = readiness.reasons.map { $0.replacingOccurrences(of: "\n", with: " ") + "\n" }.joined()
        return Answer(status: 503, body: "not ready\n" + reasons)
    }

    /// `/metrics`: the registry, after the refresh closure has run.
    func metricsAnswer() async -> Answer {
        await beforeMetrics?()
        return Answer(status: 200, contentType: PrometheusText.contentType, body: registry.render())
    }

    /// 413 for a request that announces a body.
    static let bodyRejected = Answer(status: 413, body: "requests to this server carry no body\n")
}
