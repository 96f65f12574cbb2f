import Foundation
import Testing
import TrellisStore
import TrellisTestSupport

extension Deploy {
    /// trellisd's init container `register-admin-token`, run as the base
    /// renders it (command, arguments, environment, the Secret and the SQL
    /// ConfigMap mounted; as uid 50000 when the tests run as root), against a
    /// migrated database: the Secret's token then authenticates as admin
    /// through TrellisStore, exactly as trellisd checks tokens.
    @Suite struct AdminTokenTests {
        @Test func theSecretsTokenIsRegisteredOnceRevocationSticksAndRotationReplacesIt() async throws {
            let rendering = try await Rendering.render("deploy/base")
            let register = try rendering.container("Deployment", "trellisd", "register-admin-token")
            #expect(register.imageName == "postgres" && register.spec["command"].strings == ["psql"])
            let scratch = try Repository.temporaryDirectory("admin-token")
            defer { try? FileManager.default.removeItem(at: scratch) }

            try await StoreDatabase.with { url, pool in
                let store = StateStore(pool: pool)
                func run(_ token: String) async throws -> ChildProcess.Result {
                    let emulator = PodEmulator(
                        rendering: rendering,
                        secrets: [
                            "trellis-database": ["database-url": url],
                            "trellis-admin-token": ["token": token],
                            "trellis-agent-join-token": ["token": "unused"],
                        ],
                        imageRoot: scratch, scratch: scratch.appendingPathComponent(UUID().uuidString))
                    let pod = try emulator.pod("Deployment", "trellisd", podName: "trellisd-5c8d9f7b6-k2x7q")
                    let prepared = try emulator.prepare(register, in: pod)
                    return try await ChildProcess.run(prepared.executable, prepared.arguments, environment: prepared.environment)
                }
                func names() async throws -> [String] { try await store.tokens().map(\.name) }
                func token() -> String { "trellis_" + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }

                let first = token()
                var result = try await run(first)
                #expect(result.status == 0, "\(result.stderr)")
                #expect(try await store.authenticate(token: first)?.name == "deploy-admin")
                #expect(try await store.authenticate(token: first)?.role == .admin)
                #expect(try await store.authenticate(token: token()) == nil)

                // Every restart runs it again: nothing changes.
                result = try await run(first)
                #expect(result.status == 0, "\(result.stderr)")
                #expect(try await names() == ["deploy-admin"])
                #expect(try await store.authenticate(token: first)?.role == .admin)

                // Revoked with `trellis tokens revoke deploy-admin`: it stays so.
                #expect(try await store.revokeToken(name: "deploy-admin"))
                result = try await run(first)
                #expect(result.status == 0, "\(result.stderr)")
                #expect(try await store.authenticate(token: first) == nil)

                // A new token in the Secret replaces the old one.
                let second = token()
                result = try await run(second)
                #expect(result.status == 0, "\(result.stderr)")
                #expect(try await store.authenticate(token: second)?.role == .admin)
                #expect(try await store.authenticate(token: first) == nil)
                #expect(try await names() == ["deploy-admin"])

                // Surrounding whitespace (a file edited by hand) is not part of it.
                let third = token()
                result = try await run("  " + third + "\n")
                #expect(result.status == 0, "\(result.stderr)")
                #expect(try await store.authenticate(token: third)?.role == .admin)

                // An empty or short token stops the Pod, and changes nothing.
                for bad in ["", "short"] {
                    result = try await run(bad)
                    #expect(result.status != 0)
                    #expect(result.stderr.contains("no token of 32 characters or more"), "\(result.stderr)")
                }
                #expect(try await store.authenticate(token: third)?.role == .admin)
            }
        }
    }
}
