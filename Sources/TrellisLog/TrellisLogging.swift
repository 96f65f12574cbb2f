public import Logging

/// Installs `TrellisLogHandler` as the process's swift-log backend.
public enum TrellisLogging {
    /// Makes every `Logger` created from now on write `format` lines at
    /// `level` and above to `sink` (standard error by default).
    ///
    /// swift-log allows this once per process (a second call traps), so
    /// only the binaries' entry points call it; tests build
    /// `TrellisLogHandler` directly instead.
    public static func bootstrap(
        format: LogFormat,
        level: LogLevel,
        sink: LogLineSink = .standardError
    ) {
        LoggingSystem.bootstrap(makeFactory(format: format, level: level, sink: sink))
    }

    /// The handler factory `bootstrap` installs, for callers that compose
    /// handlers (a `MultiplexLogHandler`) or test the mapping.
    public static func makeFactory(
        format: LogFormat,
        level: LogLevel,
        sink: LogLineSink = .standardError
    ) -> @Sendable (String) -> TrellisLogHandler {
        let loggerLevel = level.loggerLevel
        return { label in TrellisLogHandler(label: label, format: format, level: loggerLevel, sink: sink) }
    }
}

/// How log lines are written: text for people, one JSON object per line
/// for log collectors.
public enum LogFormat: String, Sendable, Hashable, CaseIterable {
    case text, json
}

/// The least severity written, by swift-log's names.
public enum LogLevel: String, Sendable, Hashable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

extension LogLevel {
    /// The swift-log level of the same name.
    public var loggerLevel: Logger.Level {
        switch self {
        case .trace: .trace
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }
}
