public import NIOCore

/// Runs Swift tasks on a NIO event loop. Method handlers run here by default,
/// and callers that make many calls over one connection can run their tasks
/// here too (`Task(executorPreference: connection.taskExecutor)`): a call then
/// goes from task to socket and back without waking another thread, which is
/// most of the cost of a small call. Work that blocks or burns CPU for long
/// must not run here: it would stall every connection on the loop.
public final class EventLoopTaskExecutor: TaskExecutor {
    public let eventLoop: any EventLoop

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute {
            job.runSynchronously(on: self.asUnownedTaskExecutor())
        }
    }
}
