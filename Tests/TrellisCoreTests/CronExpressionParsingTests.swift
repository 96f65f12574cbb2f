import Testing

@testable import TrellisCore

@Suite struct CronExpressionParsingTests {
    static func values(_ mask: UInt64) -> [Int] {
        (0..<64).filter { mask & (1 << UInt64($0)) != 0 }
    }

    @Test func fieldForms() throws {
        let cron = try CronExpression(parsing: "*/15 9-17 1,15,31 JAN-mar mon-FRI")
        #expect(Self.values(cron.minutes) == [0, 15, 30, 45])
        #expect(Self.values(cron.hours) == Array(9...17))
        #expect(Self.values(cron.daysOfMonth) == [1, 15, 31])
        #expect(Self.values(cron.months) == [1, 2, 3])
        #expect(Self.values(cron.daysOfWeek) == [1, 2, 3, 4, 5])
        #expect(!cron.dayOfMonthStar && !cron.dayOfWeekStar)
        #expect(cron.fields == ["*/15", "9-17", "1,15,31", "JAN-mar", "mon-FRI"])
    }

    @Test(arguments: [
        ("5/10 * * * *", [5, 15, 25, 35, 45, 55]),
        ("10-50/20 * * * *", [10, 30, 50]),
        ("59/15 * * * *", [59]),
        ("*/100 * * * *", [0]),
        ("0-10,50-59/3 * * * *", Array(0...10) + [50, 53, 56, 59]),
        ("7 * * * *", [7]),
    ])
    func minuteValues(text: String, expected: [Int]) throws {
        #expect(Self.values(try CronExpression(parsing: text).minutes) == expected)
    }

    @Test(arguments: [
        ("0 0 * * 7", [0]),
        ("0 0 * * 0,7", [0]),
        ("0 0 * * 5-7", [0, 5, 6]),
        ("0 0 * * sun,SAT", [0, 6]),
        ("0 0 * * 1/2", [1, 3, 5]),
        ("0 0 * * */2", [0, 2, 4, 6]),
        ("0 0 * * *", Array(0...6)),
        ("0 0 * * 0-7", Array(0...6)),
    ])
    func weekdayValues(text: String, expected: [Int]) throws {
        #expect(Self.values(try CronExpression(parsing: text).daysOfWeek) == expected)
    }

    @Test func monthNamesAndSteps() throws {
        #expect(Self.values(try CronExpression(parsing: "0 12 1 jan,Jul *").months) == [1, 7])
        #expect(Self.values(try CronExpression(parsing: "0 0 1 */3 *").months) == [1, 4, 7, 10])
        #expect(Self.values(try CronExpression(parsing: "0 0 1 NOV/1 *").months) == [11, 12])
    }

    @Test func dayFieldsStartingWithStarAreUnrestrictedForVixie() throws {
        let stepped = try CronExpression(parsing: "0 0 */2 * MON")
        #expect(stepped.dayOfMonthStar && !stepped.dayOfWeekStar)
        let both = try CronExpression(parsing: "0 0 1-31 * 0-6")
        #expect(!both.dayOfMonthStar && !both.dayOfWeekStar)
    }

    @Test(arguments: [
        ("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"), ("@quarterly", "0 0 1 */3 *"),
        ("@yearly", "0 0 1 1 *"), ("@annually", "0 0 1 1 *"), ("@DAILY", "0 0 * * *"),
    ])
    func presets(name: String, expression: String) throws {
        let preset = try CronExpression(parsing: name)
        let plain = try CronExpression(parsing: expression)
        #expect(preset.text == name)
        #expect(preset.fields == expression.split(separator: " ").map(String.init))
        #expect(preset.minutes == plain.minutes && preset.hours == plain.hours)
        #expect(preset.daysOfMonth == plain.daysOfMonth && preset.months == plain.months)
        #expect(preset.daysOfWeek == plain.daysOfWeek)
    }

    @Test func whitespaceIsTrimmedAndSeparates() throws {
        let cron = try CronExpression(parsing: "  30\t9  *   * 1-5 \n")
        #expect(cron.text == "30\t9  *   * 1-5")
        #expect(cron.description == cron.text)
        #expect(cron.fields == ["30", "9", "*", "*", "1-5"])
    }

    @Test func impossibleDatesAreRefused() throws {
        #expect(throws: CoreError.self) { try CronExpression(parsing: "0 0 30 2 *") }
        #expect(throws: CoreError.self) { try CronExpression(parsing: "0 0 31 4,6,9,11 *") }
        #expect(throws: CoreError.self) { try CronExpression(parsing: "0 0 31 2 */2") }
        // Possible: Feb 29, an OR with a weekday, or the 31st in some selected month.
        _ = try CronExpression(parsing: "0 0 29 2 *")
        _ = try CronExpression(parsing: "0 0 31 2 MON")
        _ = try CronExpression(parsing: "0 0 31 2,3 *")
    }

