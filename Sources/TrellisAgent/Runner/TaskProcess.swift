import Foundation
import TrellisProcess
import TrellisProto

/// One attempt's child process, from spawn to its finished event: the
/// process (in a process group of its own), two threads reading its stdout
/// and stderr into the outbox under backpressure, one thread waiting for its
/// exit, the execution-timeout timer, and stopping (SIGTERM to the group,
/// SIGKILL after the kill grace).
///
/// When the process exits, whatever it left in its process group is killed
/// (as a container's processes end with it), its remaining output is read,
/// and the finished event is built once all three threads are done.
final class TaskProcess: @unchecked Sendable {  // mutable state is guarded by `lock`
    let assignment: Trellis_V1_TaskAssignment
    let executor: String
    let pid: pid_t
    private let launch: TaskLaunch
    private let outbox: Outbox
    private let killGrace: Duration
    private let onEnd: @Sendable (TaskProcess, Trellis_V1_AttemptFinished) -> Void
    private let descriptors: (stdout: Int32, stderr: Int32)

    private let lock = NSLock()
    private var stopCause: StopCause?
    private var killed = false
    private var exitedAt: ContinuousClock.Instant?
    private var termination: Spawn.Termination?
    private var partsLeft = 3
    private var tail = OutputTail()
    private var timers: [Task<Void, Never>] = []

    /// How long output is still read after the process exited (a process
    /// that escaped the group may hold the pipe open), and how much.
    static let outputDrainTime: Duration = .seconds(2)
    static let outputDrainBytes = 256 * 1024

    var attemptID: String { assignment.attempt.attemptID }

    /// Spawns the process; nothing runs on its behalf until `begin()`.
    /// Throws the sentence a user reads when it cannot start.
    static func spawn(
        _ assignment: Trellis_V1_TaskAssignment, executor: String, settings: TaskRunner.Settings, outbox: Outbox,
        onEnd: @escaping @Sendable (TaskProcess, Trellis_V1_AttemptFinished) -> Void
    ) throws(TaskLaunch.Problem) -> TaskProcess {
        let launch = try TaskLaunch.prepare(assignment, agentEnvironment: settings.environment, workDirectory: settings.workDirectory)
        let pid: pid_t
        let stdout: Spawn.Pipe
        let stderr: Spawn.Pipe
        do throws(Spawn.Failure) {
            stdout = try Spawn.Pipe()
            do {
                stderr = try Spawn.Pipe()
            } catch {
                close(stdout.readEnd)
                close(stdout.writeEnd)
                throw error
            }
            defer {
                close(stdout.writeEnd)
                close(stderr.writeEnd)
            }
            do {
                pid = try Spawn.start(
                    launch.executable, launch.arguments, argument0: launch.argument0, environment: launch.environment,
                    standardOutput: .descriptor(stdout.writeEnd), standardError: .descriptor(stderr.writeEnd),
                    workingDirectory: launch.workingDirectory, newProcessGroup: true)
            } catch {
                close(stdout.readEnd)
                close(stderr.readEnd)
                throw error
            }
        } catch {
            try? FileManager.default.removeItem(at: launch.scratchDirectory)
            throw TaskLaunch.Problem(message: "cannot run '\(launch.argument0)': \(String(cString: strerror(error.errno)))")
        }
        return TaskProcess(
            assignment: assignment, executor: executor, pid: pid, launch: launch, outbox: outbox, killGrace: settings.killGrace,
            descriptors: (stdout.readEnd, stderr.readEnd), onEnd: onEnd)
    }

    private init(
        assignment: Trellis_V1_TaskAssignment, executor: String, pid: pid_t, launch: TaskLaunch, outbox: Outbox, killGrace: Duration,
        descriptors: (stdout: Int32, stderr: Int32), onEnd: @escaping @Sendable (TaskProcess, Trellis_V1_AttemptFinished) -> Void
    ) {
        self.assignment = assignment
        self.executor = executor
        self.pid = pid
        self.launch = launch
        self.outbox = outbox
        self.killGrace = killGrace
        self.descriptors = descriptors
        self.onEnd = onEnd
    }

