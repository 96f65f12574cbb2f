import Foundation
import NIOCore
import Testing
import TrellisProto

@testable import TrellisWire

/// The connection's protocol logic, with time passed in by hand: no I/O, no
/// sleeping.
@Suite struct ConnectionStateMachineTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func acceptor(_ configure: (inout ConnectionStateMachine.Configuration) -> Void = { _ in }) -> ConnectionStateMachine {
        var configuration = ConnectionStateMachine.Configuration()
        configure(&configuration)
        var machine = ConnectionStateMachine(side: .acceptor, configuration: configuration, now: t0)
        do { let got = machine.channelActive(hello: nil, now: t0); #expect(got == .none) }
        return machine
    }

    func readyAcceptor(_ configure: (inout ConnectionStateMachine.Configuration) -> Void = { _ in }) -> ConnectionStateMachine {
        var machine = acceptor(configure)
        guard case .authenticate = machine.receive(Frames.hello(), now: t0) else {
            Issue.record("expected authenticate")
            return machine
        }
        guard case .write(let welcome) = machine.authenticated(welcome: Trellis_V1_Welcome()), welcome.welcome == Trellis_V1_Welcome() else {
            Issue.record("expected a Welcome")
            return machine
        }
        return machine
    }

    func readyInitiator(ttlMillis: Int64 = 0) -> ConnectionStateMachine {
        var machine = ConnectionStateMachine(side: .initiator, configuration: .init(), now: t0)
        guard case .write(let hello) = machine.channelActive(hello: Frames.hello().hello, now: t0), hello.hello.magic == WireProtocol.magic else {
            Issue.record("initiator must send Hello first")
            return machine
        }
        guard case .handshakeCompleted = machine.receive(Frames.welcome(ttlMillis: ttlMillis), now: t0) else {
            Issue.record("expected handshakeCompleted")
            return machine
        }
        return machine
    }

    static func goAwayCode(_ action: ConnectionStateMachine.Action) -> Trellis_V1_StatusCode? {
        if case .writeAndClose(let frame) = action, case .goaway(let goaway) = frame.kind { return goaway.status.code }
        return nil
    }

    static func responseCode(_ action: ConnectionStateMachine.Action) -> Trellis_V1_StatusCode? {
        if case .write(let frame) = action, case .response(let response) = frame.kind { return response.status.code }
        return nil
    }

    // MARK: Handshake

