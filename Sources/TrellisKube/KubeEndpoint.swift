public import Foundation

/// Where the Kubernetes API is and how to authenticate to it: from the Pod's
/// ServiceAccount when running in a cluster, or from a kubeconfig file
/// outside one (as kubectl does).
public struct KubeEndpoint: Sendable {
    /// Bytes held in memory or a file to read them from (kubeconfig's
    /// `certificate-authority-data` or `certificate-authority`, ...).
    public enum Material: Sendable, Equatable {
        case file(String)
        case data(Data)
    }

    public enum Credentials: Sendable {
        case none
        /// A fixed bearer token.
        case token(String)
        /// A bearer token read from a file, re-read when the file changes
        /// (projected ServiceAccount tokens rotate about hourly).
        case tokenFile(String)
        case clientCertificate(certificate: Material, key: Material)
    }

    /// The API server's base URL, `https://host:port` (no trailing slash).
    public var server: String
    public var credentials: Credentials
    /// The CA bundle that signs the server's certificate; nil uses the
    /// system's.
    public var certificateAuthority: Material?
    public var insecureSkipTLSVerify: Bool
    /// The namespace of the context (kubeconfig) or of the Pod (in cluster).
    public var namespace: String?

    public init(
        server: String, credentials: Credentials = .none, certificateAuthority: Material? = nil,
        insecureSkipTLSVerify: Bool = false, namespace: String? = nil
    ) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.credentials = credentials
        self.certificateAuthority = certificateAuthority
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
        self.namespace = namespace
    }

    /// The directory a Pod's ServiceAccount is mounted at.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// The endpoint of the cluster this process runs in: the API server from
    /// KUBERNETES_SERVICE_HOST/PORT, the ServiceAccount's token (re-read as it
    /// rotates), CA bundle and namespace.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        serviceAccountDirectory directory: String = serviceAccountDirectory
    ) throws(KubeError) -> KubeEndpoint {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
              let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty else {
            throw .configuration("not running in a Kubernetes cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set")
        }
        let tokenPath = directory + "/token"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw .configuration("in-cluster: the ServiceAccount token \(tokenPath) is missing or unreadable (is automountServiceAccountToken false?)")
        }
        let caPath = directory + "/ca.crt"
        let namespace = (try? String(contentsOfFile: directory + "/namespace", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return KubeEndpoint(
            server: "https://\(hostPart):\(port)",
            credentials: .tokenFile(tokenPath),
            certificateAuthority: FileManager.default.fileExists(atPath: caPath) ? .file(caPath) : nil,
            namespace: namespace?.isEmpty == false ? namespace : nil
        )
    }

    /// The endpoint a kubeconfig names: `path`, else the files in KUBECONFIG
    /// (colon-separated, merged as kubectl merges them: the first file to set
    /// a name wins), else ~/.kube/config; `context`, else current-context.
    public static func kubeconfig(
        path: String? = nil, context: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(KubeError) -> KubeEndpoint {
        let paths: [String]
        if let path, !path.isEmpty {
            paths = [path]
        } else if let variable = environment["KUBECONFIG"], !variable.isEmpty {
            paths = variable.split(separator: ":").map(String.init)
        } else {
            paths = [(environment["HOME"] ?? NSHomeDirectory()) + "/.kube/config"]
        }
        var merged = Kubeconfig()
        var readAny = false
        for file in paths {
            guard FileManager.default.fileExists(atPath: file) else {
                if paths.count == 1 { throw .configuration("kubeconfig \(file) does not exist") }
                continue
            }
            let text: String
            do { text = try String(contentsOfFile: file, encoding: .utf8) } catch {
                throw .configuration("kubeconfig \(file) cannot be read: \(error.localizedDescription)")
            }
            merged.merge(try Kubeconfig.parse(text, file: file))
            readAny = true
        }
        guard readAny else { throw .configuration("none of the kubeconfig files in KUBECONFIG exist: \(paths.joined(separator: ", "))") }
        return try merged.endpoint(context: context)
    }

    /// The endpoint an executor's settings name: `apiServer` as is (with
    /// `tokenFile`'s token if given), else `automatic(kubeconfig:context:)`.
    /// Empty strings mean "not set".
    public static func forSettings(apiServer: String, tokenFile: String, kubeconfig: String, context: String) throws(KubeError) -> KubeEndpoint {
        if !apiServer.isEmpty {
            return KubeEndpoint(server: apiServer, credentials: tokenFile.isEmpty ? .none : .tokenFile(tokenFile))
        }
        return try automatic(kubeconfig: kubeconfig.isEmpty ? nil : kubeconfig, context: context.isEmpty ? nil : context)
    }

    /// In-cluster when KUBERNETES_SERVICE_HOST is set (and no kubeconfig was
    /// named), else the kubeconfig.
    public static func automatic(
        kubeconfig path: String? = nil, context: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(KubeError) -> KubeEndpoint {
        if path == nil, context == nil, environment["KUBERNETES_SERVICE_HOST"] != nil {
            return try inCluster(environment: environment)
        }
        return try kubeconfig(path: path, context: context, environment: environment)
    }
}

/// The parts of a kubeconfig file (clientcmd/api/v1 Config) that say how to
/// reach a cluster.
struct Kubeconfig {
    struct Cluster {
        var server: String
        var certificateAuthority: String?
        var certificateAuthorityData: String?
        var insecureSkipTLSVerify: Bool
        var file: String
    }

    struct User {
        var token: String?
        var tokenFile: String?
        var clientCertificate: String?
        var clientCertificateData: String?
        var clientKey: String?
        var clientKeyData: String?
        var unsupported: String?
        var file: String
    }

    struct Context {
        var cluster: String
        var user: String
        var namespace: String?
    }

    var clusters: [String: Cluster] = [:]
    var users: [String: User] = [:]
    var contexts: [String: Context] = [:]
    var currentContext: String?

    static func parse(_ text: String, file: String) throws(KubeError) -> Kubeconfig {
        let root: Any?
        do throws(YAMLDocument.Problem) { root = try YAMLDocument.load(text) } catch {
            throw .configuration("kubeconfig \(file) is not valid YAML: \(error.message)")
        }
        guard let document = root as? [String: Any] else {
            if root == nil { return Kubeconfig() }
            throw .configuration("kubeconfig \(file) is not a mapping at the top level")
        }
        var config = Kubeconfig()
        config.currentContext = (document["current-context"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        for (index, entry) in try namedEntries(document["clusters"], key: "cluster", section: "clusters", file: file).enumerated() {
            let where_ = "\(file): clusters[\(index)] (\(entry.name))"
            guard let server = entry.body["server"] as? String, !server.isEmpty else {
                throw .configuration("\(where_) has no server")
            }
            let cluster = Cluster(
                server: server,
                certificateAuthority: relative(entry.body["certificate-authority"] as? String, to: file),
                certificateAuthorityData: entry.body["certificate-authority-data"] as? String,
                insecureSkipTLSVerify: entry.body["insecure-skip-tls-verify"] as? Bool ?? false,
                file: file
            )
            if config.clusters[entry.name] == nil { config.clusters[entry.name] = cluster }
        }
        for entry in try namedEntries(document["users"], key: "user", section: "users", file: file) {
            var unsupported: String?
            if entry.body["exec"] != nil { unsupported = "an exec credential plugin" }
            if entry.body["auth-provider"] != nil { unsupported = "an auth-provider" }
            if entry.body["username"] != nil, entry.body["token"] == nil, entry.body["client-certificate"] == nil,
               entry.body["client-certificate-data"] == nil { unsupported = "basic authentication" }
            let user = User(
                token: entry.body["token"] as? String,
                tokenFile: relative(entry.body["tokenFile"] as? String, to: file),
                clientCertificate: relative(entry.body["client-certificate"] as? String, to: file),
                clientCertificateData: entry.body["client-certificate-data"] as? String,
                clientKey: relative(entry.body["client-key"] as? String, to: file),
                clientKeyData: entry.body["client-key-data"] as? String,
                unsupported: unsupported,
                file: file
            )
            if config.users[entry.name] == nil { config.users[entry.name] = user }
        }
        for (index, entry) in try namedEntries(document["contexts"], key: "context", section: "contexts", file: file).enumerated() {
            guard let cluster = entry.body["cluster"] as? String else {
                throw .configuration("\(file): contexts[\(index)] (\(entry.name)) names no cluster")
            }
            let context = Context(
                cluster: cluster, user: entry.body["user"] as? String ?? "",
                namespace: (entry.body["namespace"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            )
            if config.contexts[entry.name] == nil { config.contexts[entry.name] = context }
        }
        return config
    }

    /// Adds another file's entries; names already present win (kubectl's
    /// rule), as does the first current-context.
    mutating func merge(_ other: Kubeconfig) {
        clusters.merge(other.clusters) { first, _ in first }
        users.merge(other.users) { first, _ in first }
        contexts.merge(other.contexts) { first, _ in first }
        if currentContext == nil { currentContext = other.currentContext }
    }

    func endpoint(context requested: String?) throws(KubeError) -> KubeEndpoint {
        guard let contextName = requested ?? currentContext else {
            throw .configuration("the kubeconfig sets no current-context; name a context")
        }
        guard let context = contexts[contextName] else {
            let known = contexts.keys.sorted().joined(separator: ", ")
            throw .configuration("the kubeconfig has no context \"\(contextName)\" (it has: \(known.isEmpty ? "none" : known))")
        }
        guard let cluster = clusters[context.cluster] else {
            throw .configuration("context \"\(contextName)\" names cluster \"\(context.cluster)\", which the kubeconfig does not define")
        }
        var credentials = KubeEndpoint.Credentials.none
        if !context.user.isEmpty {
            guard let user = users[context.user] else {
                throw .configuration("context \"\(contextName)\" names user \"\(context.user)\", which the kubeconfig does not define")
            }
            if let token = user.token, !token.isEmpty {
                credentials = .token(token)
            } else if let tokenFile = user.tokenFile {
                credentials = .tokenFile(tokenFile)
            } else if let certificate = try material(file: user.clientCertificate, data: user.clientCertificateData, what: "client-certificate-data of user \"\(context.user)\""),
                      let key = try material(file: user.clientKey, data: user.clientKeyData, what: "client-key-data of user \"\(context.user)\"") {
                credentials = .clientCertificate(certificate: certificate, key: key)
            } else if let unsupported = user.unsupported {
                throw .configuration("user \"\(context.user)\" in \(user.file) authenticates with \(unsupported), which Trellis does not support; give it a token, tokenFile or client certificate")
            }
        }
        return KubeEndpoint(
            server: cluster.server,
            credentials: credentials,
            certificateAuthority: try material(file: cluster.certificateAuthority, data: cluster.certificateAuthorityData, what: "certificate-authority-data of cluster \"\(context.cluster)\""),
            insecureSkipTLSVerify: cluster.insecureSkipTLSVerify,
            namespace: context.namespace
        )
    }

    private func material(file: String?, data: String?, what: String) throws(KubeError) -> KubeEndpoint.Material? {
        if let data, !data.isEmpty {
            guard let bytes = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else {
                throw .configuration("the \(what) is not valid base64")
            }
            return .data(bytes)
        }
        if let file, !file.isEmpty { return .file(file) }
        return nil
    }

    private static func namedEntries(_ value: Any?, key: String, section: String, file: String) throws(KubeError) -> [(name: String, body: [String: Any])] {
        guard let value else { return [] }
        guard let list = value as? [Any] else { throw .configuration("\(file): \(section) is not a list") }
        var entries: [(name: String, body: [String: Any])] = []
        for (index, item) in list.enumerated() {
            guard let item = item as? [String: Any], let name = item["name"] as? String else {
                throw .configuration("\(file): \(section)[\(index)] has no name")
            }
            guard let body = item[key] as? [String: Any] else {
                throw .configuration("\(file): \(section)[\(index)] (\(name)) has no \(key) mapping")
            }
            entries.append((name, body))
        }
        return entries
    }

    /// kubeconfig paths are relative to the file that names them.
    private static func relative(_ path: String?, to file: String) -> String? {
        guard let path, !path.isEmpty else { return nil }
        if path.hasPrefix("/") { return path }
        return (file as NSString).deletingLastPathComponent + "/" + path
    }
}
