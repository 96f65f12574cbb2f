import NIOCore
import NIOPosix

/// One HTTP response as read off the socket.
struct RawHTTPResponse {
    var statusLine: String
    var status: Int
    var headers: [(name: String, value: String)]
    var body: String

    /// The first header of that name, compared case-insensitively.
    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// Problems the raw client reports.
struct RawHTTPError: Error, CustomStringConvertible {
    var description: String
}

/// A test's HTTP/1.1 client over one real TCP connection. It writes requests
/// as raw bytes and parses responses itself (status line, headers,
/// `Content-Length` body), so what the server really sent is what is
/// checked, keep-alive and pipelining included. A connection still open
/// after 20 s is closed, so a server that never answers fails the test
/// instead of hanging it.
struct RawHTTPConnection {
    private var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private var pending: [UInt8] = []

    /// Connects to 127.0.0.1:`port` and runs `body` with the connection,
    /// closing it afterwards.
    static func with<T>(port: Int, _ body: (inout RawHTTPConnection) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let underlying = channel.channel
        let guardRail = underlying.eventLoop.scheduleTask(in: .seconds(20)) { underlying.close(promise: nil) }
        defer { guardRail.cancel() }
        return try await channel.executeThenClose { inbound, outbound in
            var connection = RawHTTPConnection(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            return try await body(&connection)
        }
    }

    /// Writes `text` as it is (use `\r\n` line ends).
    func send(_ text: String) async throws {
        try await outbound.write(ByteBuffer(string: text))
    }

    /// Sends a simple request with `Host` and any extra header lines.
    func request(_ method: String, _ path: String, headers: [String] = []) async throws {
        let lines = ["\(method) \(path) HTTP/1.1", "Host: localhost"] + headers
        try await send(lines.joined(separator: "\r\n") + "\r\n\r\n")
    }

    /// Reads one response; `headOnly` for the answer to a HEAD request,
    /// whose `Content-Length` describes a body that is not sent.
    mutating func readResponse(headOnly: Bool = false) async throws -> RawHTTPResponse {
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        var end: Int?
        while true {
            if pending.count >= 4 {
                end = (0...(pending.count - 4)).first { pending[$0..<($0 + 4)].elementsEqual(terminator) }
            }
            if end != nil { break }
            guard try await readMore() else { throw RawHTTPError(description: "connection closed before a response head") }
        }
        let headEnd = end!
        let headText = String(decoding: pending[0..<headEnd], as: UTF8.self)
        pending.removeFirst(headEnd + 4)

        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw RawHTTPError(description: "bad status line: \(statusLine)")
        }
        let headers = lines.map { line -> (name: String, value: String) in
            let pair = line.split(separator: ":", maxSplits: 1).map(String.init)
            return (pair[0], pair.count > 1 ? pair[1].trimmingCharacters(in: " ") : "")
        }
        var response = RawHTTPResponse(statusLine: statusLine, status: status, headers: headers, body: "")
        let length = headOnly ? 0 : Int(response.header("Content-Length") ?? "0") ?? 0
        while pending.count < length {
            guard try await readMore() else { throw RawHTTPError(description: "connection closed inside a body") }
        }
        response.body = String(decoding: pending[0..<length], as: UTF8.self)
        pending.removeFirst(length)
        return response
    }

    /// Whether the server closes the connection with nothing more sent.
    mutating func serverCloses() async throws -> Bool {
        guard pending.isEmpty else { return false }
        do {
            return try await readMore() == false
        } catch {
            return true  // reset by the peer: closed as well
        }
    }

    private mutating func readMore() async throws -> Bool {
        guard let buffer = try await inbound.next() else { return false }
        pending.append(contentsOf: buffer.readableBytesView)
        return true
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