    /// Starts reading its output, waiting for its exit and its timeout.
    func begin() {
        let descriptors = self.descriptors
        Thread.detachNewThread { self.readOutput(descriptors.stdout, stream: .stdout) }
        Thread.detachNewThread { self.readOutput(descriptors.stderr, stream: .stderr) }
        Thread.detachNewThread { self.awaitExit() }
        let task = assignment.task
        if task.hasExecutionTimeout, task.executionTimeout.millis > 0 {
            let limit = Duration.milliseconds(task.executionTimeout.millis)
            let timer = Task { [self] in
                guard (try? await Task.sleep(for: limit)) != nil else { return }
                stop(.timedOut(limit: limit))
            }
            lock.withLock { timers.append(timer) }
        }
    }

    /// SIGTERM to its process group now, SIGKILL after the kill grace,
    /// unless it exits first. The first cause given is the one reported; a
    /// process that already exited keeps its own outcome.
    func stop(_ cause: StopCause) {
        let grace = killGrace
        lock.withLock {
            guard exitedAt == nil else { return }
            if stopCause == nil { stopCause = cause }
            kill(-pid, SIGTERM)
            timers.append(Task { [self] in
                guard (try? await Task.sleep(for: grace)) != nil else { return }
                lock.withLock {
                    guard exitedAt == nil else { return }
                    killed = true
                    kill(-pid, SIGKILL)
                }
            })
        }
    }

    // MARK: Threads

    /// Reads one of its streams into the outbox until end of file. While
    /// the process runs it reads only into room reserved in the outbox, so
    /// unacknowledged output stays bounded and a full outbox stops the
    /// reading (the task then blocks in write). After the exit it reads
    /// what is left without reserving, within `outputDrainTime` and
    /// `outputDrainBytes`.
    private func readOutput(_ descriptor: Int32, stream: Trellis_V1_LogStream) {
        var buffer = [UInt8](repeating: 0, count: Outbox.maximumChunkBytes)
        var drained = 0
        let attempt = assignment.attempt
        while true {
            let exited = lock.withLock { exitedAt }
            var granted = 0
            if let exited {
                if ContinuousClock.now - exited > Self.outputDrainTime || drained > Self.outputDrainBytes { break }
            } else {
                granted = outbox.reserveLogBytes(for: attempt.attemptID, upTo: buffer.count, timeout: .milliseconds(100))
                if granted == 0 { continue }
            }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, 100)
            if ready <= 0 {
                outbox.release(granted, for: attempt.attemptID)
                if ready < 0 && errno != EINTR { break }
                continue
            }
            let wanted = exited == nil ? granted : buffer.count
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, wanted) }
            if count > 0 {
                let data = Data(buffer[0..<count])
                if exited != nil { drained += count }
                lock.withLock { tail.append(data) }
                outbox.appendLog(data, stream: stream, attempt: attempt, executor: executor, reserved: granted)
            } else {
                outbox.release(granted, for: attempt.attemptID)
                if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                break
            }
        }
        close(descriptor)
        partDone()
    }

    /// Waits for the exit, kills what is left of the group (the exited
    /// leader, not yet reaped, keeps the group's id from being reused), then
    /// reaps it.
    private func awaitExit() {
        Spawn.waitUntilExited(pid)
        lock.withLock { exitedAt = .now }
        kill(-pid, SIGKILL)
        let termination = Spawn.reap(pid)
        lock.withLock { self.termination = termination }
        partDone()
    }

    private func partDone() {
        let last = lock.withLock {
            partsLeft -= 1
            return partsLeft == 0
        }
        if last { finish() }
    }

    private func finish() {
        let (termination, cause, killed, tail, timers) = lock.withLock {
            (self.termination ?? .exited(-1), stopCause, self.killed, self.tail.text, self.timers)
        }
        for timer in timers { timer.cancel() }
        let finished = AttemptEnding.finished(termination: termination, stop: cause, killed: killed, outputTail: tail, xcomFile: launch.xcomFile)
        onEnd(self, finished)
        try? FileManager.default.removeItem(at: launch.scratchDirectory)
    }
}
