import Foundation
public import NIOCore
public import TrellisProto

/// The protocol logic of one connection, with no I/O: the handshake, the table
/// of open calls in both directions, deadlines, cancellation, stream credit,
/// GOAWAY and keepalive. A value type; every event is a `mutating` method that
/// returns what the channel handler must do. Time comes in as an argument
/// (`now`), so tests drive it without sleeping.
public struct ConnectionStateMachine: Sendable {
    /// Which end of the connection this is. The initiator sends `Hello` and
    /// numbers its calls 1, 3, 5…; the acceptor answers with `Welcome` and
    /// numbers its calls 2, 4, 6….
    public enum Side: Sendable { case initiator, acceptor }

    /// Limits and timers of a connection.
    public struct Configuration: Sendable {
        /// How long the handshake may take before the connection is dropped.
        public var handshakeTimeout: TimeAmount = .seconds(10)
        /// Send a Ping after this much silence from the peer; nil: never ping.
        public var keepaliveInterval: TimeAmount?
        /// Declare the peer dead after this much silence; nil: never.
        public var idleTimeout: TimeAmount?
        /// Calls the peer may have open on us at once; more get RESOURCE_EXHAUSTED.
        public var maximumConcurrentCalls: Int = 10_000
        /// Stream items a caller lets us send before waiting for credit, when
        /// its Request asks for no particular window.
        public var defaultStreamWindow: UInt32 = 16
        public init() {}
    }

    /// What the handler must do after an event.
    public enum Action: Sendable, Equatable {
        case none
        /// Write (and flush) a frame.
        case write(Trellis_V1_Frame)
        /// Write a frame (a GoAway saying why), then close the connection.
        case writeAndClose(Trellis_V1_Frame)
        /// Close without a word: the peer is dead.
        case close
        /// Acceptor: run the authenticator on this Hello, then call
        /// `authenticated` or `authenticationFailed`.
        case authenticate(Trellis_V1_Hello)
        /// Initiator: the session is open.
        case handshakeCompleted(Trellis_V1_Welcome)
        /// Initiator: the acceptor refused the handshake; close.
        case handshakeRejected(WireError)
        /// The peer started a call: run the method's handler.
        case dispatch(callID: UInt64, request: Trellis_V1_Request, deadline: NIODeadline?)
        /// Stop the handler of an inbound call; write `reply` if there is one.
        case cancelInbound(callID: UInt64, reply: Trellis_V1_Frame?)
        /// An inbound streaming call got credit: send what waits.
        case creditGranted(callID: UInt64)
        /// Hand a Response, StreamItem or StreamEnd to the caller waiting for it.
        case deliver(callID: UInt64, kind: Trellis_V1_Frame.OneOf_Kind)
        /// End an outbound call locally with an error; write `frame` if there is one.
        case failOutbound(callID: UInt64, error: WireError, frame: Trellis_V1_Frame?)
        /// The peer sent GOAWAY: fail these outbound calls (it will not run them).
        case peerGoingAway(failing: [UInt64], status: Trellis_V1_Status)
    }

    enum State: Sendable, Equatable {
        case idle
        case awaitingHandshake(deadline: NIODeadline)
        case authenticating(deadline: NIODeadline)
        case ready
        /// We sent GOAWAY: calls in flight finish, new ones are refused.
        case draining
        case closed
    }

    struct InboundCall: Sendable {
        var deadline: NIODeadline?
        var credit: UInt32
    }

    struct OutboundCall: Sendable {
        var deadline: NIODeadline?
        /// Stream items the peer may still send (credit we granted); nil for
        /// unary calls.
        var credit: UInt32?
    }

    public let side: Side
    public private(set) var configuration: Configuration
    private(set) var state: State = .idle
    private var inbound: [UInt64: InboundCall] = [:]
    private var outbound: [UInt64: OutboundCall] = [:]
    private var nextOutboundID: UInt64
    private var lastInboundID: UInt64 = 0
    private var lastReceived: NIODeadline
    private var pingSentAt: NIODeadline?
    private var nextPingOpaque: UInt64 = 1
    /// Set when the peer sent GOAWAY: we start no new calls.
    private(set) var peerWentAway = false

    public init(side: Side, configuration: Configuration, now: NIODeadline) {
        self.side = side
        self.configuration = configuration
        self.nextOutboundID = side == .initiator ? 1 : 2
        self.lastReceived = now
    }

    /// Calls open in either direction.
    public var openCalls: Int { inbound.count + outbound.count }
    public var isReady: Bool { state == .ready && !peerWentAway }
    public var isClosed: Bool { state == .closed }
    /// True once we sent GOAWAY and no call is left: time to close.
    public var isDrained: Bool { state == .draining && openCalls == 0 }

