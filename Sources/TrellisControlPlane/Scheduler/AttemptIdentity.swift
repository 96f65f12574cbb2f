/// How an attempt is named to executors: `"<task instance id>.<attempt id>"`,
/// so an executor's event leads straight back to the row it is about.
struct AttemptIdentity: Hashable, Sendable {
    var taskInstanceID: Int64
    var attemptID: Int64

    var text: String { "\(taskInstanceID).\(attemptID)" }

    init(taskInstanceID: Int64, attemptID: Int64) {
        self.taskInstanceID = taskInstanceID
        self.attemptID = attemptID
    }

    /// nil for text no Trellis control plane produced.
    init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let instance = Int64(parts[0]), let attempt = Int64(parts[1]) else { return nil }
        self.init(taskInstanceID: instance, attemptID: attempt)
    }
}
