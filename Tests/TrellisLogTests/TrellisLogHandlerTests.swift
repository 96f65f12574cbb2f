import Foundation
import Logging
import Testing
import TrellisTestSupport

@testable import TrellisLog

/// The log handler's two formats, built directly (never through
/// `LoggingSystem.bootstrap`, which a process allows only once).
@Suite struct TrellisLogHandlerTests {
    /// 2026-11-25T19:30:00.123Z
    static let instant = Date(timeIntervalSince1970: 1_795_635_000.123)

    /// A logger whose lines land in `lines`.
    static func logger(
        _ format: LogFormat, label: String = "trellisd", level: Logger.Level = .info,
        into lines: Shared<[String]>, provider: Logger.MetadataProvider? = nil
    ) -> Logger {
        Logger(label: label) { label in
            TrellisLogHandler(
                label: label, format: format, level: level,
                sink: LogLineSink { line in lines.mutate { $0.append(line) } },
                metadataProvider: provider, clock: { instant })
        }
    }

    @Test func textLine() {
        let lines = Shared<[String]>([])
        let logger = Self.logger(.text, into: lines)
        logger.info("scheduler started", metadata: ["replica": "trellisd-0", "sweep": "1s"])
        #expect(lines.value == ["2026-11-25T19:30:00.123Z info trellisd: scheduler started replica=trellisd-0 sweep=1s\n"])
    }

    @Test func textEscapesNewlinesAndQuotesAwkwardValues() {
        let lines = Shared<[String]>([])
        var logger = Self.logger(.text, into: lines)
        logger[metadataKey: "dag"] = "etl daily"
        logger.warning("first line\nsecond line", metadata: ["path": #"C:\tmp"#, "empty": "", "eq": "a=b", "n": "\(42)"])
        #expect(lines.value == [
            #"2026-11-25T19:30:00.123Z warning trellisd: first line\nsecond line dag="etl daily" empty="" eq="a=b" n=42 path="C:\\tmp""# + "\n"
        ])
    }

    @Test func jsonLineParsesBackWithEveryField() throws {
        let lines = Shared<[String]>([])
        var logger = Self.logger(.json, label: "trellisd.scheduler", into: lines)
        logger[metadataKey: "replica"] = "trellisd-0"
        logger.error(
            "task \"extract\" failed:\n\texit 1 \\ done ✓",
            metadata: ["attempt": .stringConvertible(3), "reason": "line1\nline2 \"q\"", "msg": "shadowed", "tags": ["a", "b"]])

        let line = try #require(lines.value.first)
        #expect(lines.value.count == 1)
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().contains("\n") == false)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["ts"] as? String == "2026-11-25T19:30:00.123Z")
        #expect(object["level"] as? String == "error")
        #expect(object["logger"] as? String == "trellisd.scheduler")
        #expect(object["msg"] as? String == "task \"extract\" failed:\n\texit 1 \\ done ✓")
        #expect(object["replica"] as? String == "trellisd-0")
        #expect(object["attempt"] as? String == "3")
        #expect(object["reason"] as? String == "line1\nline2 \"q\"")
        #expect(object["metadata.msg"] as? String == "shadowed")
        #expect(object["tags"] as? String == #"["a", "b"]"#)
        #expect(object.count == 9)
    }

    @Test func jsonKeepsFieldOrderStable() {
        let lines = Shared<[String]>([])
        let logger = Self.logger(.json, into: lines)
        logger.notice("hi", metadata: ["b": "2", "a": "1"])
        #expect(lines.value == [#"{"ts":"2026-11-25T19:30:00.123Z","level":"notice","logger":"trellisd","msg":"hi","a":"1","b":"2"}"# + "\n"])
    }

    @Test func explicitMetadataBeatsProviderBeatsHandler() {
        let lines = Shared<[String]>([])
        let provider = Logger.MetadataProvider { ["source": "provider", "run": "r1"] }
        var logger = Self.logger(.text, into: lines, provider: provider)
        logger[metadataKey: "source"] = "handler"
        logger[metadataKey: "node"] = "n1"
        logger.info("m")
        logger.info("m", metadata: ["source": "call"])
        #expect(lines.value == [
            "2026-11-25T19:30:00.123Z info trellisd: m node=n1 run=r1 source=provider\n",
            "2026-11-25T19:30:00.123Z info trellisd: m node=n1 run=r1 source=call\n",
        ])
    }

    @Test func levelFiltersAndEveryConfiguredLevelMaps() {
        let lines = Shared<[String]>([])
        let logger = Self.logger(.text, level: .warning, into: lines)
        logger.info("dropped")
        logger.debug("dropped")
        logger.warning("kept")
        #expect(lines.value.count == 1)

        for level in LogLevel.allCases {
            #expect(level.loggerLevel.rawValue == level.rawValue)
            let handler = TrellisLogging.makeFactory(format: .json, level: level)("x")
            #expect(handler.logLevel == level.loggerLevel)
            #expect(handler.format == .json)
        }
    }

    @Test func concurrentLoggersWriteWholeLines() async throws {
        let lines = Shared<[String]>([])
        let logger = Self.logger(.json, into: lines)
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for index in 0..<200 { logger.info("event", metadata: ["task": "\(task)", "index": "\(index)"]) }
                }
            }
        }
        #expect(lines.value.count == 1_600)
        for line in lines.value {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(object?["msg"] as? String == "event")
        }
    }
}

/// RFC 3339 timestamps, against the Gregorian calendar.
@Suite struct LogTimestampTests {
    @Test func knownInstants() {
        #expect(LogTimestamp.rfc3339(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(LogTimestamp.rfc3339(Date(timeIntervalSince1970: -0.001)) == "1969-12-31T23:59:59.999Z")
        #expect(LogTimestamp.rfc3339(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29T00:00:00.000Z")
        #expect(LogTimestamp.rfc3339(Date(timeIntervalSince1970: 1_709_251_199.999)) == "2024-02-29T23:59:59.999Z")
        #expect(LogTimestamp.rfc3339(Date(timeIntervalSince1970: 1_795_635_000.1239)) == "2026-11-25T19:30:00.123Z")
    }

    @Test func agreesWithTheCalendarOverManyDates() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        var generator = SplitMix64(seed: 0x7E11_15)
        for _ in 0..<2_000 {
            // Whole seconds between 1900 and 2200, so only the date arithmetic is compared.
            let seconds = Int64(generator.next() % 9_467_280_000) - 2_208_988_800
            let date = Date(timeIntervalSince1970: TimeInterval(seconds))
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
            let expected = String(
                format: "%04d-%02d-%02dT%02d:%02d:%02d.000Z", parts.year!, parts.month!, parts.day!, parts.hour!, parts.minute!, parts.second!)
            #expect(LogTimestamp.rfc3339(date) == expected)
        }
    }
}

/// A small seeded generator, so a failure repeats.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
