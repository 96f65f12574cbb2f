// Finding fire times: first on the wall clock (field by field, skipping whole
// months, days and hours that cannot match), then mapping wall times to
// instants one stretch of constant UTC offset at a time.

extension CronExpression {
    /// How far `next` and `previous` look before giving up: 400 years, one full
    /// cycle of the Gregorian calendar. Every date that can match recurs in it.
    static let horizon = 146_097 * WallClock.secondsPerDay

    /// Nonexistent wall times in a spring-forward gap move to the transition
    /// instant, except when the hour field covers all 24 hours: then they are
    /// skipped (croniter's rule).
    var shiftsGapFires: Bool { hours != Self.allHours }

    // MARK: Instants

    /// The first fire instant `> instant`, in whole seconds since 1970.
    func firstFire(after instant: Int, in zone: ScheduleTimeZone) -> Int? {
        let limit = min(instant + Self.horizon, Self.supportedSeconds.upperBound)
        var segmentStart = instant + 1  // earliest allowed instant
        var offset = zone.offset(at: segmentStart)
        // If an offset change happens exactly at `segmentStart`, the gap's
        // nonexistent wall times map to it too.
        var lowWall = segmentStart + lowestWallOffset(before: zone.offset(at: segmentStart - 1), after: offset)
        while segmentStart <= limit {
            let end = zone.nextTransition(after: segmentStart)
            let lastInstant = min((end ?? Int.max) - 1, limit)
            if let wall = firstWallMatch(from: lowWall, through: lastInstant + offset) {
                // A wall time from the gap maps before the segment: clamp it to
                // the transition instant.
                return max(wall - offset, segmentStart)
            }
            guard let end else { return nil }
            let newOffset = zone.offset(at: end)
            lowWall = end + lowestWallOffset(before: offset, after: newOffset)
            offset = newOffset
            segmentStart = end
        }
        return nil
    }

    /// The last fire instant `< instant`, in whole seconds since 1970.
    func lastFire(before instant: Int, in zone: ScheduleTimeZone) -> Int? {
        let limit = max(instant - Self.horizon, Self.supportedSeconds.lowerBound)
        var cursor = instant - 1  // latest allowed instant
        // Foundation only finds transitions forwards, so look for the last one
        // at or before `cursor` within a window that ends at `cursor`.
        let window = 366 * WallClock.secondsPerDay
        while cursor >= limit {
            let offset = zone.offset(at: cursor)
            var segmentStart = max(cursor - window + 1, limit)
            var transition: Int?
            var probe = segmentStart - 1
            while let t = zone.nextTransition(after: probe), t <= cursor {
                transition = t
                probe = t
            }
            let lowWall: Int
            if let transition {
                segmentStart = transition
                lowWall = transition + lowestWallOffset(before: zone.offset(at: transition - 1), after: offset)
            } else {
                lowWall = segmentStart + offset
            }
            if let wall = lastWallMatch(from: lowWall, through: cursor + offset) {
                return max(wall - offset, segmentStart)
            }
            cursor = segmentStart - 1
        }
        return nil
    }

    /// Where the wall-clock search of a stretch that starts at an offset
    /// change begins, relative to the change instant: at the first nonexistent
    /// wall time when gap fires are shifted to the change instant, else at the
    /// change instant's own wall time.
    private func lowestWallOffset(before: Int, after: Int) -> Int {
        shiftsGapFires ? min(before, after) : after
    }

    // MARK: Wall clock

    /// Days of a month that match the day-of-month, day-of-week and month
    /// fields, as a bit mask (bit d = day d).
    func matchingDays(year: Int, month: Int) -> UInt64 {
        guard months & (1 << UInt64(month)) != 0 else { return 0 }
        let length = WallClock.daysInMonth(year: year, month: month)
        let valid: UInt64 = ((1 << UInt64(length + 1)) - 1) & ~1
        // Days 1, 8, 15, 22, 29 share the weekday of the 1st.
        let firstWeekday = WallClock.weekday(days: WallClock.days(year: year, month: month, day: 1))
        let sameAsFirst: UInt64 = 1 << 1 | 1 << 8 | 1 << 15 | 1 << 22 | 1 << 29
        var weekdays: UInt64 = 0
        for weekday in 0..<7 where daysOfWeek & (1 << UInt64(weekday)) != 0 {
            weekdays |= sameAsFirst << UInt64((weekday - firstWeekday + 7) % 7)
        }
        let days = dayOfMonthStar || dayOfWeekStar ? daysOfMonth & weekdays : daysOfMonth | weekdays
        return days & valid
    }

