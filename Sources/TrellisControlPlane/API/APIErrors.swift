import TrellisCore
import TrellisStore
import TrellisWire

/// How failures below the API reach the caller: every error a handler
/// throws becomes a `WireError` with the status code that says what to do
/// about it, and a message naming what was wrong.
enum APIErrors {
    static func wire(_ error: any Error) -> WireError {
        switch error {
        case let error as WireError:
            return error
        case let error as PostgresError:
            switch error.code {
            case .notFound: return WireError(.notFound, error.message)
            case .invalidArgument: return WireError(.invalidArgument, error.message)
            case .illegalTransition, .failedPrecondition: return WireError(.failedPrecondition, error.message)
            case .connectionLost, .poolClosed: return WireError(.unavailable, "the database is unavailable: \(error.message)")
            case .cancelled: return WireError(.cancelled, error.message)
            default:
                if error.isConstraintViolation { return WireError(.alreadyExists, error.message) }
                return WireError(.internal, "database error: \(error)")
            }
        case is CancellationError:
            return WireError(.cancelled, "the call was cancelled")
        case let error as CoreError:
            return WireError(.invalidArgument, error.message)
        default:
            return WireError(.internal, "\(error)")
        }
    }

    /// NOT_FOUND for a name that is not among `known`, with "did you mean"
    /// when one is close and the known names (the first 20).
    static func notFound(_ what: String, _ name: String, known: [String], in place: String = "") -> WireError {
        var message = "\(what) '\(name)' does not exist\(place)"
        if let suggestion = closestMatch(name, in: known) { message += "; did you mean '\(suggestion)'?" }
        if known.isEmpty {
            message += " (there are none)"
        } else {
            let shown = known.prefix(20).joined(separator: ", ")
            message += " (known: \(shown)\(known.count > 20 ? ", … \(known.count - 20) more" : ""))"
        }
        return WireError(.notFound, message)
    }
}
