import CLibCurl
import Foundation
import Synchronization

/// HTTP over one libcurl multi handle driven by a thread of its own: every
/// request, short or streaming (watches, followed logs), is a transfer on the
/// same multi handle, so connections are reused (and multiplexed over HTTP/2
/// where the server offers it) and hundreds of requests can be in flight
/// without a thread each.
final class CurlTransport: Sendable {
    struct Request: Sendable {
        var method: String
        var url: String
        var headers: [String]
        var body: Data?
        /// The whole transfer's limit; nil for streams that last as long as
        /// their owner wants.
        var timeout: Duration?
    }

    struct Response: Sendable {
        var status: Int
        var body: Data
        /// Seconds from a Retry-After header.
        var retryAfter: Int?
    }

    /// TLS and connection settings applied to every transfer.
    struct Settings: Sendable {
        var certificateAuthority: KubeEndpoint.Material?
        var clientCertificate: KubeEndpoint.Material?
        var clientKey: KubeEndpoint.Material?
        var insecureSkipTLSVerify = false
        var connectTimeout: Duration = .seconds(10)
        var userAgent = "trellis"
    }

    private struct State: ~Copyable {
        var added: [Transfer] = []
        var removed: [Transfer] = []
        var stopping = false
    }

    nonisolated(unsafe) private let multi: UnsafeMutableRawPointer
    private let settings: Settings
    private let state = Mutex(State())
    private let stopped = Mutex<Bool>(false)

