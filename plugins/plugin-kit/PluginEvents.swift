public import TrellisPluginSDK

#if canImport(Glibc)
import Glibc
#endif

/// Reading C SDK strings and writing ExecutorEvents through protobuf-c.
public enum PluginMessages {
    public static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        pointer.map { String(cString: $0) } ?? ""
    }

    /// Wall-clock time in microseconds since the epoch (Timestamp's unit).
    public static func nowMicros() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000 + Int64(spec.tv_nsec) / 1_000
    }

    /// An ExecutorEvent carrying `started`.
    public static func startedEvent(
        attemptID: String, fencingToken: Int64, externalID: String, kind: Trellis__V1__ExternalKind, node: String, at: Int64 = nowMicros()
    ) -> [UInt8] {
        externalID.withCString { external in
            node.withCString { node in
                var body = Trellis__V1__AttemptStarted()
                trellis__v1__attempt_started__init(&body)
                body.external_id = UnsafeMutablePointer(mutating: external)
                body.external_kind = kind
                body.node = UnsafeMutablePointer(mutating: node)
                return withUnsafeMutablePointer(to: &body) { body in
                    event(attemptID: attemptID, fencingToken: fencingToken, at: at) { event in
                        event.event_case = TRELLIS__V1__EXECUTOR_EVENT__EVENT_STARTED
                        event.started = body
                    }
                }
            }
        }
    }

    /// An ExecutorEvent carrying one chunk of the attempt's log.
    public static func logEvent(attemptID: String, fencingToken: Int64, stream: Trellis__V1__LogStream, data: some Collection<UInt8>) -> [UInt8] {
        var bytes = Array(data)
        return bytes.withUnsafeMutableBufferPointer { buffer in
            var body = Trellis__V1__LogChunk()
            trellis__v1__log_chunk__init(&body)
            body.stream = stream
            body.data = ProtobufCBinaryData(len: buffer.count, data: buffer.baseAddress)
            return withUnsafeMutablePointer(to: &body) { body in
                event(attemptID: attemptID, fencingToken: fencingToken, at: nowMicros()) { event in
                    event.event_case = TRELLIS__V1__EXECUTOR_EVENT__EVENT_LOG
                    event.log = body
                }
            }
        }
    }

    /// An ExecutorEvent carrying `finished`.
    public static func finishedEvent(_ finished: FinishedEvent) -> [UInt8] {
        finished.reason.withCString { reason in
            finished.message.withCString { message in
                var body = Trellis__V1__AttemptFinished()
                trellis__v1__attempt_finished__init(&body)
                body.outcome = finished.outcome
                body.reason = UnsafeMutablePointer(mutating: reason)
                body.message = UnsafeMutablePointer(mutating: message)
                if let exitCode = finished.exitCode {
                    body.exit_case = TRELLIS__V1__ATTEMPT_FINISHED__EXIT_EXIT_CODE
                    body.exit_code = exitCode
                } else if let signal = finished.signal {
                    body.exit_case = TRELLIS__V1__ATTEMPT_FINISHED__EXIT_SIGNAL
                    body.signal = signal
                }
                return withUnsafeMutablePointer(to: &body) { body in
                    event(attemptID: finished.attemptID, fencingToken: finished.fencingToken, at: finished.at ?? nowMicros()) { event in
                        event.event_case = TRELLIS__V1__EXECUTOR_EVENT__EVENT_FINISHED
                        event.finished = body
                    }
                }
            }
        }
    }

    private static func event(attemptID: String, fencingToken: Int64, at micros: Int64, _ fill: (inout Trellis__V1__ExecutorEvent) -> Void) -> [UInt8] {
        attemptID.withCString { id in
            var ref = Trellis__V1__AttemptRef()
            trellis__v1__attempt_ref__init(&ref)
            ref.attempt_id = UnsafeMutablePointer(mutating: id)
            ref.fencing_token = fencingToken
            var at = Trellis__V1__Timestamp()
            trellis__v1__timestamp__init(&at)
            at.unix_micros = micros
            return withUnsafeMutablePointer(to: &ref) { ref in
                withUnsafeMutablePointer(to: &at) { at in
                    var event = Trellis__V1__ExecutorEvent()
                    trellis__v1__executor_event__init(&event)
                    event.attempt = ref
                    event.at = at
                    fill(&event)
                    let size = trellis__v1__executor_event__get_packed_size(&event)
                    var bytes = [UInt8](repeating: 0, count: size)
                    bytes.withUnsafeMutableBufferPointer { _ = trellis__v1__executor_event__pack(&event, $0.baseAddress) }
                    return bytes
                }
            }
        }
    }
}

/// How an attempt ended, as the plugin reports it.
public struct FinishedEvent: Sendable, Equatable {
    public var attemptID: String
    public var fencingToken: Int64
    public var outcome: Trellis__V1__AttemptOutcome
    public var exitCode: Int32?
    public var signal: Int32?
    public var reason: String
    public var message: String
    /// When it ended (microseconds since the epoch); nil: now.
    public var at: Int64?

    public init(
        attemptID: String, fencingToken: Int64, outcome: Trellis__V1__AttemptOutcome, exitCode: Int32? = nil,
        signal: Int32? = nil, reason: String, message: String, at: Int64? = nil
    ) {
        self.attemptID = attemptID
        self.fencingToken = fencingToken
        self.outcome = outcome
        self.exitCode = exitCode
        self.signal = signal
        self.reason = reason
        self.message = message
        self.at = at
    }

    public static func cancelled(_ attemptID: String, _ fencingToken: Int64, reason: String, message: String) -> FinishedEvent {
        FinishedEvent(attemptID: attemptID, fencingToken: fencingToken, outcome: TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_CANCELLED, reason: reason, message: message)
    }

    public static func failed(_ attemptID: String, _ fencingToken: Int64, reason: String, message: String) -> FinishedEvent {
        FinishedEvent(attemptID: attemptID, fencingToken: fencingToken, outcome: TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_FAILED, reason: reason, message: message)
    }

    public static func lost(_ attemptID: String, _ fencingToken: Int64, reason: String, message: String) -> FinishedEvent {
        FinishedEvent(attemptID: attemptID, fencingToken: fencingToken, outcome: TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_LOST, reason: reason, message: message)
    }
}
