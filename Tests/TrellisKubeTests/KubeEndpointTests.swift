import Foundation
import Testing
import TrellisKube

/// Where the API is and how to authenticate: kubeconfig files (as kubectl
/// reads them) and a Pod's ServiceAccount.
@Suite struct KubeEndpointTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "trellis-kube-endpoint-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func write(_ name: String, _ text: String) throws -> String {
        let path = directory + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let kubeconfig = """
    apiVersion: v1
    kind: Config
    current-context: dev
    clusters:
    - name: dev-cluster
      cluster:
        server: https://dev.example:6443
        certificate-authority-data: \(Data("CA PEM".utf8).base64EncodedString())
    - name: prod-cluster
      cluster:
        server: https://prod.example:443/
        certificate-authority: certs/prod-ca.crt
    users:
    - name: dev-user
      user:
        token: dev-token
    - name: prod-user
      user:
        client-certificate: certs/client.crt
        client-key-data: \(Data("KEY PEM".utf8).base64EncodedString())
    - name: cloud-user
      user:
        exec:
          command: aws
    contexts:
    - name: dev
      context: {cluster: dev-cluster, user: dev-user, namespace: pipelines}
    - name: prod
      context: {cluster: prod-cluster, user: prod-user}
    - name: cloud
      context: {cluster: prod-cluster, user: cloud-user}
    """

    @Test func currentContextOfAKubeconfig() throws {
        let path = try write("config", Self.kubeconfig)
        let endpoint = try KubeEndpoint.kubeconfig(path: path)
        #expect(endpoint.server == "https://dev.example:6443")
        #expect(endpoint.namespace == "pipelines")
        #expect(endpoint.certificateAuthority == .data(Data("CA PEM".utf8)))
        guard case .token("dev-token") = endpoint.credentials else { Issue.record("credentials \(endpoint.credentials)"); return }
    }

    @Test func namedContextWithFilesRelativeToTheKubeconfig() throws {
        let path = try write("config", Self.kubeconfig)
        let endpoint = try KubeEndpoint.kubeconfig(path: path, context: "prod")
        #expect(endpoint.server == "https://prod.example:443")
        #expect(endpoint.namespace == nil)
        #expect(endpoint.certificateAuthority == .file(directory + "/certs/prod-ca.crt"))
        guard case .clientCertificate(.file(let certificate), .data(let key)) = endpoint.credentials else {
            Issue.record("credentials \(endpoint.credentials)"); return
        }
        #expect(certificate == directory + "/certs/client.crt")
        #expect(key == Data("KEY PEM".utf8))
    }

    @Test func kubeconfigVariableMergesFilesFirstWins() throws {
        let first = try write("first", """
        current-context: mine
        clusters:
        - name: shared
          cluster: {server: "https://first.example"}
        contexts:
        - name: mine
          context: {cluster: shared, user: me}
        users:
        - name: me
          user: {tokenFile: token}
        """)
        let second = try write("second", Self.kubeconfig.replacingOccurrences(of: "dev-cluster", with: "shared"))
        let endpoint = try KubeEndpoint.kubeconfig(environment: ["KUBECONFIG": "\(first):\(directory)/missing:\(second)"])
        #expect(endpoint.server == "https://first.example")
        guard case .tokenFile(let file) = endpoint.credentials else { Issue.record("credentials \(endpoint.credentials)"); return }
        #expect(file == directory + "/token")
        // A context only the second file has.
        let dev = try KubeEndpoint.kubeconfig(context: "dev", environment: ["KUBECONFIG": "\(first):\(second)"])
        #expect(dev.server == "https://first.example")
        #expect(dev.namespace == "pipelines")
    }

    @Test func clearErrorsForBadKubeconfigs() throws {
        let path = try write("config", Self.kubeconfig)
        func message(_ body: () throws(KubeError) -> KubeEndpoint) -> String {
            do { _ = try body(); return "no error" } catch { return error.description }
        }
        #expect(message { () throws(KubeError) in try KubeEndpoint.kubeconfig(path: path, context: "staging") }
            .contains("no context \"staging\" (it has: cloud, dev, prod)"))
        #expect(message { () throws(KubeError) in try KubeEndpoint.kubeconfig(path: path, context: "cloud") }
            .contains("exec credential plugin"))
        #expect(message { () throws(KubeError) in try KubeEndpoint.kubeconfig(path: directory + "/nope") }
            .contains("\(directory)/nope does not exist"))
        let broken = try write("broken", "clusters: [oops")
        #expect(message { () throws(KubeError) in try KubeEndpoint.kubeconfig(path: broken) }.contains("not valid YAML"))
        let noServer = try write("no-server", "clusters:\n- name: c\n  cluster: {}\n")
        #expect(message { () throws(KubeError) in try KubeEndpoint.kubeconfig(path: noServer) }.contains("clusters[0] (c) has no server"))
    }

    @Test func inClusterServiceAccount() throws {
        _ = try write("token", "sa-token\n")
        _ = try write("ca.crt", "CA")
        _ = try write("namespace", "trellis\n")
        let endpoint = try KubeEndpoint.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"],
            serviceAccountDirectory: directory
        )
        #expect(endpoint.server == "https://10.96.0.1:443")
        #expect(endpoint.namespace == "trellis")
        #expect(endpoint.certificateAuthority == .file(directory + "/ca.crt"))
        guard case .tokenFile(let file) = endpoint.credentials else { Issue.record("credentials \(endpoint.credentials)"); return }
        #expect(file == directory + "/token")

        do {
            _ = try KubeEndpoint.inCluster(environment: [:], serviceAccountDirectory: directory)
            Issue.record("in-cluster without KUBERNETES_SERVICE_HOST succeeded")
        } catch {
            #expect(error.description.contains("KUBERNETES_SERVICE_HOST"))
        }
        // automatic(): the environment decides.
        let automatic = try KubeEndpoint.automatic(environment: ["KUBECONFIG": try write("config", Self.kubeconfig)])
        #expect(automatic.server == "https://dev.example:6443")
    }
}
