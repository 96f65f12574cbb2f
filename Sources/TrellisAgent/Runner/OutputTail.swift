import Foundation

/// The last bytes a task wrote (stdout and stderr in the order they were
/// read), kept so that a failure's message can quote the end of the output.
struct OutputTail: Sendable {
    /// Bytes kept.
    static let capacity = 2048
    /// Lines quoted at most.
    static let lines = 10

    private var bytes: [UInt8] = []

    mutating func append(_ data: Data) {
        bytes.append(contentsOf: data.suffix(Self.capacity))
        if bytes.count > Self.capacity { bytes.removeFirst(bytes.count - Self.capacity) }
    }

    /// The last lines, trailing blank lines dropped; "" when nothing was written.
    var text: String {
        var text = String(decoding: bytes, as: UTF8.self)
        while text.hasSuffix("\n") { text.removeLast() }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return lines.suffix(Self.lines).joined(separator: "\n")
    }
}
