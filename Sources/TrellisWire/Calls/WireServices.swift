public import Foundation
public import NIOCore
public import SwiftProtobuf
import TrellisProto

/// What a handler knows about the call it serves.
public struct WireCallContext: Sendable {
    /// `/trellis.v1.Service/Method`.
    public var method: String
    /// The authenticated peer (on the server); nil on the side that opened the
    /// connection, where the peer is the server itself.
    public var peer: WireIdentity?
    /// When the caller stops waiting; the handler is cancelled at that moment.
    public var deadline: NIODeadline?
}

/// The implementation of one method.
public enum WireMethod: Sendable {
    /// One request, one response.
    case unary(@Sendable (Data, WireCallContext) async throws -> Data)
    /// One request, one response, computed without suspending: the handler
    /// runs inline on the connection's event loop, with no task, as soon as
    /// the request is read (on the global executor, in a task, when the
    /// connection's handlers do not run on the event loop). For quick
    /// handlers over the payload and in-memory state (ping, lookups); one
    /// that blocks or computes for long stalls every connection on its loop.
    case unarySync(@Sendable (Data, WireCallContext) throws -> Data)
    /// One request, a stream of responses; `send` waits while the caller has
    /// no credit left (backpressure).
    case serverStreaming(@Sendable (Data, WireCallContext, WireStreamWriter) async throws -> Void)
}

/// The methods a side of a connection serves, by full method name. Either side
/// may serve methods: the control plane calls agents over the connection the
/// agent opened.
public struct WireServices: Sendable {
    private var methods: [String: WireMethod] = [:]

    public init() {}

    public func method(named name: String) -> WireMethod? { methods[name] }

    /// Registers a method working on raw payload bytes.
    public mutating func register(_ name: String, _ method: WireMethod) {
        methods[name] = method
    }

    /// Registers a unary method with typed protobuf messages. A request payload
    /// that does not decode answers INVALID_ARGUMENT.
    public mutating func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ name: String,
        _ request: Request.Type = Request.self,
        handler: @escaping @Sendable (Request, WireCallContext) async throws -> Response
    ) {
        register(name, .unary { payload, context in
            let message = try Self.decode(Request.self, payload, method: name)
            return try await handler(message, context).serializedData()
        })
    }

    /// Registers a server-streaming method with typed protobuf messages.
    public mutating func serverStreaming<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ name: String,
        _ request: Request.Type = Request.self,
        _ response: Response.Type = Response.self,
        handler: @escaping @Sendable (Request, WireCallContext, (Response) async throws -> Void) async throws -> Void
    ) {
        register(name, .serverStreaming { payload, context, writer in
            let message = try Self.decode(Request.self, payload, method: name)
            try await handler(message, context) { try await writer.send(try $0.serializedData()) }
        })
    }

    static func decode<M: SwiftProtobuf.Message>(_ type: M.Type, _ payload: Data, method: String) throws -> M {
        do {
            return try M(serializedBytes: payload)
        } catch {
            throw WireError(.invalidArgument, "the request payload of \(method) is not a valid \(M.protoMessageName)")
        }
    }
}

/// The sending half of a server-streaming call, given to its handler.
public struct WireStreamWriter: Sendable {
    let sendItem: @Sendable (Data) async throws -> Void

    /// Sends one item. Waits while the caller has granted no credit; throws
    /// CANCELLED once the caller has gone.
    public func send(_ payload: Data) async throws {
        try await sendItem(payload)
    }
}
