import Foundation
import Testing

@testable import TrellisCore

func utc(_ text: String) -> Date {
    // Test literals only; a typo should stop the test loudly.
    try! Date(text, strategy: .iso8601)
}

@Suite struct CronExpressionFireTimeTests {
    let newYork = try! ScheduleTimeZone(identifier: "America/New_York")

    /// Fire times from `start` on, chained through `next`.
    static func fires(_ text: String, in zone: ScheduleTimeZone = .utc, after start: Date, count: Int) throws -> [Date] {
        let cron = try CronExpression(parsing: text)
        var result: [Date] = []
        var cursor = start
        for _ in 0..<count {
            guard let next = cron.next(after: cursor, in: zone) else { break }
            result.append(next)
            cursor = next
        }
        return result
    }

    @Test func nextAndPreviousAreStrict() throws {
        let cron = try CronExpression(parsing: "*/15 * * * *")
        #expect(cron.next(after: utc("2024-05-01T10:07:00Z")) == utc("2024-05-01T10:15:00Z"))
        #expect(cron.previous(before: utc("2024-05-01T10:07:00Z")) == utc("2024-05-01T10:00:00Z"))
        #expect(cron.next(after: utc("2024-05-01T10:15:00Z")) == utc("2024-05-01T10:30:00Z"))
        #expect(cron.previous(before: utc("2024-05-01T10:15:00Z")) == utc("2024-05-01T10:00:00Z"))
    }

    @Test func fractionalSecondsCount() throws {
        let cron = try CronExpression(parsing: "*/15 * * * *")
        let onFire = utc("2024-05-01T10:15:00Z")
        #expect(cron.next(after: onFire.addingTimeInterval(-0.25)) == onFire)
        #expect(cron.next(after: onFire.addingTimeInterval(0.25)) == utc("2024-05-01T10:30:00Z"))
        #expect(cron.previous(before: onFire.addingTimeInterval(0.25)) == onFire)
        #expect(cron.previous(before: onFire.addingTimeInterval(-0.25)) == utc("2024-05-01T10:00:00Z"))
    }

