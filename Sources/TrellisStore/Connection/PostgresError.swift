/// The one error type of TrellisStore: a server error with its SQLSTATE, a
/// lost or refused connection, a value that could not be decoded, a refused
/// migration or an illegal request. Callers switch on `code`; the message is
/// a sentence a user can act on.
public struct PostgresError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of error; extensible without breaking callers that switch on
    /// known codes.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// The server reported an error; `sqlState` says which.
        public static let server = Code("server error")
        /// The connection dropped (server restart, network) or is being
        /// re-established with backoff; the request was not applied, or was
        /// rolled back with its transaction. Retry later.
        public static let connectionLost = Code("connection lost")
        /// A column value did not have the expected type or form.
        public static let decoding = Code("decoding error")
        /// The pool was shut down.
        public static let poolClosed = Code("pool closed")
        /// The caller's task was cancelled while it waited.
        public static let cancelled = Code("cancelled")
        /// A migration file is missing, unreadable or failed.
        public static let migration = Code("migration error")
        /// The database was migrated by a newer Trellis than this one.
        public static let databaseNewerThanCode = Code("database newer than code")
        /// A state transition the task-instance state machine forbids.
        public static let illegalTransition = Code("illegal transition")
        /// A request that cannot be carried out as given.
        public static let invalidArgument = Code("invalid argument")
        /// The row a request names does not exist.
        public static let notFound = Code("not found")
        /// The operation is not allowed in the current state (a run that has
        /// already ended cannot be cancelled).
        public static let failedPrecondition = Code("failed precondition")

        public var description: String { name }
    }

    public var code: Code
    /// The server's SQLSTATE (for example `23505`, unique violation), when the
    /// server reported the error.
    public var sqlState: String?
    /// The primary message.
    public var message: String
    /// The server's DETAIL line, if any.
    public var detail: String?
    /// The server's HINT line, if any.
    public var hint: String?

    public init(_ code: Code, _ message: String, sqlState: String? = nil, detail: String? = nil, hint: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
    }

    /// SQLSTATE class 23: a constraint refused the write.
    public var isConstraintViolation: Bool { sqlState?.hasPrefix("23") ?? false }
    /// SQLSTATE 40001/40P01: serialization failure or deadlock; safe to retry.
    public var isRetryableConflict: Bool { sqlState == "40001" || sqlState == "40P01" }

    public var description: String {
        var text = "\(code): \(message)"
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        if let detail { text += "; detail: \(detail)" }
        if let hint { text += "; hint: \(hint)" }
        return text
    }
}
