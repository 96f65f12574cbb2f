/// What went wrong talking to the Kubernetes API.
public enum KubeError: Error, Sendable, CustomStringConvertible {
    /// The endpoint could not be configured (kubeconfig, in-cluster files).
    case configuration(String)
    /// No HTTP answer: connection refused, TLS failure, timeout.
    case transport(String)
    /// The API answered with an error status; `status` is its metav1.Status
    /// when the body was one.
    case api(code: Int, status: Status?, request: String)
    /// The answer was not the JSON expected.
    case decoding(String)
    /// The request was cancelled (a watch or log stream stopped by its owner).
    case cancelled

    public var description: String {
        switch self {
        case .configuration(let message): "Kubernetes configuration: \(message)"
        case .transport(let message): "Kubernetes API unreachable: \(message)"
        case .api(let code, let status, let request):
            "\(request): HTTP \(code)\(status?.reason.map { " \($0)" } ?? "")\(status?.message.map { ": \($0)" } ?? "")"
        case .decoding(let message): "unexpected answer from the Kubernetes API: \(message)"
        case .cancelled: "cancelled"
        }
    }

    /// The HTTP status of an API error.
    public var code: Int? { if case .api(let code, _, _) = self { code } else { nil } }
    /// The metav1.Status reason of an API error (NotFound, AlreadyExists...).
    public var reason: String? { if case .api(_, let status, _) = self { status?.reason } else { nil } }

    public var isNotFound: Bool { code == 404 }
    public var isAlreadyExists: Bool { code == 409 && reason == "AlreadyExists" }
    /// 410 Gone: a watch's resourceVersion is too old; list again.
    public var isGone: Bool { code == 410 || reason == "Expired" || reason == "Gone" }
}
