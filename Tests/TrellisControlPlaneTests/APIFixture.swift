import Foundation
import NIOCore
import Synchronization
import SwiftProtobuf
import Testing
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisTestSupport
import TrellisWire

@testable import TrellisControlPlane

/// The client API served for real: a fresh database, the DB-backed
/// authenticator with one token per role, a `WireServer` on 127.0.0.1 port 0
/// and `WireClient` connections over TCP. The executor host has c-instant
/// loaded; with `scheduling`, `runChanged` and `poolChanged` drive a real
/// `Scheduler` fed by the host's events, as trellisd's NOTIFY would.
struct APIFixture {
    let store: StateStore
    let server: WireServer
    let authenticator: TokenAuthenticator
    let host: ExecutorHost
    let scheduler: Scheduler
    let tokens: [APIRole: String]
    /// Run ids passed to `runChanged`, and (executor, attempt id) cancelled.
    let changedRuns: Shared<[Int64]>
    let cancelled: Shared<[(executor: String, attemptID: String)]>

    static func with(scheduling: Bool = false, _ body: (APIFixture) async throws -> Void) async throws {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 6)
            let store = StateStore(pool: pool)
            let recordFile = FileManager.default.temporaryDirectory.appendingPathComponent("c-instant-\(UUID().uuidString).tsv").path
            defer { try? FileManager.default.removeItem(atPath: recordFile) }
            let (events, sink) = AsyncStream<ExecutorEventRecord>.makeStream()
            let host = ExecutorHost(hostID: "api-test", log: { _, _, _ in }, events: { sink.yield($0) })
            _ = try host.load(path: try ChildProcess.builtProduct("libtrellis-executor-c-instant.so")) { _ in #"{"record_file": "\#(recordFile)"}"# }
            let scheduler = Scheduler(store: store, executors: host, settings: .init(defaultExecutor: "c-instant"))
            let consumer = Task {
                for await event in events where scheduling { try? await scheduler.record(event) }
            }

            var tokens: [APIRole: String] = [:]
            for role in APIRole.allCases {
                tokens[role] = try await store.createToken(name: "\(role.rawValue)-token", role: TokenRole(rawValue: role.rawValue)!)
            }
            let authenticator = TokenAuthenticator(store: store, agentToken: "join-secret", refreshInterval: .seconds(3_600))
            try await authenticator.refresh()

            let changedRuns = Shared<[Int64]>([])
            let cancelled = Shared<[(executor: String, attemptID: String)]>([])
            let service = TrellisAPIService(
                store: store, executors: host, executorLoadProblems: ["/plugins/libbroken.so: not a plugin"],
                settings: .init(defaultExecutor: "c-instant", pollInterval: .milliseconds(20)),
                tokens: authenticator,
                statusProvider: {
                    ServerStatusInfo(serverVersion: "9.9.9", startedAt: Date(timeIntervalSince1970: 1_700_000_000), connectedAgents: 2,
                                     connectedClients: 1, leader: true, schemaVersion: 1, replica: "replica-a")
                },
                runChanged: { runID in
                    changedRuns.withLock { $0.append(runID) }
                    if scheduling { try? await scheduler.pass() }
                },
                poolChanged: { _ in
                    if scheduling { try? await scheduler.pass() }
                },
                cancelAttempt: { executor, request in
                    cancelled.withLock { $0.append((executor, request.attempt.attemptID)) }
                })
            var services = WireServices()
            service.register(into: &services)
            let server = WireServer(
                configuration: WireServerConfiguration(host: "127.0.0.1", port: 0), services: services, authenticator: authenticator)
            try await server.start()

            let fixture = APIFixture(
                store: store, server: server, authenticator: authenticator, host: host, scheduler: scheduler, tokens: tokens,
                changedRuns: changedRuns, cancelled: cancelled)
            let outcome: Result<Void, any Error>
            do {
                try await body(fixture)
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            await server.shutdown(grace: .seconds(2))
            host.shutdown(); sink.finish(); consumer.cancel()
            await pool.close()
            try outcome.get()
        }
    }

