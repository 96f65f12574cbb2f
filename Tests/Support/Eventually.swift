/// Polls `condition` every 10 ms until it holds, for tests that wait on other
/// threads or processes; throws `NotWithin` naming `what` if it does not
/// hold within `timeout`. Waits for an event, asserts nothing about speed.
public func eventually(_ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return }
        guard ContinuousClock.now < deadline else { throw NotWithin(description: "\(what): not within \(timeout)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A condition `eventually` waited for in vain.
public struct NotWithin: Error, CustomStringConvertible {
    public var description: String
}
