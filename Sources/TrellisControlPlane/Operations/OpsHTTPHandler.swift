import NIOCore
import NIOHTTP1

/// The per-connection NIO handler of the ops server: reads one request at
/// a time (NIO's `HTTPServerPipelineHandler`, in front of it, holds back
/// pipelined requests until the answer before them is written), asks
/// `OpsHTTPRoutes` what to answer, and writes it with `Content-Length` and
/// the right `Connection` header. HEAD gets GET's headers and no body.
final class OpsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: OpsHTTPRoutes
    private var request: HTTPRequestHead?
    /// Set when the request announced a body: it was answered with 413 and
    /// the connection is closing, so the rest of it is dropped.
    private var discarding = false
    private var isActive = true

    init(routes: OpsHTTPRoutes) {
        self.routes = routes
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        isActive = false
    }

    func channelInactive(context: ChannelHandlerContext) {
        isActive = false
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard !discarding else { return }
            if Self.announcesBody(head) {
                discarding = true
                respond(context: context, to: head, with: OpsHTTPRoutes.bodyRejected, keepAlive: false)
                return
            }
            request = head
        case .body:
            break
        case .end:
            guard !discarding, let head = request else { return }
            request = nil
            answer(context: context, head: head)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? IdleStateHandler.IdleStateEvent, event == .read {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Protocol errors were answered with 400 by NIO's error handler in
        // front of this one; anything reaching here ends the connection.
        context.close(promise: nil)
    }

    private func answer(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let keepAlive = head.isKeepAlive
        let plan = routes.plan(method: head.method.rawValue, uri: head.uri)
        switch plan {
        case .immediate(let answer):
            respond(context: context, to: head, with: answer, keepAlive: keepAlive)
        case .readiness, .metrics:
            let routes = self.routes
            let future = context.eventLoop.makeFutureWithTask { () async -> OpsHTTPRoutes.Answer in
                if case .readiness = plan { return await routes.readinessAnswer() }
                return await routes.metricsAnswer()
            }
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            future.whenSuccess { answer in
                let (handler, context) = bound.value
                guard handler.isActive else { return }
                handler.respond(context: context, to: head, with: answer, keepAlive: keepAlive)
            }
        }
    }

    private func respond(context: ChannelHandlerContext, to head: HTTPRequestHead, with answer: OpsHTTPRoutes.Answer, keepAlive: Bool) {
        var body = context.channel.allocator.buffer(capacity: answer.body.utf8.count)
        body.writeString(answer.body)

        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: answer.contentType)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        headers.add(name: "Cache-Control", value: "no-store")
        for (name, value) in answer.headers { headers.add(name: name, value: value) }
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if head.version.major == 1, head.version.minor == 0 {
            headers.add(name: "Connection", value: "keep-alive")
        }

        let status = HTTPResponseStatus(statusCode: answer.status)
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }

    /// A request with a positive `Content-Length` or any `Transfer-Encoding`.
    private static func announcesBody(_ head: HTTPRequestHead) -> Bool {
        if !head.headers[canonicalForm: "transfer-encoding"].isEmpty { return true }
        return head.headers[canonicalForm: "content-length"].contains { Int($0) != 0 }
    }
}