    // MARK: Handshake

    /// The connection is up. The initiator writes its Hello.
    public mutating func channelActive(hello: Trellis_V1_Hello?, now: NIODeadline) -> Action {
        guard state == .idle else { return .none }
        lastReceived = now
        state = .awaitingHandshake(deadline: now + configuration.handshakeTimeout)
        switch side {
        case .initiator:
            var frame = Trellis_V1_Frame()
            frame.hello = hello ?? Trellis_V1_Hello()
            return .write(frame)
        case .acceptor:
            return .none
        }
    }

    /// Acceptor: the authenticator accepted the Hello.
    public mutating func authenticated(welcome: Trellis_V1_Welcome) -> Action {
        guard case .authenticating = state else { return .none }
        state = .ready
        var frame = Trellis_V1_Frame()
        frame.welcome = welcome
        return .write(frame)
    }

    /// Acceptor: the authenticator refused the Hello.
    public mutating func authenticationFailed(_ error: WireError) -> Action {
        guard case .authenticating = state else { return .none }
        return fail(error)
    }

    // MARK: Frames from the peer

    public mutating func receive(_ frame: Trellis_V1_Frame, now: NIODeadline) -> Action {
        lastReceived = now
        pingSentAt = nil
        switch state {
        case .idle, .closed:
            return .none
        case .awaitingHandshake:
            return receiveHandshake(frame)
        case .authenticating:
            return fail(WireError(.failedPrecondition, "frame sent before the handshake completed; wait for Welcome"))
        case .ready, .draining:
            return receiveInSession(frame, now: now)
        }
    }

    private mutating func receiveHandshake(_ frame: Trellis_V1_Frame) -> Action {
        switch (side, frame.kind) {
        case (.acceptor, .hello(let hello)):
            guard hello.magic == WireProtocol.magic else {
                return fail(WireError(.invalidArgument, "not a Trellis peer (bad magic in Hello)"))
            }
            guard hello.protocolVersion == WireProtocol.version else {
                return fail(WireError(
                    .failedPrecondition,
                    "protocol version \(hello.protocolVersion) is not supported; this server speaks version \(WireProtocol.version)"
                ))
            }
            guard case .awaitingHandshake(let deadline) = state else { return .none }
            state = .authenticating(deadline: deadline)
            return .authenticate(hello)
        case (.initiator, .welcome(let welcome)):
            state = .ready
            if welcome.hasHeartbeatTtl, welcome.heartbeatTtl.millis > 0 {
                let ttl = TimeAmount.milliseconds(welcome.heartbeatTtl.millis)
                let interval = TimeAmount.nanoseconds(ttl.nanoseconds / 2)
                configuration.keepaliveInterval = min(configuration.keepaliveInterval ?? interval, interval)
                configuration.idleTimeout = configuration.idleTimeout ?? ttl + ttl
            }
            return .handshakeCompleted(welcome)
        case (.initiator, .goaway(let goaway)):
            state = .closed
            return .handshakeRejected(WireError(status: goaway.status))
        default:
            return fail(WireError(.failedPrecondition, "the first frame must be a \(side == .acceptor ? "Hello" : "Welcome")"))
        }
    }

