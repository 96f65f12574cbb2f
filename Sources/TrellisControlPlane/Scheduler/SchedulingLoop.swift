import Foundation
import Synchronization
public import TrellisStore

/// Runs the scheduler for as long as this replica leads: waits for the
/// leader lock, adopts the attempts in flight, then makes a pass on every sweep (cron runs, due retries,
/// timeouts) while executor events are recorded as they come (each ended
/// attempt re-evaluates its run at once). When the lock is lost (its database
/// session died), scheduling stops at once and the loop waits to lead again,
/// so two replicas never schedule at the same time.
public struct SchedulingLoop: Sendable {
    public let scheduler: Scheduler
    public let leader: LeaderLock
    public let events: ExecutorEventInbox
    public let sweepInterval: Duration
    /// Runs changed elsewhere (nil: everything), evaluated at once while leading.
    public let wakeups: AsyncStream<Int64?>?
    /// Told when this replica starts and stops leading (for `/readyz`).
    public let onLeadership: @Sendable (Bool) -> Void

    public init(
        scheduler: Scheduler, leader: LeaderLock, events: ExecutorEventInbox,
        sweepInterval: Duration = .seconds(1), wakeups: AsyncStream<Int64?>? = nil,
        onLeadership: @escaping @Sendable (Bool) -> Void = { _ in }
    ) {
        self.wakeups = wakeups
        self.scheduler = scheduler
        self.leader = leader
        self.events = events
        self.sweepInterval = sweepInterval
        self.onLeadership = onLeadership
    }

    /// Runs until cancelled.
    public func run() async throws {
        let leading = LeadershipFlag()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // One taker for the loop's whole life; each takes whatever
            // arrived since the last batch.
            group.addTask {
                while let batch = await events.take() {
                    // A failed record leaves the attempts as they were; an
                    // agent reports them again (its post is settled as not
                    // recorded). When the database was unreachable, plugins'
                    // starts and ends go back into the inbox after a pause,
                    // until it takes them; any other failure would only
                    // fail again, so those are not retried.
                    do {
                        try await scheduler.record(batch.records, followUp: leading.isLeading)
                        events.settle(batch, recorded: true)
                    } catch {
                        events.settle(batch, recorded: false)
                        scheduler.logger.warning("executor events not recorded", metadata: [
                            "events": "\(batch.count)", "reason": "\(error)",
                            "retried": "\((error as? PostgresError)?.code == .connectionLost)",
                        ])
                        guard (error as? PostgresError)?.code == .connectionLost else { continue }
                        guard (try? await Task.sleep(for: .seconds(1))) != nil else { break }
                        events.requeueAfterFailure(batch)
                    }
                }
            }
            if let wakeups {
                group.addTask {
                    for await runID in wakeups where leading.isLeading {
                        // A failed wake-up is caught up by the next sweep.
                        try? await scheduler.wake(runID: runID)
                    }
                    // The source ended: keep the group running until cancelled.
                    while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try await leader.acquire()
                    leading.isLeading = true
                    // Whatever the previous leader had in flight is ours now.
                    // Should adoption fail (database restarting), the timeout
                    // sweep still settles those attempts.
                    _ = try? await scheduler.adoptInFlight()
                    onLeadership(true)
                    await leadUntilLost()
                    leading.isLeading = false
                    onLeadership(false)
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Makes scheduler passes until the lock is lost or the task is cancelled.
    private func leadUntilLost() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = await leader.lost() }
            group.addTask {
                while !Task.isCancelled {
                    // A failed pass (database restarting) is retried on the next sweep.
                    try? await scheduler.pass()
                    try? await Task.sleep(for: sweepInterval)
                }
            }
            await group.next()
            group.cancelAll()
        }
    }
}

/// Whether this replica leads now, shared by the loop's tasks.
private final class LeadershipFlag: Sendable {
    private let value = Mutex(false)

    var isLeading: Bool {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
