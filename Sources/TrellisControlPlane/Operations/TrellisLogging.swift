public import Logging

/// Installs `TrellisLogHandler` as the process's swift-log backend.
public enum TrellisLogging {
    /// Makes every `Logger` created from now on write `format` lines at
    /// `level` and above to `sink` (standard error by default).
    ///
    /// swift-log allows this once per process (a second call traps), so
    /// only `trellisd`'s entry point calls it; tests build
    /// `TrellisLogHandler` directly instead.
    public static func bootstrap(
        format: ControlPlaneConfiguration.LogFormat,
        level: ControlPlaneConfiguration.LogLevel,
        sink: LogLineSink = .standardError
    ) {
        LoggingSystem.bootstrap(makeFactory(format: format, level: level, sink: sink))
    }

    /// The handler factory `bootstrap` installs, for callers that compose
    /// handlers (a `MultiplexLogHandler`) or test the mapping.
    public static func makeFactory(
        format: ControlPlaneConfiguration.LogFormat,
        level: ControlPlaneConfiguration.LogLevel,
        sink: LogLineSink = .standardError
    ) -> @Sendable (String) -> TrellisLogHandler {
        let loggerLevel = level.loggerLevel
        return { label in TrellisLogHandler(label: label, format: format, level: loggerLevel, sink: sink) }
    }
}

extension ControlPlaneConfiguration.LogLevel {
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