    private mutating func receiveInSession(_ frame: Trellis_V1_Frame, now: NIODeadline) -> Action {
        let id = frame.callID
        switch frame.kind {
        case .request(let request):
            guard isPeerID(id), id > lastInboundID else {
                return fail(WireError(.invalidArgument, "call id \(id) is not a new call id for this side (duplicate or wrong parity)"))
            }
            lastInboundID = id
            if state == .draining {
                return .write(Self.response(id, WireError(.unavailable, "the server is shutting down; retry on a new connection")))
            }
            guard inbound.count < configuration.maximumConcurrentCalls else {
                return .write(Self.response(id, WireError(.resourceExhausted, "too many concurrent calls (limit \(configuration.maximumConcurrentCalls))")))
            }
            var deadline: NIODeadline?
            if request.hasTimeout {
                guard request.timeout.millis > 0 else {
                    return .write(Self.response(id, WireError(.deadlineExceeded, "the call's deadline had passed when it arrived")))
                }
                deadline = now + .milliseconds(request.timeout.millis)
            }
            let window = request.streamWindow == 0 ? configuration.defaultStreamWindow : request.streamWindow
            inbound[id] = InboundCall(deadline: deadline, credit: window)
            return .dispatch(callID: id, request: request, deadline: deadline)
        case .response, .streamEnd:
            if outbound.removeValue(forKey: id) != nil { return .deliver(callID: id, kind: frame.kind!) }
            return unknownOutbound(id)
        case .streamItem:
            guard var call = outbound[id] else { return unknownOutbound(id) }
            // A peer that sends beyond the credit would make us buffer without
            // bound: that is a protocol error.
            guard let credit = call.credit, credit > 0 else {
                return fail(WireError(.resourceExhausted, "stream item on call \(id) beyond the credit granted"))
            }
            call.credit = credit - 1
            outbound[id] = call
            return .deliver(callID: id, kind: frame.kind!)
        case .cancel:
            if inbound.removeValue(forKey: id) != nil { return .cancelInbound(callID: id, reply: nil) }
            return .none
        case .streamCredit(let credit):
            guard var call = inbound[id] else { return .none }
            let (sum, overflow) = call.credit.addingReportingOverflow(credit.items)
            call.credit = overflow ? .max : sum
            inbound[id] = call
            return .creditGranted(callID: id)
        case .ping(let ping):
            var pong = Trellis_V1_Frame()
            pong.pong.opaque = ping.opaque
            return .write(pong)
        case .pong:
            return .none
        case .goaway(let goaway):
            peerWentAway = true
            let failing = outbound.keys.filter { $0 > goaway.lastCallID }.sorted()
            for id in failing { outbound.removeValue(forKey: id) }
            return .peerGoingAway(failing: failing, status: goaway.status)
        case .hello, .welcome:
            return fail(WireError(.failedPrecondition, "handshake frame after the handshake"))
        case nil:
            // A kind from a newer protocol version: ignore it.
            return .none
        }
    }

    /// A reply to a call we do not have open: late (we gave up on it) or never made.
    private mutating func unknownOutbound(_ id: UInt64) -> Action {
        if !isPeerID(id), id != 0, id < nextOutboundID { return .none }
        return fail(WireError(.invalidArgument, "reply to call id \(id), which was never made"))
    }

    private func isPeerID(_ id: UInt64) -> Bool {
        id != 0 && (id % 2 == 1) == (side == .acceptor)
    }

    // MARK: Our calls

    /// Starts an outbound call; returns its id, or why it cannot start.
    /// `deadline`: when the call fails with DEADLINE_EXCEEDED unless answered
    /// (nil: never). `streamWindow`: for a server-streaming call, the items
    /// the peer may send before it needs more credit; nil for a unary call.
    public mutating func startCall(deadline: NIODeadline?, streamWindow: UInt32? = nil) -> Result<UInt64, WireError> {
        guard state == .ready, !peerWentAway else {
            return .failure(WireError(.unavailable, state == .closed ? "the connection is closed" : "the connection is not accepting new calls"))
        }
        let id = nextOutboundID
        nextOutboundID += 2
        outbound[id] = OutboundCall(deadline: deadline, credit: streamWindow)
        return .success(id)
    }

    /// The caller gave up on an outbound call.
    public mutating func cancelCall(_ id: UInt64) -> Action {
        guard outbound.removeValue(forKey: id) != nil else { return .none }
        var frame = Trellis_V1_Frame()
        frame.callID = id
        frame.cancel = Trellis_V1_Cancel()
        return .write(frame)
    }

    /// The caller of an outbound stream consumed `items`: let the peer send more.
    public mutating func grantCredit(_ id: UInt64, items: UInt32) -> Action {
        guard var call = outbound[id], let credit = call.credit else { return .none }
        let (sum, overflow) = credit.addingReportingOverflow(items)
        call.credit = overflow ? .max : sum
        outbound[id] = call
        var frame = Trellis_V1_Frame()
        frame.callID = id
        frame.streamCredit.items = items
        return .write(frame)
    }

    // MARK: Calls the peer made

    /// An inbound call's handler finished; true if its answer should be written
    /// (false: the call was cancelled or timed out meanwhile).
    public mutating func finishInbound(_ id: UInt64) -> Bool {
        inbound.removeValue(forKey: id) != nil
    }

    /// Whether the peer's call `id` is still open (not answered, cancelled or
    /// expired).
    public func isInboundOpen(_ id: UInt64) -> Bool { inbound[id] != nil }

    /// Whether an inbound streaming call may send one more item now.
    public enum StreamPermit: Sendable, Equatable { case send, wait, gone }

    public mutating func takeStreamCredit(_ id: UInt64) -> StreamPermit {
        guard var call = inbound[id] else { return .gone }
        guard call.credit > 0 else { return .wait }
        call.credit -= 1
        inbound[id] = call
        return .send
    }

    // MARK: Shutdown, timers, close