    /// The earliest matching minute-aligned wall time in `lower...upper`.
    func firstWallMatch(from lower: Int, through upper: Int) -> Int? {
        guard lower <= upper else { return nil }
        let start = WallClock.floorDiv(lower + 59, 60) * 60
        let startDay = WallClock.floorDiv(start, WallClock.secondsPerDay)
        var (year, month, day) = WallClock.date(days: startDay)
        var hour = (start - startDay * WallClock.secondsPerDay) / 3600
        var minute = (start % 3600 + 3600) % 3600 / 60

        func nextMonth() {
            let later = months & ~((2 << UInt64(month)) - 1)
            if later != 0 {
                month = later.trailingZeroBitCount
            } else {
                year += 1
                month = months.trailingZeroBitCount
            }
            (day, hour, minute) = (1, 0, 0)
        }

        while true {
            let dayStart = WallClock.days(year: year, month: month, day: day) * WallClock.secondsPerDay
            if dayStart + hour * 3600 + minute * 60 > upper { return nil }
            let days = matchingDays(year: year, month: month) & ~((1 << UInt64(day)) - 1)
            if days == 0 {
                nextMonth()
                continue
            }
            if days.trailingZeroBitCount != day {
                (day, hour, minute) = (days.trailingZeroBitCount, 0, 0)
                continue  // re-check the bound for the new day
            }
            let hoursLeft = hours & ~((1 << UInt64(hour)) - 1)
            if hoursLeft == 0 {
                (day, hour, minute) = (day + 1, 0, 0)
                if day > WallClock.daysInMonth(year: year, month: month) { nextMonth() }
                continue
            }
            if hoursLeft.trailingZeroBitCount != hour {
                (hour, minute) = (hoursLeft.trailingZeroBitCount, 0)
            }
            let minutesLeft = minutes & ~((1 << UInt64(minute)) - 1)
            if minutesLeft == 0 {
                (hour, minute) = (hour + 1, 0)
                if hour == 24 {
                    (day, hour) = (day + 1, 0)
                    if day > WallClock.daysInMonth(year: year, month: month) { nextMonth() }
                }
                continue
            }
            let wall = dayStart + hour * 3600 + minutesLeft.trailingZeroBitCount * 60
            return wall <= upper ? wall : nil
        }
    }

    /// The latest matching minute-aligned wall time in `lower...upper`.
    func lastWallMatch(from lower: Int, through upper: Int) -> Int? {
        guard lower <= upper else { return nil }
        let start = WallClock.floorDiv(upper, 60) * 60
        let startDay = WallClock.floorDiv(start, WallClock.secondsPerDay)
        var (year, month, day) = WallClock.date(days: startDay)
        var hour = (start - startDay * WallClock.secondsPerDay) / 3600
        var minute = (start % 3600 + 3600) % 3600 / 60

        func previousMonth() {
            let earlier = months & ((1 << UInt64(month)) - 1)
            if earlier != 0 {
                month = 63 - earlier.leadingZeroBitCount
            } else {
                year -= 1
                month = 63 - months.leadingZeroBitCount
            }
            (day, hour, minute) = (WallClock.daysInMonth(year: year, month: month), 23, 59)
        }

        while true {
            let dayStart = WallClock.days(year: year, month: month, day: day) * WallClock.secondsPerDay
            if dayStart + hour * 3600 + minute * 60 < lower { return nil }
            let days = matchingDays(year: year, month: month) & ((2 << UInt64(day)) - 1)
            if days == 0 {
                previousMonth()
                continue
            }
            let lastDay = 63 - days.leadingZeroBitCount
            if lastDay != day {
                (day, hour, minute) = (lastDay, 23, 59)
                continue
            }
            let hoursLeft = hours & ((2 << UInt64(hour)) - 1)
            if hoursLeft == 0 {
                (day, hour, minute) = (day - 1, 23, 59)
                if day == 0 { previousMonth() }
                continue
            }
            let lastHour = 63 - hoursLeft.leadingZeroBitCount
            if lastHour != hour {
                (hour, minute) = (lastHour, 59)
            }
            let minutesLeft = minutes & ((2 << UInt64(minute)) - 1)
            if minutesLeft == 0 {
                (hour, minute) = (hour - 1, 59)
                if hour < 0 {
                    (day, hour) = (day - 1, 23)
                    if day == 0 { previousMonth() }
                }
                continue
            }
            let wall = dayStart + hour * 3600 + (63 - minutesLeft.leadingZeroBitCount) * 60
            return wall >= lower ? wall : nil
        }
    }
}
