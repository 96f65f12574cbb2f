import Testing

/// Polls `condition` every 10 ms for up to 20 s, for tests that wait on
/// other threads or processes; records an issue naming `what` if it never
/// holds. Waits for an event, asserts nothing about speed.
func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
    for _ in 0..<2_000 {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("\(what): not within 20 s")
}