    /// Graceful shutdown: say GOAWAY, refuse new calls, let open ones finish.
    public mutating func beginGoAway(now: NIODeadline) -> Action {
        switch state {
        case .ready:
            state = .draining
            var frame = Trellis_V1_Frame()
            frame.goaway.lastCallID = lastInboundID
            frame.goaway.status = WireError(.unavailable, "the server is shutting down").status
            return openCalls == 0 ? .writeAndClose(frame) : .write(frame)
        case .idle, .awaitingHandshake, .authenticating:
            state = .closed
            return .close
        case .draining, .closed:
            return .none
        }
    }

    /// Expired deadlines, keepalive pings, dead peers, slow handshakes. Call
    /// it at `nextTimerDeadline()` (calling it earlier or more often is
    /// harmless).
    public mutating func tick(now: NIODeadline) -> [Action] {
        switch state {
        case .idle, .closed:
            return []
        case .awaitingHandshake(let deadline), .authenticating(let deadline):
            guard now >= deadline else { return [] }
            return [fail(WireError(.deadlineExceeded, "no handshake within \(configuration.handshakeTimeout)"))]
        case .ready, .draining:
            break
        }
        if let idle = configuration.idleTimeout, now - lastReceived >= idle {
            state = .closed
            return [.close]
        }
        var actions: [Action] = []
        for (id, call) in inbound {
            guard let deadline = call.deadline, deadline <= now else { continue }
            inbound.removeValue(forKey: id)
            actions.append(.cancelInbound(callID: id, reply: Self.response(id, WireError(.deadlineExceeded, "the call's deadline passed before the handler finished"))))
        }
        for (id, call) in outbound {
            guard let deadline = call.deadline, deadline <= now else { continue }
            outbound.removeValue(forKey: id)
            var cancel = Trellis_V1_Frame()
            cancel.callID = id
            cancel.cancel = Trellis_V1_Cancel()
            actions.append(.failOutbound(callID: id, error: WireError(.deadlineExceeded, "no answer before the call's deadline"), frame: cancel))
        }
        if let interval = configuration.keepaliveInterval, now - lastReceived >= interval,
           pingSentAt.map({ now - $0 >= interval }) ?? true {
            pingSentAt = now
            var ping = Trellis_V1_Frame()
            ping.ping.opaque = nextPingOpaque
            nextPingOpaque += 1
            actions.append(.write(ping))
        }
        if state == .draining, openCalls == 0 { actions.append(.close) }
        return actions
    }

    /// The earliest time at which `tick` may have something to do: the
    /// handshake's deadline, the next keepalive ping, the idle timeout, the
    /// nearest call deadline; nil when nothing is timed. The handler keeps
    /// one timer for it, so an idle connection wakes when something is due,
    /// not on a fixed tick. Only moves earlier when a call with a deadline
    /// starts (the handler re-arms then); frames from the peer only move it
    /// later, so a timer that fires early finds nothing and is set again.
    /// O(open calls): asked when the timer fires, never per frame.
    public func nextTimerDeadline() -> NIODeadline? {
        switch state {
        case .idle, .closed:
            return nil
        case .awaitingHandshake(let deadline), .authenticating(let deadline):
            return deadline
        case .ready, .draining:
            break
        }
        var next: NIODeadline?
        func consider(_ deadline: NIODeadline?) {
            guard let deadline else { return }
            if let current = next, current <= deadline { return }
            next = deadline
        }
        if let idle = configuration.idleTimeout { consider(lastReceived + idle) }
        if let interval = configuration.keepaliveInterval {
            // As in `tick`: after `interval` of silence, and one ping per interval.
            let afterSilence = lastReceived + interval
            consider(pingSentAt.map { Swift.max(afterSilence, $0 + interval) } ?? afterSilence)
        }
        for call in inbound.values { consider(call.deadline) }
        for call in outbound.values { consider(call.deadline) }
        return next
    }

    /// The transport closed. Returns the calls to end: outbound calls fail with
    /// UNAVAILABLE, inbound handlers are cancelled.
    public mutating func channelInactive() -> (outbound: [UInt64], inbound: [UInt64]) {
        state = .closed
        let result = (Array(outbound.keys), Array(inbound.keys))
        outbound.removeAll()
        inbound.removeAll()
        return result
    }

    /// A protocol error: say GOAWAY with the reason, then close.
    public mutating func fail(_ error: WireError) -> Action {
        state = .closed
        var frame = Trellis_V1_Frame()
        frame.goaway.lastCallID = lastInboundID
        frame.goaway.status = error.status
        return .writeAndClose(frame)
    }

    static func response(_ id: UInt64, _ error: WireError) -> Trellis_V1_Frame {
        var frame = Trellis_V1_Frame()
        frame.callID = id
        frame.response.status = error.status
        return frame
    }
}