    @Test(arguments: [
        ("0 25 * * *", "cron \"0 25 * * *\": hour 25 is out of range 0-23"),
        ("60 * * * *", "cron \"60 * * * *\": minute 60 is out of range 0-59"),
        ("0 0 0 * *", "cron \"0 0 0 * *\": day-of-month 0 is out of range 1-31"),
        ("0 0 32 * *", "cron \"0 0 32 * *\": day-of-month 32 is out of range 1-31"),
        ("0 0 * 13 *", "cron \"0 0 * 13 *\": month 13 is out of range 1-12 (or JAN-DEC)"),
        ("0 0 * * 8", "cron \"0 0 * * 8\": day-of-week 8 is out of range 0-7 (or SUN-SAT; 0 and 7 are Sunday)"),
        ("0 0-99999999999999999999 * * *",
         "cron \"0 0-99999999999999999999 * * *\": hour 99999999999999999999 is out of range 0-23"),
        ("5-2 * * * *",
         "cron \"5-2 * * * *\": minute field \"5-2\": range 5-2 is reversed; ranges do not wrap around, so list two ranges instead"),
        ("0 0 * * FRI-SUN",
         "cron \"0 0 * * FRI-SUN\": day-of-week field \"FRI-SUN\": range FRI-SUN is reversed; ranges do not wrap around, so list two ranges instead"),
        ("*/0 * * * *", "cron \"*/0 * * * *\": minute field \"*/0\": step 0 must be at least 1"),
        ("*/x * * * *", "cron \"*/x * * * *\": minute field \"*/x\": step \"x\" is not a positive number"),
        ("*/ * * * *", "cron \"*/ * * * *\": minute field \"*/\": step \"\" is not a positive number"),
        ("*/5/2 * * * *", "cron \"*/5/2 * * * *\": minute field \"*/5/2\": \"*/5/2\" has more than one step"),
        ("1,,2 * * * *", "cron \"1,,2 * * * *\": minute field \"1,,2\" has an empty list item"),
        ("1, * * * *", "cron \"1, * * * *\": minute field \"1,\" has an empty list item"),
        ("-5 * * * *", "cron \"-5 * * * *\": minute field \"-5\" has a range or step with a missing number"),
        ("1-2-3 * * * *", "cron \"1-2-3 * * * *\": minute field \"1-2-3\": \"1-2-3\" is not a range (write a-b)"),
        ("abc * * * *", "cron \"abc * * * *\": minute field \"abc\": \"abc\" is not a number"),
        ("0 MON * * *", "cron \"0 MON * * *\": hour field \"MON\": \"MON\" is not a number"),
        ("0 0 * JANUARY *", "cron \"0 0 * JANUARY *\": month field \"JANUARY\": \"JANUARY\" is not a month (1-12 or JAN-DEC)"),
        ("0 0 * * MONDAY", "cron \"0 0 * * MONDAY\": day-of-week field \"MONDAY\": \"MONDAY\" is not a weekday (0-7 or SUN-SAT)"),
        ("0 0 L * *", "cron \"0 0 L * *\": day-of-month field \"L\" uses \"L\" (last day), which is not supported"),
        ("0 0 * * 5L", "cron \"0 0 * * 5L\": day-of-week field \"5L\" uses \"L\" (last day), which is not supported"),
        ("0 0 15W * *", "cron \"0 0 15W * *\": day-of-month field \"15W\" uses \"W\" (nearest weekday), which is not supported"),
        ("0 0 * * 5#3",
         "cron \"0 0 * * 5#3\": day-of-week field \"5#3\" uses \"#\" (nth weekday of the month), which is not supported"),
        ("0 0 ? * MON", "cron \"0 0 ? * MON\": day-of-month field \"?\" uses \"?\", which is not supported; write \"*\" instead"),
        ("* * * *",
         "cron \"* * * *\": expected 5 fields (minute hour day-of-month month day-of-week) but found 4"),
        ("0 0 0 * * *",
         "cron \"0 0 0 * * *\": expected 5 fields (minute hour day-of-month month day-of-week) but found 6; seconds and years fields are not supported"),
        ("   ", "cron expression is empty"),
        ("@fortnightly",
         "cron \"@fortnightly\": unknown preset; use one of @hourly, @daily, @midnight, @weekly, @monthly, @quarterly, @yearly, @annually, @once"),
        ("@once", "cron \"@once\": @once runs a DAG a single time and has no cron expression"),
        ("0 0 30 2 *", "cron \"0 0 30 2 *\": day-of-month 30 never occurs in month 2, so it would never run"),
    ])
    func errorsNameTheFieldAndValue(text: String, message: String) {
        #expect(throws: CoreError(.invalidCron, message)) { try CronExpression(parsing: text) }
    }
}