    @Test func bothDayFieldsRestrictedMeansEither() throws {
        // 2024-01-01 is a Monday: the 1st, the 15th and every Monday.
        let days = try Self.fires("0 0 1,15 * MON", after: utc("2023-12-31T00:00:00Z"), count: 7)
        #expect(days == ["01", "08", "15", "22", "29"].map { utc("2024-01-\($0)T00:00:00Z") }
            + [utc("2024-02-01T00:00:00Z"), utc("2024-02-05T00:00:00Z")])
    }

    @Test func aDayFieldStartingWithStarMeansBoth() throws {
        // Vixie: "*/2" does not restrict on its own, so only Mondays on odd days.
        let days = try Self.fires("0 0 */2 * MON", after: utc("2023-12-31T00:00:00Z"), count: 4)
        #expect(days == ["2024-01-01", "2024-01-15", "2024-01-29", "2024-02-05"].map { utc("\($0)T00:00:00Z") })
        let weekdaysStar = try Self.fires("0 0 13 * */1", after: utc("2024-01-01T00:00:00Z"), count: 2)
        #expect(weekdaysStar == [utc("2024-01-13T00:00:00Z"), utc("2024-02-13T00:00:00Z")])
    }

    @Test func rareDatesAreFoundWithoutWalking() throws {
        let leap = try CronExpression(parsing: "0 0 29 2 *")
        #expect(leap.next(after: utc("2021-01-01T00:00:00Z")) == utc("2024-02-29T00:00:00Z"))
        #expect(leap.next(after: utc("2096-03-01T00:00:00Z")) == utc("2104-02-29T00:00:00Z"))
        #expect(leap.previous(before: utc("2104-01-01T00:00:00Z")) == utc("2096-02-29T00:00:00Z"))
        #expect(leap.next(after: utc("2021-01-01T00:00:00Z"), in: newYork) == utc("2024-02-29T05:00:00Z"))
        // Feb 29 on a Sunday: 2088, then 2128 (2100 is no leap year).
        let sunday = try CronExpression(parsing: "0 0 29 2 */7")
        #expect(sunday.next(after: utc("2088-03-01T00:00:00Z")) == utc("2128-02-29T00:00:00Z"))
        #expect(sunday.previous(before: utc("2128-02-29T00:00:00Z")) == utc("2088-02-29T00:00:00Z"))
    }

    @Test func datesOutsideTheCalendarHaveNoFireTimes() throws {
        let cron = try CronExpression(parsing: "0 0 1 1 *")
        #expect(cron.next(after: Date(timeIntervalSince1970: 1e15)) == nil)
        #expect(cron.previous(before: Date(timeIntervalSince1970: -1e15)) == nil)
        #expect(cron.next(after: Date(timeIntervalSince1970: .nan)) == nil)
        #expect(cron.next(after: utc("9999-06-01T00:00:00Z")) == nil)
        let firstOfYearOne = Date(timeIntervalSince1970: -62_135_596_800)  // 0001-01-01, proleptic Gregorian
        #expect(cron.previous(before: firstOfYearOne.addingTimeInterval(86_400 * 100)) == firstOfYearOne)
        #expect(cron.previous(before: firstOfYearOne) == nil)
    }

    @Test func springForwardMovesGapFiresToTheTransition() throws {
        // New York, 2024-03-10: 02:00 EST jumps to 03:00 EDT at 07:00Z.
        #expect(try Self.fires("30 2 * * *", in: newYork, after: utc("2024-03-09T12:00:00Z"), count: 2)
            == [utc("2024-03-10T07:00:00Z"), utc("2024-03-11T06:30:00Z")])
        // Two gap fires and the transition's own match collapse into one.
        #expect(try Self.fires("0,30 2,3 * * *", in: newYork, after: utc("2024-03-10T06:00:00Z"), count: 3)
            == [utc("2024-03-10T07:00:00Z"), utc("2024-03-10T07:30:00Z"), utc("2024-03-11T06:00:00Z")])
        let cron = try CronExpression(parsing: "30 2 * * *")
        #expect(cron.previous(before: utc("2024-03-10T09:00:00Z"), in: newYork) == utc("2024-03-10T07:00:00Z"))
        #expect(cron.previous(before: utc("2024-03-10T07:00:00Z"), in: newYork) == utc("2024-03-09T07:30:00Z"))
    }

    @Test func springForwardSkipsGapFiresWhenEveryHourMatches() throws {
        #expect(try Self.fires("30 * * * *", in: newYork, after: utc("2024-03-10T06:00:00Z"), count: 2)
            == [utc("2024-03-10T06:30:00Z"), utc("2024-03-10T07:30:00Z")])
        let cron = try CronExpression(parsing: "30 0-23 * * *")
        #expect(cron.previous(before: utc("2024-03-10T07:29:00Z"), in: newYork) == utc("2024-03-10T06:30:00Z"))
    }

    @Test func fallBackFiresTwice() throws {
        // New York, 2024-11-03: 02:00 EDT falls back to 01:00 EST at 06:00Z.
        #expect(try Self.fires("30 1 * * *", in: newYork, after: utc("2024-11-03T00:00:00Z"), count: 3)
            == [utc("2024-11-03T05:30:00Z"), utc("2024-11-03T06:30:00Z"), utc("2024-11-04T06:30:00Z")])
        let cron = try CronExpression(parsing: "30 1 * * *")
        #expect(cron.previous(before: utc("2024-11-03T06:20:00Z"), in: newYork) == utc("2024-11-03T05:30:00Z"))
        #expect(cron.previous(before: utc("2024-11-04T00:00:00Z"), in: newYork) == utc("2024-11-03T06:30:00Z"))
    }

    @Test func manyCallsStayConsistent() throws {
        // 10,000 consecutive fire times forwards, then the same ones backwards.
        let zone = try ScheduleTimeZone(identifier: "Australia/Lord_Howe")
        for text in ["*/15 * * * *", "0 9 * * MON-FRI", "30 2 * * *", "0 0 1,15 * 0"] {
            let cron = try CronExpression(parsing: text)
            var forward: [Date] = []
            var cursor = utc("2021-01-01T00:00:00Z")
            for _ in 0..<10_000 {
                cursor = try #require(cron.next(after: cursor, in: zone))
                forward.append(cursor)
            }
            var backward: [Date] = [forward[forward.count - 1]]
            for _ in 1..<forward.count {
                backward.append(try #require(cron.previous(before: backward[backward.count - 1], in: zone)))
            }
            #expect(Array(backward.reversed()) == forward, "\(text)")
        }
    }

    // MARK: Brute force around offset changes

    /// Offset changes from many kinds of zone: ordinary DST, a 30-minute
    /// shift, midnight transitions, a whole skipped day (Samoa, 2011) and a
    /// change of standard time (Moscow, 2014).
    static let transitions: [(zone: String, from: String)] = [
        ("America/New_York", "2024-03-09T12:00:00Z"), ("America/New_York", "2024-11-02T12:00:00Z"),
        ("Europe/Berlin", "2025-03-29T12:00:00Z"), ("Europe/Berlin", "2025-10-25T12:00:00Z"),
        ("Australia/Lord_Howe", "2024-10-05T00:00:00Z"), ("Australia/Lord_Howe", "2025-04-05T00:00:00Z"),
        ("America/Havana", "2024-03-09T12:00:00Z"), ("America/Havana", "2024-11-02T12:00:00Z"),
        ("America/Santiago", "2024-09-07T12:00:00Z"), ("America/Santiago", "2024-04-06T12:00:00Z"),
        ("Pacific/Apia", "2011-12-29T00:00:00Z"), ("Europe/Moscow", "2014-10-25T12:00:00Z"),
        ("Pacific/Chatham", "2024-09-28T00:00:00Z"),
    ]

    static let bruteForceExpressions = [
        "30 2 * * *", "0 * * * *", "*/20 * * * *", "0,30 0-3 * * *", "45 1 * * *", "0 0 * * *",
        "30 12 * * *", "15 2,3 * * *", "0 1 * * SUN", "0 0 30 12 *", "5 23 * * *",
    ]

    /// An independent model of the fire times in `[from, from + 48 h]`: walk
    /// every UTC minute, decompose it with `Calendar`, and at each offset
    /// increase also try the gap's nonexistent wall times.
    static func bruteForceFires(_ cron: CronExpression, zone: TimeZone, from: Date) -> [Date] {
        var local = Calendar(identifier: .gregorian)
        local.timeZone = zone
        var wall = Calendar(identifier: .gregorian)
        wall.timeZone = TimeZone(secondsFromGMT: 0)!

        func matches(_ c: DateComponents) -> Bool {
            let weekday = c.weekday! - 1
            let dom = cron.daysOfMonth & (1 << UInt64(c.day!)) != 0
            let dow = cron.daysOfWeek & (1 << UInt64(weekday)) != 0
            let day = cron.dayOfMonthStar || cron.dayOfWeekStar ? dom && dow : dom || dow
            return cron.minutes & (1 << UInt64(c.minute!)) != 0 && cron.hours & (1 << UInt64(c.hour!)) != 0
                && cron.months & (1 << UInt64(c.month!)) != 0 && day
        }
        let units: Set<Calendar.Component> = [.minute, .hour, .day, .month, .weekday]
        var fires: [Date] = []
        for minute in 0...(48 * 60) {
            let instant = from.addingTimeInterval(TimeInterval(minute * 60))
            if matches(local.dateComponents(units, from: instant)) {
                fires.append(instant)
                continue
            }
            let before = zone.secondsFromGMT(for: instant.addingTimeInterval(-60))
            let after = zone.secondsFromGMT(for: instant)
            guard after > before, cron.hours != CronExpression.allHours else { continue }
            // Nonexistent wall times [instant + before, instant + after).
            var gapWall = instant.addingTimeInterval(TimeInterval(before))
            while gapWall < instant.addingTimeInterval(TimeInterval(after)) {
                if matches(wall.dateComponents(units, from: gapWall)) {
                    fires.append(instant)
                    break
                }
                gapWall.addTimeInterval(60)
            }
        }
        return fires
    }

    @Test(arguments: transitions.indices)
    func matchesBruteForceAroundOffsetChanges(index: Int) throws {
        let (zoneName, fromText) = Self.transitions[index]
        let zone = try ScheduleTimeZone(identifier: zoneName)
        let from = utc(fromText)
        let to = from.addingTimeInterval(48 * 3600)
        for text in Self.bruteForceExpressions {
            let cron = try CronExpression(parsing: text)
            let expected = Self.bruteForceFires(cron, zone: zone.timeZone, from: from)
            var forward: [Date] = []
            var cursor = from.addingTimeInterval(-1)
            while let next = cron.next(after: cursor, in: zone), next <= to {
                forward.append(next)
                cursor = next
            }
            var backward: [Date] = []
            cursor = to.addingTimeInterval(1)
            while let previous = cron.previous(before: cursor, in: zone), previous >= from {
                backward.insert(previous, at: 0)
                cursor = previous
            }
            #expect(forward == expected, "next: \(text) in \(zoneName) from \(fromText)")
            #expect(backward == expected, "previous: \(text) in \(zoneName) from \(fromText)")
        }
    }
}
