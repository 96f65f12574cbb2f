import CLibCurl
import Foundation
import Testing

/// libcurl is linked, its typed setopt wrappers work, and it talks HTTP to a
/// real server on loopback.
@Suite struct LibCurlTests {
    @Test func fetchesFromLoopbackServer() async throws {
        let server = try await LoopbackHTTPServer()
        let result = try await Task.detached { try get("http://127.0.0.1:\(server.port)/api/v1/pods?limit=5", token: "abc123") }.value
        try await server.shutdown()

        #expect(result.status == 200)
        #expect(result.contentType == "application/json")
        #expect(String(decoding: result.body, as: UTF8.self) == #"{"method":"GET","uri":"/api/v1/pods?limit=5","token":"abc123"}"#)
    }

    @Test func refusedConnectionIsAnErrorCode() async throws {
        // Port 1 on loopback has no listener; libcurl must say so, not hang.
        let code = try await Task.detached { () -> CURLcode in
            let handle = try #require(curl_easy_init())
            defer { curl_easy_cleanup(handle) }
            _ = trellis_curl_easy_setopt_string(handle, CURLOPT_URL, "http://127.0.0.1:1/")
            _ = trellis_curl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, 2000)
            return curl_easy_perform(handle)
        }.value
        #expect(code == CURLE_COULDNT_CONNECT)
    }
}

private struct Fetched: Sendable {
    var status: Int
    var contentType: String?
    var body: [UInt8]
}

/// Collects a response body written by libcurl's write callback.
private final class BodyBuffer {
    var bytes: [UInt8] = []
}

/// A blocking GET through libcurl's easy interface.
private func get(_ url: String, token: String) throws -> Fetched {
    let handle = try #require(curl_easy_init())
    defer { curl_easy_cleanup(handle) }

    let headers = curl_slist_append(nil, "X-Test-Token: \(token)")
    defer { curl_slist_free_all(headers) }

    let buffer = BodyBuffer()
    let unmanaged = Unmanaged.passRetained(buffer)
    defer { unmanaged.release() }

    try check(trellis_curl_easy_setopt_string(handle, CURLOPT_URL, url))
    try check(trellis_curl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, headers))
    try check(trellis_curl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, 10_000))
    try check(trellis_curl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, unmanaged.toOpaque()))
    try check(trellis_curl_easy_setopt_callback(handle, CURLOPT_WRITEFUNCTION) { data, size, count, userdata in
        guard let data, let userdata else { return 0 }
        let buffer = Unmanaged<BodyBuffer>.fromOpaque(userdata).takeUnretainedValue()
        let length = size * count
        data.withMemoryRebound(to: UInt8.self, capacity: length) {
            buffer.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
        }
        return length
    })
    try check(curl_easy_perform(handle))

    var status = 0
    try check(trellis_curl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status))
    var contentType: UnsafeMutablePointer<CChar>?
    try check(trellis_curl_easy_getinfo_string(handle, CURLINFO_CONTENT_TYPE, &contentType))
    return Fetched(status: status, contentType: contentType.map { String(cString: $0) }, body: buffer.bytes)
}

private struct CurlError: Error, CustomStringConvertible {
    var code: CURLcode
    var description: String { "libcurl: \(String(cString: curl_easy_strerror(code)))" }
}

private func check(_ code: CURLcode) throws {
    guard code == CURLE_OK else { throw CurlError(code: code) }
}
