import Foundation
import Synchronization

/// Where `TrellisLogHandler` writes its lines: standard error in the
/// process, a closure in tests. Each call receives one whole line,
/// newline included.
public struct LogLineSink: Sendable {
    private let write: @Sendable (String) -> Void

    /// A sink that hands every line to `write`.
    public init(_ write: @escaping @Sendable (String) -> Void) {
        self.write = write
    }

    /// Writes one line.
    public func callAsFunction(_ line: String) {
        write(line)
    }

    /// Standard error. Lines are written under one process-wide lock, each
    /// with a single write, so lines from different threads never interleave.
    public static let standardError = LogLineSink { line in
        standardErrorLock.withLock { _ in
            try? FileHandle.standardError.write(contentsOf: Data(line.utf8))
        }
    }

    private static let standardErrorLock = Mutex(())
}
