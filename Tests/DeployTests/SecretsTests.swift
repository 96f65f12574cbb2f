import Foundation
import Testing
import TrellisTestSupport

extension Deploy {
    /// deploy/generate-secrets: fresh random credentials in files only their
    /// owner reads, Secrets that validate and that hold every key the manifests
    /// refer to, a directory git ignores, and no overwriting by accident.
    @Suite struct SecretsTests {
        @Test func itWritesPrivateFilesAndSecretsWithEveryKeyTheManifestsUse() async throws {
            let generated = try await GeneratedSecrets.generate()
            defer { generated.remove() }
            let files = FileManager.default
            let directoryMode = try files.attributesOfItem(atPath: generated.directory.path)[.posixPermissions] as? Int
            #expect(directoryMode == 0o700)
            for name in ["agent-join-token", "admin-token", "postgres-password", "database-url", "secrets.yaml"] {
                let mode = try files.attributesOfItem(atPath: generated.directory.appendingPathComponent(name).path)[.posixPermissions] as? Int
                #expect(mode == 0o600, "\(name): \(String(mode ?? 0, radix: 8))")
            }

            // The files and the Secrets say the same.
            let join = try generated.file("agent-join-token")
            let admin = try generated.file("admin-token")
            let password = try generated.file("postgres-password")
            let url = try generated.file("database-url")
            #expect(generated.secrets == [
                "trellis-database": ["database-url": url, "postgres-password": password],
                "trellis-agent-join-token": ["token": join],
                "trellis-admin-token": ["token": admin],
            ])
            // Long random tokens (trellisd's admin_token_file insists on 32+),
            // no trailing newline, the trial database's URL with its password.
            #expect(join.wholeMatch(of: /trellis_join_[0-9a-f]{64}/) != nil, "\(join)")
            #expect(admin.wholeMatch(of: /trellis_[0-9a-f]{64}/) != nil, "\(admin)")
            #expect(password.wholeMatch(of: /[0-9a-f]{48}/) != nil)
            #expect(url == "postgresql://trellis:\(password)@postgres.trellis.svc:5432/trellis?sslmode=disable")
            #expect(generated.objects.allSatisfy { $0["metadata"]["namespace"].string == "trellis" })
            try await KubernetesValidate.validate(objects: generated.objects.map { try $0.jsonData() }, name: "secrets.yaml")

            // A second run makes different credentials.
            let again = try await GeneratedSecrets.generate()
            defer { again.remove() }
            #expect(try again.file("agent-join-token") != join && again.file("admin-token") != admin && again.file("postgres-password") != password)

            // Every Secret key any rendering refers to (env, volumes, KEDA) is
            // one the script makes.
            for rendering in try await Rendering.all() {
                for reference in Self.secretReferences(rendering) {
                    #expect(generated.secrets[reference.secret]?[reference.key] != nil, "\(rendering) refers to \(reference), which generate-secrets does not make")
                }
            }
        }

        @Test func anExternalDatabaseAndAnotherNamespace() async throws {
            let external = "postgresql://trellis@db.example.com:5432/trellis?sslmode=verify-full"
            let generated = try await GeneratedSecrets.generate(["--namespace", "data-platform", "--database-url", external])
            defer { generated.remove() }
            #expect(generated.secrets["trellis-database"] == ["database-url": external])
            #expect(!FileManager.default.fileExists(atPath: generated.directory.appendingPathComponent("postgres-password").path))
            #expect(generated.objects.allSatisfy { $0["metadata"]["namespace"].string == "data-platform" })
            // …which covers what the example overlay (no trial PostgreSQL) needs.
            for reference in Self.secretReferences(try await Rendering.render("deploy/overlays/example")) {
                #expect(generated.secrets[reference.secret]?[reference.key] != nil, "\(reference)")
            }
        }

        @Test func itRefusesToOverwriteAndToTakeBadArguments() async throws {
            let generated = try await GeneratedSecrets.generate()
            defer { generated.remove() }
            let script = Repository.path("deploy/generate-secrets")
            let before = try generated.file("admin-token")
            let again = try await ChildProcess.run(script, ["--out", generated.directory.path])
            #expect(again.status == 2 && again.stderr.contains("already exists"), "\(again.stderr)")
            #expect(try generated.file("admin-token") == before)
            let forced = try await ChildProcess.run(script, ["--out", generated.directory.path, "--force"])
            #expect(forced.status == 0)
            #expect(try generated.file("admin-token") != before)
            for bad in [["--namespace", "Not_A_Name"], ["--database-url", "mysql://x"], ["--bogus"]] {
                let result = try await ChildProcess.run(script, ["--out", generated.directory.path + "-bad"] + bad)
                #expect(result.status == 2, "\(bad): \(result.stderr)")
            }
        }

        @Test func gitIgnoresTheDefaultDirectory() async throws {
            let result = try await ChildProcess.run(try Repository.tool("git"), ["-C", Repository.root.path, "check-ignore", "-q", "deploy/secrets/admin-token"])
            #expect(result.status == 0, "deploy/secrets/ must be git-ignored")
            let script = try Repository.text("deploy/generate-secrets")
            #expect(script.contains("out=$(cd \"$(dirname \"$0\")\" && pwd)/secrets"), "the default directory is deploy/secrets")
        }

        /// Every (Secret, key) a rendering refers to.
        static func secretReferences(_ rendering: Rendering) -> Set<Pair> {
            var references: Set<Pair> = []
            for container in rendering.containers {
                for entry in container.spec["env"].array {
                    let reference = entry["valueFrom"]["secretKeyRef"]
                    if let name = reference["name"].string, let key = reference["key"].string { references.insert(Pair(name, key)) }
                }
            }
            for workload in rendering.workloads {
                for volume in Container.podSpec(of: workload)["volumes"].array {
                    guard let name = volume["secret"]["secretName"].string else { continue }
                    for item in volume["secret"]["items"].array { references.insert(Pair(name, item["key"].string ?? "")) }
                }
            }
            for authentication in rendering.all("TriggerAuthentication") {
                for reference in authentication["spec"]["secretTargetRef"].array {
                    references.insert(Pair(reference["name"].string ?? "", reference["key"].string ?? ""))
                }
            }
            return references
        }

        struct Pair: Hashable, CustomStringConvertible {
            var secret: String
            var key: String
            init(_ secret: String, _ key: String) { self.secret = secret; self.key = key }
            var description: String { "\(secret)/\(key)" }
        }
    }
}
