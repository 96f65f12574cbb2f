import Foundation

/// What deploy/generate-secrets writes, run into a scratch directory.
struct GeneratedSecrets {
    let directory: URL
    /// The Secrets of secrets.yaml, decoded: name → key → value.
    let secrets: [String: [String: String]]
    let objects: [KubeValue]
    let output: String

    static func generate(_ arguments: [String] = []) async throws -> GeneratedSecrets {
        let directory = try Repository.temporaryDirectory("trellis-secrets").appendingPathComponent("secrets")
        let result = try await Repository.run(Repository.path("deploy/generate-secrets"), ["--out", directory.path] + arguments)
        return try GeneratedSecrets(directory: directory, output: result.stdout)
    }

    init(directory: URL, output: String) throws {
        self.directory = directory
        self.output = output
        objects = try KubeValue.documents(yaml: try String(contentsOf: directory.appendingPathComponent("secrets.yaml"), encoding: .utf8))
        var secrets: [String: [String: String]] = [:]
        for object in objects where object["kind"].string == "Secret" {
            let name = object["metadata"]["name"].string ?? ""
            for (key, value) in object["data"].object ?? [:] {
                guard let encoded = value.string, let data = Data(base64Encoded: encoded) else {
                    throw Repository.Failed(description: "Secret \(name) key \(key) is not base64")
                }
                secrets[name, default: [:]][key] = String(decoding: data, as: UTF8.self)
            }
        }
        self.secrets = secrets
    }

    func file(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory.deletingLastPathComponent())
    }
}
