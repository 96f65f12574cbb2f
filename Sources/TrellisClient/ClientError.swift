public import TrellisWire

/// Why a `trellis` command failed, with a message that says what to do next.
/// Its kind decides the exit code.
public struct ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, as far as the exit code is concerned.
    public struct Kind: Sendable, Hashable {
        /// The process exit code for this kind.
        public let exitCode: Int32
        let name: String

        /// The run or task (or the request on the server) failed: 1.
        public static let failed = Kind(exitCode: 1, name: "failed")
        /// A usage or validation error, or a request the server refused as
        /// wrong (unknown name, invalid input, forbidden by state): 2.
        public static let usage = Kind(exitCode: 2, name: "usage")
        /// The control plane cannot be reached or refused the token (or its
        /// role): 3.
        public static let unreachable = Kind(exitCode: 3, name: "unreachable")
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var exitCode: Int32 { kind.exitCode }
    public var description: String { message }

    /// Every exit code the client uses, for help text and docs.
    public static let exitCodeSummary = """
        Exit codes: 0 success; 1 the run or task failed; 2 usage or validation error \
        (also unknown DAG, run, task or pool); 3 cannot reach or authenticate to the control plane.
        """

    /// The error a failed call of `verb` (`"dags submit"`) against `address`
    /// becomes: the exit code from the status code, the server's message
    /// (which carries "did you mean") and what to do about it.
    public static func from(_ error: WireError, verb: String, address: ServerAddress, tokenSource: String) -> ClientError {
        switch error.code {
        case .unavailable:
            return ClientError(.unreachable, """
                cannot reach trellisd at \(address): \(reason(of: error.message)). Is it running? \
                Start one with `trellisd standalone`, or set --address / TRELLIS_ADDRESS.
                """)
        case .deadlineExceeded:
            return ClientError(.unreachable, """
                trellisd at \(address) did not answer in time (\(error.message)). Check that it is \
                running and reachable, or set --address / TRELLIS_ADDRESS.
                """)
        case .unauthenticated:
            let source = tokenSource == "none"
                ? "no API token was given"
                : "the API token from \(tokenSource) was refused"
            return ClientError(.unreachable, """
                trellisd at \(address) refused the connection: \(source). Pass --token or --token-file, \
                set TRELLIS_TOKEN, or put `token:` in the config file (`trellisd standalone` writes one); \
                an admin creates tokens with `trellis tokens create NAME --role viewer|operator|admin`.
                """)
        case .permissionDenied:
            return ClientError(.unreachable, """
                \(verb): permission denied: \(error.message). Use a token with that role \
                (an admin creates one with `trellis tokens create NAME --role ROLE`).
                """)
        case .notFound, .invalidArgument, .failedPrecondition, .alreadyExists, .outOfRange:
            return ClientError(.usage, "\(verb): \(error.message)")
        default:
            return ClientError(.failed, "\(verb): trellisd at \(address) answered \(error.code): \(error.message)")
        }
    }

    /// The useful part of a connection failure ("connection refused").
    static func reason(of message: String) -> String {
        let lowered = message.lowercased()
        for known in ["connection refused", "connection reset", "no route to host", "network is unreachable", "timed out", "timeout"]
        where lowered.contains(known) {
            return known == "timeout" ? "timed out" : known
        }
        if lowered.contains("name") && (lowered.contains("resolv") || lowered.contains("not known")) {
            return "the host name does not resolve"
        }
        return message
    }
}
