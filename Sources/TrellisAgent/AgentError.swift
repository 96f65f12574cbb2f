/// Why the agent refused something, with a message a user can act on. One
/// error type for the module; the link maps its code to a wire status.
public struct AgentError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of refusal.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        init(_ name: String) { self.name = name }

        /// Every slot is busy (RESOURCE_EXHAUSTED on the wire).
        public static let slotsExhausted = Code("slots exhausted")
        /// The agent is draining and takes no new work (FAILED_PRECONDITION).
        public static let draining = Code("draining")
        /// The request cannot be run by this agent (INVALID_ARGUMENT).
        public static let invalidTask = Code("invalid task")
        /// The agent's settings are wrong (command line, environment).
        public static let invalidConfiguration = Code("invalid configuration")

        public var description: String { name }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