    init(settings: Settings) throws(KubeError) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        guard let multi = curl_multi_init() else { throw .transport("curl_multi_init failed") }
        self.multi = multi
        self.settings = settings
        // Keep enough idle connections for bursts of concurrent requests.
        _ = trellis_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, 256)
        let thread = Thread { [self] in self.run() }
        thread.name = "trellis-kube-curl"
        thread.start()
    }

    /// Sends a request and collects the whole answer.
    func send(_ request: Request) async -> Result<Response, KubeError> {
        await withCheckedContinuation { continuation in
            start(request, onData: nil) { continuation.resume(returning: $0) }
        }
    }

    /// Starts a streaming request: `onData` gets the body's bytes as they
    /// arrive (on the transport's thread; keep it short) while the status is
    /// 2xx; `onEnd` gets the end (an error answer's body is collected and
    /// returned there instead). Returns a handle that cancels it.
    @discardableResult
    func stream(
        _ request: Request, onData: @escaping @Sendable (Data) -> Void,
        onEnd: @escaping @Sendable (Result<Response, KubeError>) -> Void
    ) -> CurlStream {
        CurlStream(transport: self, transfer: start(request, onData: onData, completion: onEnd))
    }

    /// Stops the loop: transfers in flight end with `.cancelled`.
    func shutdown() {
        state.withLock { $0.stopping = true }
        curl_multi_wakeup(multi)
    }

    fileprivate func cancel(_ transfer: Transfer?) {
        guard let transfer else { return }
        state.withLock { $0.removed.append(transfer) }
        curl_multi_wakeup(multi)
    }

    @discardableResult
    private func start(
        _ request: Request, onData: (@Sendable (Data) -> Void)?,
        completion: @escaping @Sendable (Result<Response, KubeError>) -> Void
    ) -> Transfer? {
        guard let transfer = Transfer(request: request, settings: settings, onData: onData, completion: completion) else {
            completion(.failure(.transport("curl_easy_init failed")))
            return nil
        }
        let accepted = state.withLock { state -> Bool in
            guard !state.stopping else { return false }
            state.added.append(transfer)
            return true
        }
        guard accepted else {
            transfer.finish(.failure(.cancelled))
            return nil
        }
        curl_multi_wakeup(multi)
        return transfer
    }

    /// The loop thread: adds and removes transfers, drives them, completes
    /// the finished ones and sleeps in curl_multi_poll until there is work.
    private func run() {
        var active: [UnsafeMutableRawPointer: Transfer] = [:]
        while true {
            let (added, removed, stopping) = state.withLock { state in
                defer { state.added = []; state.removed = [] }
                return (state.added, state.removed, state.stopping)
            }
            for transfer in added {
                active[transfer.handle] = transfer
                curl_multi_add_handle(multi, transfer.handle)
            }
            for transfer in removed where active.removeValue(forKey: transfer.handle) != nil {
                curl_multi_remove_handle(multi, transfer.handle)
                transfer.finish(.failure(.cancelled))
            }
            if stopping {
                for transfer in active.values {
                    curl_multi_remove_handle(multi, transfer.handle)
                    transfer.finish(.failure(.cancelled))
                }
                curl_multi_cleanup(multi)
                return
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var left: Int32 = 0
            while let message = curl_multi_info_read(multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle,
                      let transfer = active.removeValue(forKey: handle) else { continue }
                let result = trellis_curl_msg_result(message)
                curl_multi_remove_handle(multi, handle)
                transfer.complete(result)
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }
}

/// A streaming request in flight; `cancel()` ends it (its `onEnd` gets
/// `.cancelled`).
public struct CurlStream: Sendable {
    fileprivate let transport: CurlTransport
    fileprivate let transfer: Transfer?

    public func cancel() { transport.cancel(transfer) }
}

/// One request's easy handle and what it collects. Touched by the loop
/// thread only once started.
private final class Transfer: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    let description: String
    private var headers: UnsafeMutablePointer<curl_slist>?
    private var body = Data()
    private let onData: (@Sendable (Data) -> Void)?
    private var streamingChecked = false
    private var streaming = false
    private let completion: @Sendable (Result<CurlTransport.Response, KubeError>) -> Void
    private var finished = false

    init?(
        request: CurlTransport.Request, settings: CurlTransport.Settings, onData: (@Sendable (Data) -> Void)?,
        completion: @escaping @Sendable (Result<CurlTransport.Response, KubeError>) -> Void
    ) {
        guard let handle = curl_easy_init() else { return nil }
        self.handle = handle
        self.description = "\(request.method) \(request.url)"
        self.onData = onData
        self.completion = completion

        _ = trellis_curl_easy_setopt_string(handle, CURLOPT_URL, request.url)
        _ = trellis_curl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
        _ = trellis_curl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = trellis_curl_easy_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        _ = trellis_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(settings.connectTimeout.milliseconds))
        if let timeout = request.timeout {
            _ = trellis_curl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout.milliseconds))
        }
        _ = trellis_curl_easy_setopt_string(handle, CURLOPT_USERAGENT, settings.userAgent)
        if request.method == "HEAD" { _ = trellis_curl_easy_setopt_long(handle, CURLOPT_NOBODY, 1) }
        if let body = request.body {
            _ = trellis_curl_easy_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
            body.withUnsafeBytes { bytes in
                // COPYPOSTFIELDS copies the bytes; nothing to keep alive.
                _ = trellis_curl_easy_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for header in request.headers + ["Expect:"] { list = curl_slist_append(list, header) }
        headers = list
        _ = trellis_curl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, list)

        switch settings.certificateAuthority {
        case .file(let path)?: _ = trellis_curl_easy_setopt_string(handle, CURLOPT_CAINFO, path)
        case .data(let data)?: data.withUnsafeBytes { _ = trellis_curl_easy_setopt_blob(handle, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count) }
        case nil: break
        }
        switch settings.clientCertificate {
        case .file(let path)?: _ = trellis_curl_easy_setopt_string(handle, CURLOPT_SSLCERT, path)
        case .data(let data)?: data.withUnsafeBytes { _ = trellis_curl_easy_setopt_blob(handle, CURLOPT_SSLCERT_BLOB, $0.baseAddress, $0.count) }
        case nil: break
        }
        switch settings.clientKey {
        case .file(let path)?: _ = trellis_curl_easy_setopt_string(handle, CURLOPT_SSLKEY, path)
        case .data(let data)?: data.withUnsafeBytes { _ = trellis_curl_easy_setopt_blob(handle, CURLOPT_SSLKEY_BLOB, $0.baseAddress, $0.count) }
        case nil: break
        }
        if settings.insecureSkipTLSVerify {
            _ = trellis_curl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 0)
            _ = trellis_curl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 0)
        }

        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = trellis_curl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, me)
        _ = trellis_curl_easy_setopt_callback(handle, CURLOPT_WRITEFUNCTION) { data, size, count, userdata in
            guard let userdata else { return 0 }
            let transfer = Unmanaged<Transfer>.fromOpaque(userdata).takeUnretainedValue()
            let length = size * count
            guard let data, length > 0 else { return length }
            transfer.received(Data(bytes: data, count: length))
            return length
        }
    }

    deinit {
        curl_easy_cleanup(handle)
        curl_slist_free_all(headers)
    }

    private var status: Int {
        var code = 0
        _ = trellis_curl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        return code
    }

    private func received(_ data: Data) {
        if let onData {
            if !streamingChecked {
                streamingChecked = true
                streaming = (200..<300).contains(status)
            }
            if streaming { onData(data); return }
        }
        body.append(data)
    }

    func complete(_ result: CURLcode) {
        guard result == CURLE_OK else {
            let message = String(cString: curl_easy_strerror(result))
            finish(.failure(.transport("\(description): \(message)")))
            return
        }
        var retryAfter: curl_off_t = 0
        _ = trellis_curl_easy_getinfo_off_t(handle, CURLINFO_RETRY_AFTER, &retryAfter)
        finish(.success(CurlTransport.Response(status: status, body: body, retryAfter: retryAfter > 0 ? Int(retryAfter) : nil)))
    }

    func finish(_ result: Result<CurlTransport.Response, KubeError>) {
        guard !finished else { return }
        finished = true
        completion(result)
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
