/// Delays between reconnection attempts: exponential with a cap and jitter,
/// so that many agents losing the control plane at once do not come back in
/// lockstep. Pure: the random part is an argument.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration = .seconds(1)
    public var multiplier: Double = 1.6
    public var maximum: Duration = .seconds(120)
    /// The delay varies by up to this fraction either way (0.2: ±20 %).
    public var jitter: Double = 0.2

    public init() {}

    public init(initial: Duration, multiplier: Double, maximum: Duration, jitter: Double) {
        self.initial = initial
        self.multiplier = multiplier
        self.maximum = maximum
        self.jitter = jitter
    }

    /// The delay before attempt `attempt` (0 for the first retry), with
    /// `random` in -1…1 choosing where in the jitter band it falls.
    public func delay(attempt: Int, random: Double) -> Duration {
        let initialSeconds = Self.seconds(initial)
        let maximumSeconds = Self.seconds(maximum)
        var base = initialSeconds
        for _ in 0..<max(attempt, 0) {
            base *= multiplier
            if base >= maximumSeconds { base = maximumSeconds; break }
        }
        base = min(base, maximumSeconds)
        let clamped = min(max(random, -1), 1)
        let seconds = max(0, base * (1 + jitter * clamped))
        return .nanoseconds(Int64(seconds * 1e9))
    }

    /// The delay with a fresh random jitter.
    public func delay(attempt: Int) -> Duration {
        delay(attempt: attempt, random: .random(in: -1...1))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
