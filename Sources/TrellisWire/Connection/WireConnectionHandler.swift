import Foundation
import NIOCore
import TrellisProto

/// Carries a connection's events into its `ConnectionStateMachine` and the
/// machine's actions out: writes frames, runs method handlers as tasks,
/// resumes callers. All its state is confined to the channel's event loop.
final class WireConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = Trellis_V1_Frame
    typealias OutboundIn = Never
    typealias OutboundOut = Trellis_V1_Frame

    /// What the acceptor needs to run the handshake.
    struct AcceptorSetup {
        var authenticator: any WireAuthenticator
        var heartbeatTTL: TimeAmount
        var serverVersion: String
    }

    private var machine: ConnectionStateMachine
    private let services: WireServices
    private let hello: Trellis_V1_Hello?
    private let acceptor: AcceptorSetup?
    /// Where method handlers run: the connection's event loop, or (nil) the
    /// global concurrent executor.
    private let handlerExecutor: EventLoopTaskExecutor?
    private let now: @Sendable () -> NIODeadline

    private var context: ChannelHandlerContext?
    /// The one timer of this connection, set for the machine's next timed
    /// event (`nextTimerDeadline`); nil when nothing is timed.
    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var started = false
    private var flushScheduled = false
    /// Between channelRead and channelReadComplete: writes made now are
    /// flushed by channelReadComplete, no flush needs scheduling.
    private var inReadBurst = false
    private var readBurstNow: NIODeadline?
    private(set) var identity: WireIdentity?
    private(set) var welcome: Trellis_V1_Welcome?
    /// Succeeds when the handshake completes, fails if it does not.
    let handshake: EventLoopPromise<Void>
    private var handshakeSettled = false

    private var handlerTasks: [UInt64: Task<Void, Never>] = [:]
    private var waitingStreamItems: [UInt64: (Data, EventLoopPromise<Void>)] = [:]
    private var unaryCallers: [UInt64: UnsafeContinuation<Data, any Error>] = [:]
    private var streamCallers: [UInt64: AsyncThrowingStream<Data, any Error>.Continuation] = [:]
    private var onGoAway: (@Sendable () -> Void)?

    init(
        side: ConnectionStateMachine.Side,
        configuration: ConnectionStateMachine.Configuration,
        services: WireServices,
        hello: Trellis_V1_Hello?,
        acceptor: AcceptorSetup?,
        handlersOnEventLoop: Bool = true,
        eventLoop: any EventLoop,
        now: @escaping @Sendable () -> NIODeadline = { .now() },
        onGoAway: (@Sendable () -> Void)? = nil
    ) {
        self.machine = ConnectionStateMachine(side: side, configuration: configuration, now: now())
        self.services = services
        self.hello = hello
        self.acceptor = acceptor
        self.handlerExecutor = handlersOnEventLoop ? EventLoopTaskExecutor(eventLoop: eventLoop) : nil
        self.now = now
        self.handshake = eventLoop.makePromise()
        self.onGoAway = onGoAway
    }

    var openCalls: Int { machine.openCalls }
    var isReady: Bool { machine.isReady }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        self.context = nil
        // A channel that never became active (a failed bind or connect) must
        // not leave its handshake promise unfulfilled.
        settleHandshake(WireError(.unavailable, "the connection closed before its handshake"))
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        perform(machine.channelActive(hello: hello, now: now()))
        armTimer(at: machine.nextTimerDeadline())
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        inReadBurst = true
        // One clock read per read burst: liveness needs no finer time.
        let now = readBurstNow ?? self.now()
        readBurstNow = now
        perform(machine.receive(frame, now: now))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readBurstNow = nil
        inReadBurst = false
        flushIfNeeded()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        let (outbound, inbound) = machine.channelInactive()
        let closed = WireError(.unavailable, "the connection closed")
        for id in outbound { failCaller(id, closed) }
        for id in inbound { handlerTasks.removeValue(forKey: id)?.cancel() }
        for (_, (_, promise)) in waitingStreamItems { promise.fail(WireError(.cancelled, "the connection closed")) }
        waitingStreamItems.removeAll()
        settleHandshake(closed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The decoder rejected the byte stream (oversize or malformed frame):
        // say why, then close this connection only.
        guard let wireError = error as? WireError else {
            // A transport error (reset, broken pipe): nobody to tell.
            context.close(promise: nil)
            return
        }
        perform(machine.fail(wireError))
    }

    // MARK: Actions

    private func perform(_ action: ConnectionStateMachine.Action) {
        guard let context else { return }
        switch action {
        case .none:
            break
        case .write(let frame):
            write(frame)
        case .writeAndClose(let frame):
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in channel.close(promise: nil) }
        case .close:
            flushIfNeeded()
            context.close(promise: nil)
        case .authenticate(let hello):
            guard let acceptor else { return }
            if let identity = acceptor.authenticator.authenticate(hello) {
                self.identity = identity
                var welcome = Trellis_V1_Welcome()
                welcome.protocolVersion = WireProtocol.version
                welcome.sessionID = UUID().uuidString.lowercased()
                welcome.heartbeatTtl.millis = acceptor.heartbeatTTL.nanoseconds / 1_000_000
                welcome.serverVersion = acceptor.serverVersion
                self.welcome = welcome
                perform(machine.authenticated(welcome: welcome))
                flushIfNeeded()
                settleHandshake(nil)
                armTimer(at: machine.nextTimerDeadline())
            } else {
                let error = WireError(.unauthenticated, "missing or wrong credentials for role \(hello.role)")
                settleHandshake(error)
                perform(machine.authenticationFailed(error))
            }
        case .handshakeCompleted(let welcome):
            self.welcome = welcome
            settleHandshake(nil)
            // The Welcome's heartbeat TTL set keepalive and idle timeouts.
            armTimer(at: machine.nextTimerDeadline())
        case .handshakeRejected(let error):
            settleHandshake(error)
            context.close(promise: nil)
        case .dispatch(let id, let request, let deadline):
            dispatch(id, request, deadline: deadline)
            // A handler still running when its deadline passes is cancelled.
            if deadline != nil, machine.isInboundOpen(id) { armTimer(at: deadline) }
        case .cancelInbound(let id, let reply):
            handlerTasks.removeValue(forKey: id)?.cancel()
            waitingStreamItems.removeValue(forKey: id)?.1.fail(WireError(.cancelled, "the caller cancelled the call"))
            if let reply { write(reply) }
            // Draining: that may have been the last call.
            closeIfDrained()
        case .creditGranted(let id):
            if let (payload, promise) = waitingStreamItems.removeValue(forKey: id) {
                sendStreamItem(id, payload, promise)
            }
        case .deliver(let id, let kind):
            deliver(id, kind)
        case .failOutbound(let id, let error, let frame):
            failCaller(id, error)
            if let frame { write(frame) }
        case .peerGoingAway(let failing, let status):
            let error = WireError(.unavailable, "the peer is going away (\(status.message)); the call was not run")
            for id in failing { failCaller(id, error) }
            onGoAway?()
            closeIfDrained()
        }
    }

    private func settleHandshake(_ error: WireError?) {
        guard !handshakeSettled else { return }
        handshakeSettled = true
        if let error { handshake.fail(error) } else { handshake.succeed() }
    }

    private func write(_ frame: Trellis_V1_Frame) {
        guard let context else { return }
        context.write(wrapOutboundOut(frame), promise: nil)
        // Inside a read burst channelReadComplete flushes; otherwise (a task
        // answering later, a caller starting a call) flush once the tasks
        // already queued on the loop have written too.
        if !inReadBurst { scheduleFlush() }
    }

    /// Coalesces flushes: everything written by the tasks already queued on the
    /// event loop goes out in one syscall.
    private func scheduleFlush() {
        guard !flushScheduled, let context else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute { loopBound.value.flushIfNeeded() }
    }

    private func flushIfNeeded() {
        guard let context else { return }
        flushScheduled = false
        context.flush()
    }

    // MARK: Timer

    /// Makes sure the timer fires no later than `deadline`: keeps an earlier
    /// one, replaces a later one.
    private func armTimer(at deadline: NIODeadline?) {
        guard let deadline, let context else { return }
        if let timerDeadline, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(deadline: deadline) { loopBound.value.timerFired() }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
    }

    private func timerFired() {
        timer = nil
        timerDeadline = nil
        for action in machine.tick(now: now()) { perform(action) }
        armTimer(at: machine.nextTimerDeadline())
    }

    // MARK: Calls the peer made

    private func dispatch(_ id: UInt64, _ request: Trellis_V1_Request, deadline: NIODeadline?) {
        guard let context else { return }
        guard let method = services.method(named: request.method) else {
            _ = machine.finishInbound(id)
            write(ConnectionStateMachine.response(id, WireError(.unimplemented, "method \(request.method) is not implemented by this peer")))
            return
        }
        let callContext = WireCallContext(method: request.method, peer: identity, deadline: deadline)
        let payload = request.payload
        if case .unarySync(let body) = method, handlerExecutor != nil {
            // No task: answer before the next frame is read.
            let result: Result<Data, any Error>
            do { result = .success(try body(payload, callContext)) } catch { result = .failure(error) }
            finishUnary(id, result)
            return
        }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        switch method {
        case .unary(let body):
            let task = Self.spawnUnary(id, body, payload, callContext, eventLoop, loopBound, handlerExecutor)
            // A handler that finished without suspending has already answered.
            if machine.isInboundOpen(id) { handlerTasks[id] = task }
        case .unarySync(let body):
            // Handlers run off the event loop (handlersOnEventLoop false):
            // even a synchronous one gets a task on the global executor.
            let task = Self.spawnUnary(id, { try body($0, $1) }, payload, callContext, eventLoop, loopBound, nil)
            if machine.isInboundOpen(id) { handlerTasks[id] = task }
        case .serverStreaming(let body):
            let task = Self.spawnStream(id, body, payload, callContext, eventLoop, loopBound, handlerExecutor)
            if machine.isInboundOpen(id) { handlerTasks[id] = task }
        }
    }

    private static func spawnUnary(
        _ id: UInt64,
        _ body: @escaping @Sendable (Data, WireCallContext) async throws -> Data,
        _ payload: Data,
        _ callContext: WireCallContext,
        _ eventLoop: any EventLoop,
        _ loopBound: NIOLoopBound<WireConnectionHandler>,
        _ executor: EventLoopTaskExecutor?
    ) -> Task<Void, Never> {
        spawn(on: executor) {
            let result = await run { try await body(payload, callContext) }
            if eventLoop.inEventLoop {
                loopBound.value.finishUnary(id, result)
            } else {
                eventLoop.execute { loopBound.value.finishUnary(id, result) }
            }
        }
    }

    private static func spawnStream(
        _ id: UInt64,
        _ body: @escaping @Sendable (Data, WireCallContext, WireStreamWriter) async throws -> Void,
        _ payload: Data,
        _ callContext: WireCallContext,
        _ eventLoop: any EventLoop,
        _ loopBound: NIOLoopBound<WireConnectionHandler>,
        _ executor: EventLoopTaskExecutor?
    ) -> Task<Void, Never> {
        let writer = WireStreamWriter { item in
            let promise = eventLoop.makePromise(of: Void.self)
            eventLoop.execute { loopBound.value.sendStreamItem(id, item, promise) }
            try await promise.futureResult.get()
        }
        return spawn(on: executor) {
            let result = await run { try await body(payload, callContext, writer) }
            let status: Trellis_V1_Status
            switch result {
            case .success: status = .ok
            case .failure(let error): status = self.status(for: error)
            }
            eventLoop.execute { loopBound.value.finishStream(id, status) }
        }
    }

    /// Starts a handler's task. On the event loop's own executor the task
    /// starts at once, on this thread, and runs until it first suspends: a
    /// handler that answers without waiting costs no enqueue at all.
    private static func spawn(on executor: EventLoopTaskExecutor?, _ body: sending @escaping () async -> Void) -> Task<Void, Never> {
        guard let executor else { return Task(operation: body) }
        if #available(macOS 26, *) {
            return Task.immediate(executorPreference: executor, operation: body)
        }
        return Task(executorPreference: executor, operation: body)
    }

    private static func run<T: Sendable>(_ body: @Sendable () async throws -> T) async -> Result<T, any Error> {
        do { return .success(try await body()) } catch { return .failure(error) }
    }

    private func finishUnary(_ id: UInt64, _ result: Result<Data, any Error>) {
        handlerTasks.removeValue(forKey: id)
        guard machine.finishInbound(id) else { return }
        var frame = Trellis_V1_Frame()
        frame.callID = id
        switch result {
        case .success(let payload):
            frame.response.payload = payload
        case .failure(let error):
            frame.response.status = Self.status(for: error)
        }
        write(frame)
        closeIfDrained()
    }

    private func finishStream(_ id: UInt64, _ status: Trellis_V1_Status) {
        handlerTasks.removeValue(forKey: id)
        guard machine.finishInbound(id) else { return }
        var frame = Trellis_V1_Frame()
        frame.callID = id
        frame.streamEnd.status = status
        write(frame)
        closeIfDrained()
    }

    private func sendStreamItem(_ id: UInt64, _ payload: Data, _ promise: EventLoopPromise<Void>) {
        switch machine.takeStreamCredit(id) {
        case .send:
            var frame = Trellis_V1_Frame()
            frame.callID = id
            frame.streamItem.payload = payload
            write(frame)
            promise.succeed()
        case .wait:
            waitingStreamItems[id] = (payload, promise)
        case .gone:
            promise.fail(WireError(.cancelled, "the caller is gone"))
        }
    }

    static func status(for error: any Error) -> Trellis_V1_Status {
        if let error = error as? WireError { return error.status }
        if error is CancellationError { return WireError(.cancelled, "the handler was cancelled").status }
        return WireError(.unknown, "the handler failed: \(error)").status
    }

    private func closeIfDrained() {
        guard machine.isDrained, let context else { return }
        // Flush the last answers first: closing drops unflushed writes.
        flushIfNeeded()
        context.close(promise: nil)
    }

    // MARK: Calls we make

    func startUnary(_ method: String, _ payload: Data, timeout: TimeAmount?, handle: CallHandle, continuation: UnsafeContinuation<Data, any Error>) {
        guard !handle.cancelled else {
            continuation.resume(throwing: WireError(.cancelled, "the call was cancelled before it started"))
            return
        }
        // No clock read for a call without a deadline (most calls).
        let deadline = timeout.map { now() + $0 }
        switch machine.startCall(deadline: deadline) {
        case .failure(let error):
            continuation.resume(throwing: error)
        case .success(let id):
            handle.callID = id
            unaryCallers[id] = continuation
            write(Self.request(id, method, payload, timeout: timeout, window: 0))
            armTimer(at: deadline)
        }
    }

    func startStream(_ method: String, _ payload: Data, timeout: TimeAmount?, window: UInt32, handle: CallHandle, continuation: AsyncThrowingStream<Data, any Error>.Continuation) {
        guard !handle.cancelled else {
            continuation.finish(throwing: WireError(.cancelled, "the call was cancelled before it started"))
            return
        }
        let deadline = timeout.map { now() + $0 }
        switch machine.startCall(deadline: deadline, streamWindow: window) {
        case .failure(let error):
            continuation.finish(throwing: error)
        case .success(let id):
            handle.callID = id
            streamCallers[id] = continuation
            write(Self.request(id, method, payload, timeout: timeout, window: window))
            armTimer(at: deadline)
        }
    }

    func cancel(_ handle: CallHandle) {
        handle.cancelled = true
        guard let id = handle.callID else { return }
        perform(machine.cancelCall(id))
        failCaller(id, WireError(.cancelled, "the call was cancelled"))
        closeIfDrained()
    }

    func grantCredit(_ handle: CallHandle, items: UInt32) {
        guard let id = handle.callID else { return }
        perform(machine.grantCredit(id, items: items))
    }

    func goAway() {
        perform(machine.beginGoAway(now: now()))
        armTimer(at: machine.nextTimerDeadline())
    }

    /// Ends the connection now, cancelling whatever still runs.
    func forceClose() {
        context?.close(promise: nil)
    }

    private func deliver(_ id: UInt64, _ kind: Trellis_V1_Frame.OneOf_Kind) {
        switch kind {
        case .response(let response):
            guard let caller = unaryCallers.removeValue(forKey: id) else { return }
            if response.status.code == .ok {
                caller.resume(returning: response.payload)
            } else {
                caller.resume(throwing: WireError(status: response.status))
            }
        case .streamItem(let item):
            streamCallers[id]?.yield(item.payload)
        case .streamEnd(let end):
            guard let caller = streamCallers.removeValue(forKey: id) else { return }
            if end.status.code == .ok {
                caller.finish()
            } else {
                caller.finish(throwing: WireError(status: end.status))
            }
        default:
            break
        }
        closeIfDrained()
    }

    private func failCaller(_ id: UInt64, _ error: WireError) {
        if let caller = unaryCallers.removeValue(forKey: id) { caller.resume(throwing: error) }
        if let caller = streamCallers.removeValue(forKey: id) { caller.finish(throwing: error) }
    }

    static func request(_ id: UInt64, _ method: String, _ payload: Data, timeout: TimeAmount?, window: UInt32) -> Trellis_V1_Frame {
        var frame = Trellis_V1_Frame()
        frame.callID = id
        frame.request.method = method
        frame.request.payload = payload
        if let timeout { frame.request.timeout.millis = max(1, timeout.nanoseconds / 1_000_000) }
        frame.request.streamWindow = window
        return frame
    }
}

/// Names an outbound call across the hop to the event loop: the caller's
/// cancellation handler may run before the call has an id. Only touched on
/// the connection's event loop (every access is inside `eventLoop.execute`).
final class CallHandle: @unchecked Sendable {
    var callID: UInt64?
    var cancelled = false
}
