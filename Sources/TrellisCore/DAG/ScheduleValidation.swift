/// Checks a DAG's `schedule` text when the file is read.
enum ScheduleValidation {
    /// Why `text` is not a schedule, or nil if it is one.
    static func problem(_ text: String) -> String? {
        do {
            _ = try Schedule(parsing: text)
            return nil
        } catch {
            return error.message
        }
    }
}
