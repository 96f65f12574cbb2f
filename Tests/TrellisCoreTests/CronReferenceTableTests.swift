import Foundation
import Testing

@testable import TrellisCore

/// Checks `next` and `previous` against every row of
/// Resources/cron_reference.tsv (croniter 7.0.0's values, see
/// cron_reference.md beside it).
@Suite struct CronReferenceTableTests {
    struct Row {
        var line: Int
        var expression: String
        var zone: String
        var instant: Date
        var next: Date
        var previous: Date
    }

    static func loadRows() throws -> [Row] {
        let text = try TestResources.read("cron_reference.tsv")
        var rows: [Row] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix("expression\t") { continue }
            let columns = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            try #require(columns.count == 5, "line \(index + 1) has \(columns.count) columns")
            rows.append(
                Row(
                    line: index + 1, expression: columns[0], zone: columns[1],
                    instant: try Date(columns[2], strategy: .iso8601),
                    next: try Date(columns[3], strategy: .iso8601),
                    previous: try Date(columns[4], strategy: .iso8601)))
        }
        return rows
    }

    @Test func everyRowMatchesCroniter() throws {
        let rows = try Self.loadRows()
        #expect(rows.count >= 260)
        let format = Date.ISO8601FormatStyle()
        var mismatches: [String] = []
        for row in rows {
            let cron = try CronExpression(parsing: row.expression)
            let zone = try ScheduleTimeZone(identifier: row.zone)
            let next = cron.next(after: row.instant, in: zone)
            let previous = cron.previous(before: row.instant, in: zone)
            if next != row.next {
                mismatches.append(
                    "line \(row.line): \(row.expression) in \(row.zone) after \(row.instant.formatted(format)):"
                        + " next \(next?.formatted(format) ?? "nil"), expected \(row.next.formatted(format))")
            }
            if previous != row.previous {
                mismatches.append(
                    "line \(row.line): \(row.expression) in \(row.zone) before \(row.instant.formatted(format)):"
                        + " previous \(previous?.formatted(format) ?? "nil"), expected \(row.previous.formatted(format))")
            }
        }
        if !mismatches.isEmpty {
            Issue.record("\(mismatches.count) mismatches:\n\(mismatches.joined(separator: "\n"))")
        }
    }
}
