extension String {
    /// The string without leading and trailing whitespace (Foundation-free,
    /// for the parsers of durations, dates, cron and dependencies).
    func trimmingWhitespace() -> String {
        var slice = self[...]
        while let first = slice.first, first.isWhitespace { slice.removeFirst() }
        while let last = slice.last, last.isWhitespace { slice.removeLast() }
        return String(slice)
    }
}
