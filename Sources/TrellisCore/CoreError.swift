/// An error from TrellisCore's pure logic: an illegal state transition, a
/// value that cannot be interpreted. Validation of DAG files reports a list of
/// `DagProblem`s instead, so that every mistake is shown at once.
public struct CoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of error; extensible without breaking callers that switch on
    /// known codes.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        public static let unknownEnumValue = Code("unknown enum value")
        public static let illegalTransition = Code("illegal transition")
        public static let invalidCron = Code("invalid cron expression")
        public static let invalidDuration = Code("invalid duration")
        public static let invalidTimeZone = Code("invalid time zone")
        public static let invalidTemplate = Code("invalid template")
        public static let invalidDag = Code("invalid DAG")

        public var description: String { name }
    }

    public var code: Code
    /// A sentence a user can act on.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
