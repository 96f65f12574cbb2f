import Foundation
import Testing

@testable import TrellisCore

@Suite struct ScheduleTests {
    @Test func absentScheduleIsManual() throws {
        #expect(try Schedule(parsing: nil) == .manual)
        #expect(Schedule.manual.text == nil)
        #expect(Schedule.manual.description == "manual")
    }

    @Test func onceIsNotACronExpression() throws {
        #expect(try Schedule(parsing: "@once") == .once)
        #expect(try Schedule(parsing: " @ONCE ") == .once)
        #expect(Schedule.once.text == "@once")
    }

    @Test func presetsKeepTheirName() throws {
        let schedule = try Schedule(parsing: "@daily")
        guard case .cron(let cron) = schedule else {
            Issue.record("expected a cron schedule, got \(schedule)")
            return
        }
        #expect(cron.fields == ["0", "0", "*", "*", "*"])
        #expect(schedule.text == "@daily")
        #expect(schedule.description == "@daily")
        #expect(try Schedule(parsing: "0 9 * * MON-FRI").text == "0 9 * * MON-FRI")
    }

    @Test func emptyOrInvalidSchedulesAreErrors() {
        #expect(throws: CoreError(.invalidCron, "schedule is empty; leave it out (or set it to null) for manual runs only")) {
            try Schedule(parsing: "  ")
        }
        #expect(throws: CoreError(.invalidCron, "cron \"0 25 * * *\": hour 25 is out of range 0-23")) {
            try Schedule(parsing: "0 25 * * *")
        }
        #expect(throws: CoreError.self) { try Schedule(parsing: "@continuous") }
    }
}

@Suite struct ScheduleTimeZoneTests {
    @Test func defaultIsUTC() throws {
        #expect(try ScheduleTimeZone(parsing: nil) == .utc)
        #expect(try ScheduleTimeZone(identifier: "UTC") == .utc)
        #expect(ScheduleTimeZone.utc.timeZone.secondsFromGMT() == 0)
        #expect(ScheduleTimeZone.utc.description == "UTC")
    }

    @Test(arguments: ["Europe/Berlin", "America/New_York", "Etc/UTC", "Etc/GMT+5", "Australia/Lord_Howe", "US/Eastern"])
    func ianaNamesResolve(name: String) throws {
        let zone = try ScheduleTimeZone(identifier: name)
        #expect(zone.identifier == name)
        #expect(zone.timeZone.identifier == name)
    }

    @Test func offsetsAndTransitions() throws {
        let zone = try ScheduleTimeZone(identifier: "America/New_York")
        let spring = Int(utc("2024-03-10T07:00:00Z").timeIntervalSince1970)
        #expect(zone.offset(at: spring - 1) == -5 * 3600)
        #expect(zone.offset(at: spring) == -4 * 3600)
        #expect(zone.nextTransition(after: spring - 3600) == spring)
        #expect(zone.nextTransition(after: spring) == Int(utc("2024-11-03T06:00:00Z").timeIntervalSince1970))
        #expect(ScheduleTimeZone.utc.nextTransition(after: spring) == nil)
    }

    @Test(arguments: [
        ("Mars/Olympus", "time zone \"Mars/Olympus\" is not a known IANA time zone (use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\")"),
        ("europe/berlin", "time zone \"europe/berlin\" is not a known IANA time zone (use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\")"),
        ("GMT+5", "time zone \"GMT+5\" is not a known IANA time zone (use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\")"),
        ("", "time zone \"\" is not a known IANA time zone (use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\")"),
        ("Europe/Berlin ", "time zone \"Europe/Berlin \" is not a known IANA time zone (remove the surrounding spaces)"),
    ])
    func unknownZonesAreNamed(name: String, message: String) {
        #expect(throws: CoreError(.invalidTimeZone, message)) { try ScheduleTimeZone(identifier: name) }
    }
}
