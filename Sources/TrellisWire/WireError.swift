import Foundation
public import TrellisProto

/// An error from the wire layer or from the peer: a failed call, a rejected
/// handshake, a broken connection. Its code is one of gRPC's status codes, so it
/// maps one to one onto the `Status` a call ends with on the wire.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible {
    /// gRPC's status codes; extensible without breaking callers that switch on
    /// known codes.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The code as carried on the wire.
        public let status: Trellis_V1_StatusCode

        public init(_ status: Trellis_V1_StatusCode) { self.status = status }

        public static let cancelled = Code(.cancelled)
        public static let unknown = Code(.unknown)
        public static let invalidArgument = Code(.invalidArgument)
        public static let deadlineExceeded = Code(.deadlineExceeded)
        public static let notFound = Code(.notFound)
        public static let alreadyExists = Code(.alreadyExists)
        public static let permissionDenied = Code(.permissionDenied)
        public static let resourceExhausted = Code(.resourceExhausted)
        public static let failedPrecondition = Code(.failedPrecondition)
        public static let aborted = Code(.aborted)
        public static let outOfRange = Code(.outOfRange)
        public static let unimplemented = Code(.unimplemented)
        public static let `internal` = Code(.internal)
        public static let unavailable = Code(.unavailable)
        public static let dataLoss = Code(.dataLoss)
        public static let unauthenticated = Code(.unauthenticated)

        public var description: String {
            switch status {
            case .ok: "OK"
            case .cancelled: "CANCELLED"
            case .unknown: "UNKNOWN"
            case .invalidArgument: "INVALID_ARGUMENT"
            case .deadlineExceeded: "DEADLINE_EXCEEDED"
            case .notFound: "NOT_FOUND"
            case .alreadyExists: "ALREADY_EXISTS"
            case .permissionDenied: "PERMISSION_DENIED"
            case .resourceExhausted: "RESOURCE_EXHAUSTED"
            case .failedPrecondition: "FAILED_PRECONDITION"
            case .aborted: "ABORTED"
            case .outOfRange: "OUT_OF_RANGE"
            case .unimplemented: "UNIMPLEMENTED"
            case .internal: "INTERNAL"
            case .unavailable: "UNAVAILABLE"
            case .dataLoss: "DATA_LOSS"
            case .unauthenticated: "UNAUTHENTICATED"
            case .UNRECOGNIZED(let value): "STATUS(\(value))"
            }
        }
    }

    public var code: Code
    /// A sentence a user can act on.
    public var message: String
    /// Opaque details (usually a serialized protobuf message), as in gRPC.
    public var details: [UInt8]

    public init(_ code: Code, _ message: String, details: [UInt8] = []) {
        self.code = code
        self.message = message
        self.details = details
    }

    /// The error a call ended with, from its wire status.
    public init(status: Trellis_V1_Status) {
        self.init(Code(status.code), status.message, details: Array(status.details))
    }

    /// The status that carries this error on the wire.
    public var status: Trellis_V1_Status {
        var status = Trellis_V1_Status()
        status.code = code.status
        status.message = message
        if !details.isEmpty { status.details = .init(details) }
        return status
    }

    public var description: String { "\(code): \(message)" }
}

extension Trellis_V1_Status {
    static var ok: Trellis_V1_Status { Trellis_V1_Status() }
}