    @Test func helloWithBadMagicIsRefused() {
        var machine = acceptor()
        do { let got = machine.receive(Frames.hello(magic: 0xDEAD), now: t0); #expect(Self.goAwayCode(got) == .invalidArgument) }
        #expect(machine.isClosed)
    }

    @Test func helloWithOtherVersionIsFailedPrecondition() {
        var machine = acceptor()
        do { let got = machine.receive(Frames.hello(version: 99), now: t0); #expect(Self.goAwayCode(got) == .failedPrecondition) }
    }

    @Test func callBeforeHandshakeClosesTheConnection() {
        var machine = acceptor()
        do { let got = machine.receive(Frames.request(1), now: t0); #expect(Self.goAwayCode(got) == .failedPrecondition) }
        #expect(machine.isClosed)
    }

    @Test func callWhileAuthenticatingClosesTheConnection() {
        var machine = acceptor()
        _ = machine.receive(Frames.hello(), now: t0)
        do { let got = machine.receive(Frames.request(1), now: t0); #expect(Self.goAwayCode(got) == .failedPrecondition) }
    }

    @Test func rejectedCredentialsAreUnauthenticated() {
        var machine = acceptor()
        _ = machine.receive(Frames.hello(), now: t0)
        do { let got = machine.authenticationFailed(WireError(.unauthenticated, "no")); #expect(Self.goAwayCode(got) == .unauthenticated) }
        #expect(machine.isClosed)
    }

    @Test func initiatorSeesRejection() {
        var machine = ConnectionStateMachine(side: .initiator, configuration: .init(), now: t0)
        _ = machine.channelActive(hello: Frames.hello().hello, now: t0)
        var goaway = Trellis_V1_Frame()
        goaway.goaway.status = WireError(.unauthenticated, "wrong token").status
        do { let got = machine.receive(goaway, now: t0); #expect(got == .handshakeRejected(WireError(.unauthenticated, "wrong token"))) }
    }

    @Test func handshakeTimesOut() {
        var machine = acceptor { $0.handshakeTimeout = .seconds(5) }
        do { let got = machine.tick(now: t0 + .seconds(4)); #expect(got.isEmpty) }
        do { let got = machine.tick(now: t0 + .seconds(5)); #expect(got.map(Self.goAwayCode) == [.deadlineExceeded]) }
    }

    @Test func welcomeTTLSetsKeepalive() {
        let machine = readyInitiator(ttlMillis: 10_000)
        #expect(machine.configuration.keepaliveInterval == .seconds(5))
        #expect(machine.configuration.idleTimeout == .seconds(20))
    }

    // MARK: Calls

    @Test func requestIsDispatchedWithItsDeadline() {
        var machine = readyAcceptor()
        let action = machine.receive(Frames.request(1, timeoutMillis: 250), now: t0)
        #expect(action == .dispatch(callID: 1, request: Frames.request(1, timeoutMillis: 250).request, deadline: t0 + .milliseconds(250)))
        #expect(machine.openCalls == 1)
        do { let got = machine.finishInbound(1); #expect(got) }
        do { let got = machine.finishInbound(1); #expect(!got) }
    }

    @Test func duplicateOrStaleCallIDClosesTheConnection() {
        var machine = readyAcceptor()
        _ = machine.receive(Frames.request(3), now: t0)
        do { let got = machine.receive(Frames.request(3), now: t0); #expect(Self.goAwayCode(got) == .invalidArgument) }
        var other = readyAcceptor()
        _ = other.receive(Frames.request(5), now: t0)
        do { let got = other.receive(Frames.request(1), now: t0); #expect(Self.goAwayCode(got) == .invalidArgument) }
    }

    @Test func wrongParityCallIDClosesTheConnection() {
        var machine = readyAcceptor()
        do { let got = machine.receive(Frames.request(2), now: t0); #expect(Self.goAwayCode(got) == .invalidArgument) }
    }

    @Test func responseToACallNeverMadeClosesTheConnection() {
        var machine = readyInitiator()
        do { let got = machine.receive(Frames.response(7), now: t0); #expect(Self.goAwayCode(got) == .invalidArgument) }
    }

    @Test func lateResponseToACancelledCallIsIgnored() {
        var machine = readyInitiator()
        let id = try! machine.startCall(deadline: nil).get()
        #expect(id == 1)
        guard case .write(let cancel) = machine.cancelCall(id), case .cancel = cancel.kind else {
            Issue.record("expected a Cancel frame")
            return
        }
        do { let got = machine.receive(Frames.response(id), now: t0); #expect(got == .none) }
        #expect(!machine.isClosed)
    }

    @Test func outboundIDsAlternateBySide() {
        var initiator = readyInitiator()
        let odd = [initiator.startCall(deadline: nil), initiator.startCall(deadline: nil)].map { try? $0.get() }
        #expect(odd == [1, 3])
        var acceptor = readyAcceptor()
        let even = [acceptor.startCall(deadline: nil), acceptor.startCall(deadline: nil)].map { try? $0.get() }
        #expect(even == [2, 4])
    }

    @Test func responseIsDeliveredOnce() {
        var machine = readyInitiator()
        let id = try! machine.startCall(deadline: nil).get()
        let response = Frames.response(id, payload: [4])
        do { let got = machine.receive(response, now: t0); #expect(got == .deliver(callID: id, kind: response.kind!)) }
        do { let got = machine.receive(response, now: t0); #expect(got == .none) }
    }

    @Test func cancelFromThePeerStopsTheHandler() {
        var machine = readyAcceptor()
        _ = machine.receive(Frames.request(1), now: t0)
        do { let got = machine.receive(Frames.cancel(1), now: t0); #expect(got == .cancelInbound(callID: 1, reply: nil)) }
        do { let got = machine.finishInbound(1); #expect(!got) }
        do { let got = machine.receive(Frames.cancel(1), now: t0); #expect(got == .none) }
    }

    @Test func expiredInboundDeadlineCancelsAndAnswersDeadlineExceeded() {
        var machine = readyAcceptor()
        _ = machine.receive(Frames.request(1, timeoutMillis: 100), now: t0)
        do { let got = machine.tick(now: t0 + .milliseconds(99)); #expect(got.isEmpty) }
        let actions = machine.tick(now: t0 + .milliseconds(100))
        guard case .cancelInbound(1, let reply?) = actions.first, case .response(let response) = reply.kind else {
            Issue.record("expected cancel with a reply, got \(actions)")
            return
        }
        #expect(response.status.code == .deadlineExceeded)
        do { let got = machine.finishInbound(1); #expect(!got) }
    }

    @Test func expiredOutboundDeadlineFailsTheCallerAndCancels() {
        var machine = readyInitiator()
        let id = try! machine.startCall(deadline: t0 + .seconds(1))
            .get()
        let actions = machine.tick(now: t0 + .seconds(1))
        guard case .failOutbound(id, let error, let frame?) = actions.first, case .cancel = frame.kind else {
            Issue.record("expected failOutbound, got \(actions)")
            return
        }
        #expect(error.code == .deadlineExceeded)
    }

    @Test func zeroTimeoutIsAlreadyExceeded() {
        var machine = readyAcceptor()
        var request = Frames.request(1)
        request.request.timeout.millis = 0
        do { let got = machine.receive(request, now: t0); #expect(Self.responseCode(got) == .deadlineExceeded) }
    }

    @Test func tooManyConcurrentCallsAreResourceExhausted() {
        var machine = readyAcceptor { $0.maximumConcurrentCalls = 2 }
        _ = machine.receive(Frames.request(1), now: t0)
        _ = machine.receive(Frames.request(3), now: t0)
        do { let got = machine.receive(Frames.request(5), now: t0); #expect(Self.responseCode(got) == .resourceExhausted) }
    }

    // MARK: Streaming credit

    @Test func streamCreditBoundsItemsInFlight() {
        var machine = readyAcceptor()
        _ = machine.receive(Frames.request(1, window: 2), now: t0)
        do { let got = machine.takeStreamCredit(1); #expect(got == .send) }
        do { let got = machine.takeStreamCredit(1); #expect(got == .send) }
        do { let got = machine.takeStreamCredit(1); #expect(got == .wait) }
        do { let got = machine.receive(Frames.credit(1, 1), now: t0); #expect(got == .creditGranted(callID: 1)) }
        do { let got = machine.takeStreamCredit(1); #expect(got == .send) }
        do { let got = machine.takeStreamCredit(1); #expect(got == .wait) }
        _ = machine.receive(Frames.cancel(1), now: t0)
        do { let got = machine.takeStreamCredit(1); #expect(got == .gone) }
    }

    @Test func streamItemsBeyondOurCreditAreAProtocolError() {
        var machine = readyInitiator()
        let id = try! machine.startCall(deadline: nil, streamWindow: 1).get()
        var item = Trellis_V1_Frame()
        item.callID = id
        item.streamItem.payload = Data([1])
        do { let got = machine.receive(item, now: t0); #expect(got == .deliver(callID: id, kind: item.kind!)) }
        _ = machine.grantCredit(id, items: 1)
        do { let got = machine.receive(item, now: t0); #expect(got == .deliver(callID: id, kind: item.kind!)) }
        do { let got = machine.receive(item, now: t0); #expect(Self.goAwayCode(got) == .resourceExhausted) }
    }

    // MARK: GOAWAY and keepalive

    @Test func goAwayRefusesNewCallsAndDrains() {
        var machine = readyAcceptor()
        _ = machine.receive(Frames.request(1), now: t0)
        guard case .write(let goaway) = machine.beginGoAway(now: t0), case .goaway(let body) = goaway.kind else {
            Issue.record("expected GOAWAY")
            return
        }
        #expect(body.lastCallID == 1)
        do { let got = machine.receive(Frames.request(3), now: t0); #expect(Self.responseCode(got) == .unavailable) }
        #expect(!machine.isDrained)
        do { let got = machine.finishInbound(1); #expect(got) }
        #expect(machine.isDrained)
    }

    @Test func goAwayWithNothingOpenClosesAtOnce() {
        var machine = readyAcceptor()
        guard case .writeAndClose = machine.beginGoAway(now: t0) else {
            Issue.record("expected writeAndClose")
            return
        }
    }

    @Test func peerGoAwayFailsCallsItWillNotRun() {
        var machine = readyInitiator()
        let first = try! machine.startCall(deadline: nil).get()
        let second = try! machine.startCall(deadline: nil).get()
        var goaway = Trellis_V1_Frame()
        goaway.goaway.lastCallID = first
        guard case .peerGoingAway(let failing, _) = machine.receive(goaway, now: t0) else {
            Issue.record("expected peerGoingAway")
            return
        }
        #expect(failing == [second])
        let refused = machine.startCall(deadline: nil)
        #expect(throws: WireError.self) { try refused.get() }
        do { let got = machine.receive(Frames.response(first), now: t0); #expect(got == .deliver(callID: first, kind: Frames.response(first).kind!)) }
    }

    @Test func keepalivePingsAfterSilenceThenDeclaresThePeerDead() {
        var machine = readyInitiator(ttlMillis: 10_000)  // ping every 5 s, dead after 20 s
        do { let got = machine.tick(now: t0 + .seconds(4)); #expect(got.isEmpty) }
        let ping = machine.tick(now: t0 + .seconds(5))
        guard case .write(let frame) = ping.first, case .ping = frame.kind else {
            Issue.record("expected a Ping, got \(ping)")
            return
        }
        #expect(machine.tick(now: t0 + .seconds(6)).isEmpty)  // one ping per interval
        var pong = Trellis_V1_Frame()
        pong.pong.opaque = frame.ping.opaque
        _ = machine.receive(pong, now: t0 + .seconds(7))
        do { let got = machine.tick(now: t0 + .seconds(27)); #expect(got.contains(.close)) }
        #expect(machine.isClosed)
    }

    @Test func pingIsAnsweredWithPong() {
        var machine = readyAcceptor()
        var ping = Trellis_V1_Frame()
        ping.ping.opaque = 42
        guard case .write(let pong) = machine.receive(ping, now: t0), case .pong(let body) = pong.kind else {
            Issue.record("expected a Pong")
            return
        }
        #expect(body.opaque == 42)
    }

    @Test func nextTimerIsTheHandshakeDeadlineUntilTheSessionOpens() {
        var machine = acceptor { $0.handshakeTimeout = .seconds(10) }
        #expect(machine.nextTimerDeadline() == t0 + .seconds(10))
        _ = machine.receive(Frames.hello(), now: t0)
        #expect(machine.nextTimerDeadline() == t0 + .seconds(10))
        _ = machine.authenticated(welcome: Trellis_V1_Welcome())
        #expect(machine.nextTimerDeadline() == nil)  // no idle timeout, no keepalive, no call
    }

    @Test func nextTimerIsTheEarliestOfKeepaliveIdleAndCallDeadlines() {
        var machine = readyInitiator(ttlMillis: 10_000)  // ping every 5 s, dead after 20 s
        #expect(machine.nextTimerDeadline() == t0 + .seconds(5))
        _ = machine.startCall(deadline: t0 + .seconds(2))
        _ = machine.startCall(deadline: t0 + .seconds(3))
        #expect(machine.nextTimerDeadline() == t0 + .seconds(2))
        _ = machine.tick(now: t0 + .seconds(2))  // the first call expires
        #expect(machine.nextTimerDeadline() == t0 + .seconds(3))
        _ = machine.tick(now: t0 + .seconds(3))
        #expect(machine.nextTimerDeadline() == t0 + .seconds(5))
        // Silence: a ping at 5 s, the next one interval after it, dead at 20 s.
        do { let got = machine.tick(now: t0 + .seconds(5)); #expect(got.count == 1) }
        #expect(machine.nextTimerDeadline() == t0 + .seconds(10))
        // A frame from the peer moves keepalive and idle later.
        var pong = Trellis_V1_Frame()
        pong.pong.opaque = 1
        _ = machine.receive(pong, now: t0 + .seconds(8))
        #expect(machine.nextTimerDeadline() == t0 + .seconds(13))
    }

    @Test func nextTimerCoversInboundDeadlinesAndIdleTimeout() {
        var machine = readyAcceptor { $0.idleTimeout = .seconds(60) }
        #expect(machine.nextTimerDeadline() == t0 + .seconds(60))
        _ = machine.receive(Frames.request(1, timeoutMillis: 100), now: t0)
        #expect(machine.nextTimerDeadline() == t0 + .milliseconds(100))
        _ = machine.finishInbound(1)
        #expect(machine.nextTimerDeadline() == t0 + .seconds(60))
        _ = machine.channelInactive()
        #expect(machine.nextTimerDeadline() == nil)
    }

    @Test func silentAgentIsLostAfterTTLPlusGrace() {
        var machine = readyAcceptor { $0.idleTimeout = .seconds(60) }
        do { let got = machine.tick(now: t0 + .seconds(59)); #expect(!got.contains(.close)) }
        do { let got = machine.tick(now: t0 + .seconds(60)); #expect(got == [.close]) }
    }
}

/// Reconnection delays: 1 s × 1.6 up to 120 s, ±20 %.
@Suite struct BackoffTests {
    @Test func growsByTheMultiplierUpToTheCap() {
        let backoff = Backoff()
        #expect(backoff.delay(attempt: 0, random: 0) == .seconds(1))
        #expect(backoff.delay(attempt: 1, random: 0) == .milliseconds(1600))
        #expect(backoff.delay(attempt: 2, random: 0) == .milliseconds(2560))
        #expect(backoff.delay(attempt: 30, random: 0) == .seconds(120))
        #expect(backoff.delay(attempt: 10_000, random: 0) == .seconds(120))
    }

    @Test func jitterStaysWithinTwentyPercent() {
        let backoff = Backoff()
        #expect(backoff.delay(attempt: 0, random: -1) == .milliseconds(800))
        #expect(backoff.delay(attempt: 0, random: 1) == .milliseconds(1200))
        #expect(backoff.delay(attempt: 40, random: 1) == .seconds(144))
        for _ in 0..<100 {
            let delay = backoff.delay(attempt: 3)
            #expect(delay >= .milliseconds(3276) && delay <= .milliseconds(4916))
        }
    }

    @Test func isConfigurable() {
        let backoff = Backoff(initial: .milliseconds(10), multiplier: 2, maximum: .milliseconds(50), jitter: 0)
        #expect((0..<5).map { backoff.delay(attempt: $0, random: 1) } == [.milliseconds(10), .milliseconds(20), .milliseconds(40), .milliseconds(50), .milliseconds(50)])
    }
}

@Suite struct AuthenticatorTests {
    @Test func constantTimeComparison() {
        #expect(constantTimeEqual("secret", "secret"))
        #expect(!constantTimeEqual("secret", "secreT"))
        #expect(!constantTimeEqual("secret", "secret2"))
        #expect(!constantTimeEqual("", "x"))
        #expect(constantTimeEqual("", ""))
    }

    @Test func rolesAndTokens() {
        let authenticator = StaticTokenAuthenticator(agentToken: "join", clientTokens: [("api-1", "admin"), ("api-2", "viewer")])
        #expect(authenticator.authenticate(Frames.hello(role: .agent, credentials: "join").hello)?.role == .agent)
        #expect(authenticator.authenticate(Frames.hello(role: .client, credentials: "join").hello) == nil)
        #expect(authenticator.authenticate(Frames.hello(role: .client, credentials: "api-2").hello)?.subject == "viewer")
        #expect(authenticator.authenticate(Frames.hello(role: .agent, credentials: "api-1").hello) == nil)
        #expect(authenticator.authenticate(Frames.hello(role: .unspecified, credentials: "join").hello) == nil)
        #expect(authenticator.authenticate(Frames.hello(role: .client, credentials: "").hello) == nil)
    }
}
