import Foundation
public import SwiftProtobuf
import TrellisProto
import TrellisWire

/// One connection to a control plane's client API, as `trellis` uses it:
/// typed unary and streaming calls of `/trellis.v1.TrellisAPI/<Method>`,
/// every failure turned into a `ClientError` that names the verb.
public final class APIClient: Sendable {
    public let settings: ClientSettings
    /// The command the calls are for (`"runs show"`), for error messages.
    public let verb: String
    private let connection: WireConnection
    /// How long one unary call may take.
    public static let callTimeout: Duration = .seconds(60)

    private init(settings: ClientSettings, verb: String, connection: WireConnection) {
        self.settings = settings
        self.verb = verb
        self.connection = connection
    }

    /// Connects and completes the handshake with the token as a client.
    public static func connect(_ settings: ClientSettings, verb: String, version: String) async throws(ClientError) -> APIClient {
        var configuration = WireClientConfiguration(
            host: settings.address.host, port: settings.address.port, role: .client,
            credentials: settings.token, name: "trellis")
        configuration.version = "trellis \(version)"
        configuration.connectTimeout = .seconds(10)
        configuration.handshakeTimeout = .seconds(20)
        do {
            let connection = try await WireClient.connect(configuration: configuration)
            return APIClient(settings: settings, verb: verb, connection: connection)
        } catch {
            throw map(error, settings: settings, verb: verb, connecting: true)
        }
    }

    /// A unary call of `method`.
    public func call<Response: SwiftProtobuf.Message>(
        _ method: String, _ request: some SwiftProtobuf.Message, as type: Response.Type = Response.self
    ) async throws(ClientError) -> Response {
        do {
            return try await connection.unary("/trellis.v1.TrellisAPI/\(method)", request, as: Response.self, timeout: Self.callTimeout)
        } catch {
            throw Self.map(error, settings: settings, verb: verb, connecting: false)
        }
    }

    /// A server-streaming call of `method`; each item decoded as `Item`.
    /// Ends when the server ends the stream OK; throws `ClientError`
    /// otherwise.
    public func stream<Item: SwiftProtobuf.Message & Sendable>(
        _ method: String, _ request: some SwiftProtobuf.Message, as type: Item.Type = Item.self
    ) -> AsyncThrowingStream<Item, any Error> {
        let payload: Data
        do { payload = try request.serializedData() } catch {
            return AsyncThrowingStream { $0.finish(throwing: ClientError(.failed, "cannot encode the request: \(error)")) }
        }
        let items = connection.serverStream("/trellis.v1.TrellisAPI/\(method)", payload, window: 64)
        let settings = self.settings
        let verb = self.verb
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    for try await bytes in items {
                        continuation.yield(try Item(serializedBytes: bytes))
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: Self.map(error, settings: settings, verb: verb, connecting: false))
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    public func close() async {
        await connection.close()
    }

    static func map(_ error: any Error, settings: ClientSettings, verb: String, connecting: Bool) -> ClientError {
        switch error {
        case let error as ClientError:
            return error
        case var error as WireError:
            // A handshake that does not finish is as good as unreachable.
            if connecting, error.code != .unauthenticated, error.code != .deadlineExceeded { error.code = .unavailable }
            return ClientError.from(error, verb: verb, address: settings.address, tokenSource: settings.tokenSource)
        case is CancellationError:
            return ClientError(.failed, "\(verb): cancelled")
        default:
            if connecting {
                return ClientError.from(WireError(.unavailable, "\(error)"), verb: verb, address: settings.address, tokenSource: settings.tokenSource)
            }
            return ClientError(.failed, "\(verb): \(error)")
        }
    }
}