    func configuration(credentials: String, role: Trellis_V1_PeerRole = .client) -> WireClientConfiguration {
        WireClientConfiguration(host: "127.0.0.1", port: server.port!, role: role, credentials: credentials, name: "api-test")
    }

    func connect(_ role: APIRole) async throws -> WireConnection {
        try await connect(token: tokens[role]!)
    }

    func connect(token: String) async throws -> WireConnection {
        try await WireClient.connect(configuration: configuration(credentials: token))
    }

    /// Submits `chain` (tasks a, b, …), starts a manual run of it and claims
    /// its first task `a`: the run, `a` before the claim, and the claim.
    func chainWithFirstTaskClaimed(_ chain: String) async throws -> (DagRunRecord, TaskInstanceRecord, ClaimedTask) {
        _ = try await submit(chain)
        let (run, _) = try await store.createRun(dagID: "chain", logicalDate: Date(timeIntervalSince1970: 0), runType: .manual)
        try await store.startQueuedRuns()
        let a = try #require(try await store.taskInstances(runID: run.id).first { $0.taskID == "a" })
        _ = try await store.transition(TransitionRequest(taskInstanceID: a.id, event: .schedule, expected: .none))
        let claim = try #require(try await store.claimReady(limit: 1).first)
        return (run, a, claim)
    }

    /// Submits a DAG as admin; fails the test on refusal.
    func submit(_ yaml: String, paused: Bool = false) async throws -> Trellis_V1_SubmitDagResponse {
        let admin = try await connect(.admin)
        defer { Task { await admin.close() } }
        var request = Trellis_V1_SubmitDagRequest()
        request.yaml = yaml
        request.fileName = "dag.yaml"
        request.paused = paused
        return try await admin.call("SubmitDag", request)
    }
}

extension WireConnection {
    /// A typed call of a TrellisAPI method.
    func call<Response: SwiftProtobuf.Message>(
        _ method: String, _ request: some SwiftProtobuf.Message, as type: Response.Type = Response.self
    ) async throws -> Response {
        try await unary(APIAuthorization.path(method), request, as: Response.self, timeout: .seconds(30))
    }

    /// A server-streaming call of a TrellisAPI method.
    func stream(_ method: String, _ request: some SwiftProtobuf.Message, window: UInt32 = 16) throws -> WireResponseStream {
        serverStream(APIAuthorization.path(method), try request.serializedData(), window: window)
    }

    /// The WireError a call ends with; records an issue if it succeeds.
    func failure(_ method: String, _ request: some SwiftProtobuf.Message) async -> WireError? {
        do {
            let bytes = try await unary(APIAuthorization.path(method), try request.serializedData(), timeout: .seconds(30))
            Issue.record("\(method) succeeded (\(bytes.count) bytes) where it should have failed")
            return nil
        } catch let error as WireError {
            return error
        } catch {
            Issue.record("\(method) failed with \(error), not a WireError")
            return nil
        }
    }
}


/// Collects a stream's items in a task, for tests that drive changes while
/// the stream is open.
final class Collector<Item: SwiftProtobuf.Message>: Sendable {
    private let items = Mutex<[Item]>([])
    private let outcome = Mutex<Result<Void, any Error>?>(nil)

    @discardableResult
    func start(_ stream: WireResponseStream) -> Task<Void, Never> {
        Task {
            do {
                for try await bytes in stream {
                    let item = try Item(serializedBytes: bytes)
                    items.withLock { $0.append(item) }
                }
                outcome.withLock { $0 = .success(()) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
        }
    }

    var all: [Item] { items.withLock { $0 } }
    var ended: Result<Void, any Error>? { outcome.withLock { $0 } }
    var endedOK: Bool { if case .success = ended { true } else { false } }
}
