public import TrellisProto

/// An event a plugin emitted, tagged with the executor it came from.
public struct ExecutorEventRecord: Sendable, Hashable {
    public var executor: String
    public var event: Trellis_V1_ExecutorEvent
    /// The agent that reported it, for events that came over an agent's
    /// connection (the attempt is recorded as running on that agent).
    public var agent: String?

    public init(executor: String, event: Trellis_V1_ExecutorEvent, agent: String? = nil) {
        self.executor = executor
        self.event = event
        self.agent = agent
    }
}

/// Severities of a plugin's log lines (the ABI's TRELLIS_LOG_*).
public enum PluginLogLevel: Int32, Sendable {
    case debug = 0
    case info = 1
    case warning = 2
    case error = 3
}

/// A plugin's request to call a method on a connected agent.
public struct AgentCallRequest: Sendable, Hashable {
    public var agent: String
    public var method: String
    public var payload: [UInt8]
}

/// The end of an agent call: a gRPC status code (0 = OK), a message when it
/// failed, and the reply's payload.
public struct AgentCallResult: Sendable, Hashable {
    public var status: Int32
    public var message: String
    public var payload: [UInt8]

    public init(status: Int32, message: String = "", payload: [UInt8] = []) {
        self.status = status
        self.message = message
        self.payload = payload
    }
}

/// Routes plugins' agent calls over the agents' connections (the agent
/// registry, once agents connect).
public protocol AgentCalling: Sendable {
    func call(_ request: AgentCallRequest) async -> AgentCallResult
}

/// Why the host could not hand work to an executor.
public struct ExecutorHostError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// No plugin of that name is loaded.
        public static let executorNotLoaded = Code("executor not loaded")
        /// The plugin returned an error status.
        public static let pluginRefused = Code("plugin refused")
        /// The executor was shut down.
        public static let executorStopped = Code("executor stopped")

        public var description: String { name }
    }

    public var code: Code
    public var executor: String
    public var message: String
    /// The plugin's TRELLIS_ERROR_* status, when it returned one.
    public var status: Int32?

    public init(_ code: Code, executor: String, _ message: String, status: Int32? = nil) {
        self.code = code
        self.executor = executor
        self.message = message
        self.status = status
    }

    public var description: String { "executor '\(executor)': \(message)" }
}
