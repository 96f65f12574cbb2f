public import Foundation
public import TrellisProto
import TrellisCore

/// Names, colours and texts of the values the API returns, one place for
/// each (tables and documents use the same words).
public enum Formatting {
    /// Airflow's name of a task state (`up_for_retry`).
    public static func name(_ state: Trellis_V1_TaskState) -> String {
        (try? TaskState(state).rawValue) ?? "unknown"
    }

    /// Airflow's name of a run state (`running`); `none` before any run.
    public static func name(_ state: Trellis_V1_DagRunState) -> String {
        switch state {
        case .unspecified: "none"
        case .queued: "queued"
        case .running: "running"
        case .success: "success"
        case .failed: "failed"
        case .UNRECOGNIZED: "unknown"
        }
    }

    /// The run state named `text` (for `--state`).
    public static func runState(named text: String) -> Trellis_V1_DagRunState? {
        switch text.lowercased() {
        case "queued": .queued
        case "running": .running
        case "success": .success
        case "failed": .failed
        default: nil
        }
    }

    public static func style(_ state: Trellis_V1_TaskState) -> Style {
        switch state {
        case .success: .good
        case .failed, .upstreamFailed: .bad
        case .running: .busy
        case .queued, .scheduled, .upForRetry: .waiting
        case .skipped, .removed, .none: .dim
        case .UNRECOGNIZED: .plain
        }
    }

    public static func style(_ state: Trellis_V1_DagRunState) -> Style {
        switch state {
        case .success: .good
        case .failed: .bad
        case .running: .busy
        case .queued: .waiting
        case .unspecified, .UNRECOGNIZED: .dim
        }
    }

    /// The instant a timestamp holds, nil when absent.
    public static func date(_ timestamp: Trellis_V1_Timestamp?) -> Date? {
        guard let timestamp else { return nil }
        return Date(timeIntervalSince1970: Double(timestamp.unixMicros) / 1_000_000)
    }

    /// ISO 8601 in UTC with seconds (`2024-05-01T12:00:00Z`).
    public static func iso(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// For tables: `2024-05-01 12:00:00` (UTC), or `-` when absent.
    public static func shortDate(_ date: Date?) -> String {
        guard let date else { return "-" }
        return iso(date).replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: "")
    }

    /// A compact duration: `850ms`, `12s`, `3m05s`, `2h01m`.
    public static func duration(_ seconds: Double) -> String {
        if seconds < 0 { return "-" }
        if seconds < 1 { return "\(Int((seconds * 1000).rounded()))ms" }
        if seconds < 60 { return seconds < 10 ? String(format: "%.1fs", seconds) : "\(Int(seconds))s" }
        let whole = Int(seconds)
        if whole < 3600 { return String(format: "%dm%02ds", whole / 60, whole % 60) }
        return String(format: "%dh%02dm", whole / 3600, (whole % 3600) / 60)
    }

    /// From `start` to `end` (or to `now` while still going), `-` without a start.
    public static func duration(from start: Date?, to end: Date?, now: Date) -> String {
        guard let start else { return "-" }
        return duration((end ?? now).timeIntervalSince(start))
    }

    /// `2024-05-01T00:00:00Z`, `2024-05-01T00:00:00+02:00` or `2024-05-01`
    /// (midnight UTC), as `--logical-date` takes it.
    public static func parseDate(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [
            [.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime], [.withFullDate],
        ] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) { return date }
        }
        return nil
    }

    /// The timestamp of a date.
    public static func timestamp(_ date: Date) -> Trellis_V1_Timestamp {
        var timestamp = Trellis_V1_Timestamp()
        timestamp.unixMicros = Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
        return timestamp
    }
}
