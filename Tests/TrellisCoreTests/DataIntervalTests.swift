import Foundation
import Testing

@testable import TrellisCore

/// `Timetable`: which data intervals are due, with Airflow 2's rules.
@Suite struct DataIntervalTests {
    static func timetable(
        _ schedule: String?, zone: String = "UTC", start: String, end: String? = nil, catchup: Bool
    ) throws -> Timetable {
        Timetable(
            schedule: try Schedule(parsing: schedule), timeZone: try ScheduleTimeZone(identifier: zone),
            startDate: utc(start), endDate: end.map(utc), catchup: catchup)
    }

    static func interval(_ start: String, _ end: String) -> DataInterval {
        DataInterval(start: utc(start), end: utc(end))
    }

    static func days(_ dates: [String]) -> [DataInterval] {
        zip(dates, dates.dropFirst()).map { interval("\($0)T00:00:00Z", "\($1)T00:00:00Z") }
    }

    // MARK: catchup

    @Test func catchupCreatesEveryMissedIntervalInOrder() throws {
        let table = try Self.timetable("@daily", start: "2024-01-01T00:00:00Z", catchup: true)
        let now = utc("2024-01-04T12:00:00Z")
        #expect(table.dueRuns(lastDataIntervalEnd: nil, now: now, limit: 100)
            == Self.days(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]))
        #expect(table.dueRuns(lastDataIntervalEnd: utc("2024-01-03T00:00:00Z"), now: now, limit: 100)
            == Self.days(["2024-01-03", "2024-01-04"]))
        #expect(table.nextRun(lastDataIntervalEnd: nil, now: now)
            == Self.interval("2024-01-04T00:00:00Z", "2024-01-05T00:00:00Z"))
        let first = try #require(table.dueRuns(lastDataIntervalEnd: nil, now: now, limit: 1).first)
        #expect(first.logicalDate == utc("2024-01-01T00:00:00Z"))
        #expect(first.runAfter == utc("2024-01-02T00:00:00Z"))
    }

    @Test func limitTakesTheOldestFirst() throws {
        let table = try Self.timetable("@hourly", start: "2024-01-01T00:00:00Z", catchup: true)
        let now = utc("2024-01-05T00:30:00Z")
        let five = table.dueRuns(lastDataIntervalEnd: nil, now: now, limit: 5)
        #expect(five.map(\.start) == (0..<5).map { utc("2024-01-01T0\($0):00:00Z") })
        let all = table.dueRuns(lastDataIntervalEnd: nil, now: now, limit: 1000)
        #expect(all.count == 96)
        #expect(all.last == Self.interval("2024-01-04T23:00:00Z", "2024-01-05T00:00:00Z"))
        #expect(table.dueRuns(lastDataIntervalEnd: nil, now: now, limit: 0).isEmpty)
        // The next run does not depend on how many due runs were returned.
        #expect(table.nextRun(lastDataIntervalEnd: nil, now: now)
            == Self.interval("2024-01-05T00:00:00Z", "2024-01-05T01:00:00Z"))
    }

    @Test func aRunIsDueExactlyAtItsEnd() throws {
        let table = try Self.timetable("@daily", start: "2024-01-01T00:00:00Z", catchup: true)
        #expect(table.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-01-01T23:59:59Z"), limit: 10).isEmpty)
        #expect(table.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-01-02T00:00:00Z"), limit: 10)
            == Self.days(["2024-01-01", "2024-01-02"]))
    }

    // MARK: no catchup

    @Test func withoutCatchupOnlyTheLatestCompleteIntervalIsDue() throws {
        let table = try Self.timetable("@daily", start: "2024-01-01T00:00:00Z", catchup: false)
        let now = utc("2024-01-10T12:00:00Z")
        let latest = Self.interval("2024-01-09T00:00:00Z", "2024-01-10T00:00:00Z")
        let following = Self.interval("2024-01-10T00:00:00Z", "2024-01-11T00:00:00Z")
        #expect(table.dueRuns(lastDataIntervalEnd: nil, now: now, limit: 100) == [latest])
        #expect(table.dueRuns(lastDataIntervalEnd: utc("2024-01-03T00:00:00Z"), now: now, limit: 100) == [latest])
        #expect(table.dueRuns(lastDataIntervalEnd: utc("2024-01-10T00:00:00Z"), now: now, limit: 100).isEmpty)
        #expect(table.nextRun(lastDataIntervalEnd: nil, now: now) == following)
        #expect(table.nextRun(lastDataIntervalEnd: utc("2024-01-10T00:00:00Z"), now: now) == following)
        // On a boundary, the interval that ends now is the latest complete one.
        #expect(table.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-01-10T00:00:00Z"), limit: 100) == [latest])
    }

    @Test func withoutCatchupAFutureStartDateWaits() throws {
        let table = try Self.timetable("@daily", start: "2024-02-01T00:00:00Z", catchup: false)
        let now = utc("2024-01-10T12:00:00Z")
        #expect(table.dueRuns(lastDataIntervalEnd: nil, now: now, limit: 100).isEmpty)
        #expect(table.nextRun(lastDataIntervalEnd: nil, now: now)
            == Self.interval("2024-02-01T00:00:00Z", "2024-02-02T00:00:00Z"))
    }

    // MARK: start and end dates

    @Test func anUnalignedStartDateBeginsAtTheNextFireTime() throws {
        for catchup in [true, false] {
            let daily = try Self.timetable("@daily", start: "2024-01-01T10:30:00Z", catchup: catchup)
            #expect(daily.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-01-02T12:00:00Z"), limit: 10).isEmpty)
            #expect(daily.nextRun(lastDataIntervalEnd: nil, now: utc("2024-01-02T12:00:00Z"))
                == Self.interval("2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"))
            #expect(daily.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-01-03T00:00:00Z"), limit: 10)
                == [Self.interval("2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z")])
        }
        let hourly = try Self.timetable("@hourly", start: "2024-01-01T10:30:00Z", catchup: true)
        #expect(hourly.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-01-01T13:00:00Z"), limit: 10)
            == [Self.interval("2024-01-01T11:00:00Z", "2024-01-01T12:00:00Z"),
                Self.interval("2024-01-01T12:00:00Z", "2024-01-01T13:00:00Z")])
    }

    @Test func noIntervalStartsAfterTheEndDate() throws {
        let now = utc("2024-01-10T00:00:00Z")
        // An interval starting exactly at the end date still runs, in full.
        let onBoundary = try Self.timetable(
            "@daily", start: "2024-01-01T00:00:00Z", end: "2024-01-03T00:00:00Z", catchup: true)
        #expect(onBoundary.dueRuns(lastDataIntervalEnd: nil, now: now, limit: 100)
            == Self.days(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]))
        #expect(onBoundary.nextRun(lastDataIntervalEnd: utc("2024-01-04T00:00:00Z"), now: now) == nil)
        let midday = try Self.timetable(
            "@daily", start: "2024-01-01T00:00:00Z", end: "2024-01-02T12:00:00Z", catchup: true)
        #expect(midday.dueRuns(lastDataIntervalEnd: nil, now: now, limit: 100)
            == Self.days(["2024-01-01", "2024-01-02", "2024-01-03"]))
        // Without catchup the latest complete interval starts after the end: nothing.
        let past = try Self.timetable(
            "@daily", start: "2024-01-01T00:00:00Z", end: "2024-01-03T00:00:00Z", catchup: false)
        #expect(past.dueRuns(lastDataIntervalEnd: nil, now: now, limit: 100).isEmpty)
        #expect(past.nextRun(lastDataIntervalEnd: nil, now: now) == nil)
    }

    @Test func nextRunStopsAtTheEndDate() throws {
        let table = try Self.timetable(
            "@daily", start: "2024-01-01T00:00:00Z", end: "2024-01-05T00:00:00Z", catchup: true)
        let now = utc("2024-01-04T12:00:00Z")
        #expect(table.nextRun(lastDataIntervalEnd: utc("2024-01-04T00:00:00Z"), now: now)
            == Self.interval("2024-01-04T00:00:00Z", "2024-01-05T00:00:00Z"))
        #expect(table.nextRun(lastDataIntervalEnd: utc("2024-01-05T00:00:00Z"), now: now)
            == Self.interval("2024-01-05T00:00:00Z", "2024-01-06T00:00:00Z"))
        #expect(table.nextRun(lastDataIntervalEnd: utc("2024-01-06T00:00:00Z"), now: now) == nil)
        // Everything due up to now, and the next one would start after the end.
        #expect(table.nextRun(lastDataIntervalEnd: nil, now: utc("2024-01-09T00:00:00Z")) == nil)
    }

    @Test func aChangedScheduleRealignsToThePreviousFireTime() throws {
        // The newest run came from "0 6 * * *"; the DAG is now @daily.
        let table = try Self.timetable("@daily", start: "2024-01-01T00:00:00Z", catchup: true)
        let due = table.dueRuns(lastDataIntervalEnd: utc("2024-01-05T06:00:00Z"), now: utc("2024-01-07T01:00:00Z"), limit: 10)
        #expect(due == Self.days(["2024-01-05", "2024-01-06", "2024-01-07"]))
    }

    // MARK: @once and manual

    @Test func onceRunsAtTheStartDate() throws {
        for catchup in [true, false] {
            let table = try Self.timetable("@once", start: "2024-01-05T10:17:00Z", catchup: catchup)
            let run = Self.interval("2024-01-05T10:17:00Z", "2024-01-05T10:17:00Z")
            #expect(table.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-01-05T10:16:59Z"), limit: 10).isEmpty)
            #expect(table.nextRun(lastDataIntervalEnd: nil, now: utc("2024-01-04T00:00:00Z")) == run)
            #expect(table.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-01-05T10:17:00Z"), limit: 10) == [run])
            #expect(table.dueRuns(lastDataIntervalEnd: nil, now: utc("2030-01-01T00:00:00Z"), limit: 10) == [run])
            #expect(table.nextRun(lastDataIntervalEnd: nil, now: utc("2024-01-06T00:00:00Z")) == nil)
            #expect(table.dueRuns(lastDataIntervalEnd: run.end, now: utc("2024-01-06T00:00:00Z"), limit: 10).isEmpty)
            #expect(table.nextRun(lastDataIntervalEnd: run.end, now: utc("2024-01-04T00:00:00Z")) == nil)
        }
        let ended = try Self.timetable(
            "@once", start: "2024-01-05T00:00:00Z", end: "2024-01-04T00:00:00Z", catchup: true)
        #expect(ended.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-01-06T00:00:00Z"), limit: 10).isEmpty)
        #expect(ended.nextRun(lastDataIntervalEnd: nil, now: utc("2024-01-01T00:00:00Z")) == nil)
    }

    @Test func manualSchedulesNeverRun() throws {
        let table = try Self.timetable(nil, start: "2024-01-01T00:00:00Z", catchup: true)
        #expect(table.dueRuns(lastDataIntervalEnd: nil, now: utc("2030-01-01T00:00:00Z"), limit: 10).isEmpty)
        #expect(table.nextRun(lastDataIntervalEnd: nil, now: utc("2024-01-01T00:00:00Z")) == nil)
        #expect(table.nextInterval(lastDataIntervalEnd: nil, now: utc("2024-01-01T00:00:00Z")) == nil)
    }

    // MARK: DST

    @Test func dailyIntervalsAreShortAndLongOnDSTDays() throws {
        let table = try Self.timetable(
            "0 0 * * *", zone: "America/New_York", start: "2024-03-09T12:00:00Z", catchup: true)
        #expect(table.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-03-12T12:00:00Z"), limit: 10) == [
            Self.interval("2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z"),  // 23 hours
            Self.interval("2024-03-11T04:00:00Z", "2024-03-12T04:00:00Z"),
        ])
        let fall = try Self.timetable(
            "@daily", zone: "America/New_York", start: "2024-11-03T00:00:00Z", catchup: true)
        #expect(fall.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-11-05T06:00:00Z"), limit: 10) == [
            Self.interval("2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z"),  // 25 hours
            Self.interval("2024-11-04T05:00:00Z", "2024-11-05T05:00:00Z"),
        ])
    }

    @Test func gapAndOverlapFireTimesBoundIntervals() throws {
        let spring = try Self.timetable(
            "30 2 * * *", zone: "America/New_York", start: "2024-03-09T07:30:00Z", catchup: true)
        #expect(spring.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-03-11T12:00:00Z"), limit: 10) == [
            Self.interval("2024-03-09T07:30:00Z", "2024-03-10T07:00:00Z"),  // 02:30 moved to 03:00 EDT
            Self.interval("2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"),
        ])
        let fall = try Self.timetable(
            "30 1 * * *", zone: "America/New_York", start: "2024-11-02T05:30:00Z", catchup: true)
        #expect(fall.dueRuns(lastDataIntervalEnd: nil, now: utc("2024-11-04T12:00:00Z"), limit: 10) == [
            Self.interval("2024-11-02T05:30:00Z", "2024-11-03T05:30:00Z"),
            Self.interval("2024-11-03T05:30:00Z", "2024-11-03T06:30:00Z"),  // 01:30 EDT to 01:30 EST
            Self.interval("2024-11-03T06:30:00Z", "2024-11-04T06:30:00Z"),
        ])
    }

    /// A control plane that creates the due runs and sleeps until the next
    /// one gets a gap-free chain of intervals, with or without catchup.
    @Test(arguments: [true, false])
    func sleepingUntilTheNextRunChainsEveryInterval(catchup: Bool) throws {
        let table = try Self.timetable(
            "*/30 0-3 * * *", zone: "America/New_York", start: "2024-11-02T00:00:00Z", catchup: catchup)
        guard case .cron(let cron) = table.schedule else { return }
        var now = utc("2024-11-02T00:00:00Z")
        var last: Date?
        var created: [DataInterval] = []
        while now < utc("2025-03-12T00:00:00Z") {
            let due = table.dueRuns(lastDataIntervalEnd: last, now: now, limit: 100)
            created += due
            last = due.last?.end ?? last
            let next = try #require(table.nextRun(lastDataIntervalEnd: last, now: now))
            #expect(next.runAfter > now)
            now = next.runAfter
        }
        #expect(created.count > 1000)
        for (earlier, later) in zip(created, created.dropFirst()) where earlier.end != later.start {
            Issue.record("gap or overlap between \(earlier) and \(later)")
        }
        for interval in created where cron.next(after: interval.start, in: table.timeZone) != interval.end {
            Issue.record("\(interval) does not end at the next fire time")
        }
    }

    @Test func descriptionShowsTheHalfOpenInterval() {
        #expect(Self.interval("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z").description
            == "[2024-01-01T00:00:00Z, 2024-01-02T00:00:00Z)")
    }
}
