public import NIOCore
import Synchronization

/// Runs Swift tasks on a NIO event loop. Method handlers run here by default,
/// and callers that make many calls over one connection can run their tasks
/// here too (`Task(executorPreference: connection.taskExecutor)`): a call then
/// goes from task to socket and back without waking another thread, which is
/// most of the cost of a small call. Work that blocks or burns CPU for long
/// must not run here: it would stall every connection on the loop.
///
/// Jobs wait in the executor's own queue and run in batches: one
/// `eventLoop.execute` (one closure, one trip through the loop's task lock)
/// runs every job enqueued before it started, so the callers woken by one
/// read burst cost one loop task, not one each. Jobs enqueued while a batch
/// runs wait for the next one, behind the loop's I/O.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    private struct Queue: ~Copyable {
        var jobs: [UnownedJob] = []
        /// An empty array with capacity, handed back by the last batch.
        var spare: [UnownedJob] = []
        var batchScheduled = false
    }

    private let queue = Mutex(Queue())

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let schedule = queue.withLock { queue -> Bool in
            queue.jobs.append(job)
            guard !queue.batchScheduled else { return false }
            queue.batchScheduled = true
            return true
        }
        if schedule {
            eventLoop.execute { self.runBatch() }
        }
    }

    private func runBatch() {
        var jobs = queue.withLock { queue -> [UnownedJob] in
            queue.batchScheduled = false
            let jobs = queue.jobs
            queue.jobs = queue.spare
            queue.spare = []
            return jobs
        }
        let executor = asUnownedTaskExecutor()
        for job in jobs { job.runSynchronously(on: executor) }
        jobs.removeAll(keepingCapacity: true)
        queue.withLock { queue in
            if queue.spare.capacity < jobs.capacity { queue.spare = jobs }
        }
    }
}
