import Foundation
import Testing
import TrellisStore
import TrellisTestSupport

extension Deploy {
    /// The operator's admin token: trellisd's container, run as the base
    /// renders it (command, arguments, environment, the Secrets mounted; as
    /// uid 50000 when the tests run as root) from the staged image, against a
    /// migrated database, registers the token of the Secret
    /// `trellis-admin-token` at every start (`TRELLIS_ADMIN_TOKEN_FILE`); the
    /// token then authenticates as admin through TrellisStore, exactly as
    /// trellisd checks tokens. Each step is one Pod start.
    @Suite struct AdminTokenTests {
        @Test func theSecretsTokenIsRegisteredOnceRevocationSticksAndRotationReplacesIt() async throws {
            let rendering = try await Rendering.render("deploy/base")
            let trellisd = try rendering.container("Deployment", "trellisd", "trellisd")
            #expect(trellisd.envValue("TRELLIS_ADMIN_TOKEN_FILE") == "/var/run/secrets/trellis/admin-token/token")
            #expect(trellisd.mount(holding: "/var/run/secrets/trellis/admin-token/token") != nil)
            let image = try await StagedImage.shared()
            let scratch = try Repository.temporaryDirectory("admin-token")
            defer { try? FileManager.default.removeItem(at: scratch) }

            try await StoreDatabase.with { url, pool in
                let store = StateStore(pool: pool)
                /// Starts the Pod's trellisd with `token` in the Secret, waits
                /// until it serves (or exits), stops it; its exit status and
                /// what it logged.
                func start(_ token: String) async throws -> (status: Int32?, stderr: String) {
                    let emulator = PodEmulator(
                        rendering: rendering,
                        secrets: [
                            "trellis-database": ["database-url": url],
                            "trellis-admin-token": ["token": token],
                            "trellis-agent-join-token": ["token": "join-\(UUID().uuidString)"],
                        ],
                        imageRoot: image, scratch: scratch.appendingPathComponent(UUID().uuidString))
                    let pod = try emulator.pod("Deployment", "trellisd", podName: "trellisd-5c8d9f7b6-k2x7q")
                    let process = try emulator.start(trellisd, in: pod, overrides: [
                        "TRELLIS_RPC_ADDRESS": "127.0.0.1:0", "TRELLIS_HTTP_ADDRESS": "127.0.0.1:0",
                    ])
                    do {
                        try await eventually("trellisd serves or exits", timeout: .seconds(60)) {
                            process.exitStatus != nil || process.stdout.contains("trellisd: serving rpc on ")
                        }
                    } catch {
                        await process.stop()
                        throw Repository.Failed(description: "\(error): \(process.stderr.suffix(4_000))")
                    }
                    if process.exitStatus == nil {
                        process.signal(SIGTERM)
                        #expect(await process.wait() == 0, "\(process.stderr.suffix(4_000))")
                        return (nil, process.stderr)
                    }
                    return (process.exitStatus, process.stderr)
                }
                func names() async throws -> [String] { try await store.tokens().map(\.name) }
                func token() -> String { "trellis_" + (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }

                let first = token()
                var started = try await start(first)
                #expect(started.status == nil, "\(started.stderr)")
                #expect(try await store.authenticate(token: first)?.name == "deploy-admin")
                #expect(try await store.authenticate(token: first)?.role == .admin)
                #expect(try await store.authenticate(token: token()) == nil)

                // Every restart registers it again: nothing changes.
                started = try await start(first)
                #expect(started.status == nil, "\(started.stderr)")
                #expect(try await names() == ["deploy-admin"])
                #expect(try await store.authenticate(token: first)?.role == .admin)

                // Revoked with `trellis tokens revoke deploy-admin`: it stays
                // so, and trellisd says how to replace it.
                #expect(try await store.revokeToken(name: "deploy-admin"))
                started = try await start(first)
                #expect(started.status == nil, "\(started.stderr)")
                #expect(started.stderr.contains("was revoked and stays so"), "\(started.stderr)")
                #expect(try await store.authenticate(token: first) == nil)

                // A new token in the Secret replaces the old one.
                let second = token()
                started = try await start(second)
                #expect(started.status == nil, "\(started.stderr)")
                #expect(try await store.authenticate(token: second)?.role == .admin)
                #expect(try await store.authenticate(token: first) == nil)
                #expect(try await names() == ["deploy-admin"])

                // Surrounding whitespace (a file edited by hand) is not part of it.
                let third = token()
                started = try await start("  " + third + "\n")
                #expect(started.status == nil, "\(started.stderr)")
                #expect(try await store.authenticate(token: third)?.role == .admin)

                // An empty or short token stops the Pod, and changes nothing.
                for bad in ["", "short"] {
                    started = try await start(bad)
                    #expect(started.status != nil && started.status != 0)
                    #expect(started.stderr.contains("no token of 32 characters or more"), "\(started.stderr)")
                }
                #expect(try await store.authenticate(token: third)?.role == .admin)
            }
        }
    }
}
