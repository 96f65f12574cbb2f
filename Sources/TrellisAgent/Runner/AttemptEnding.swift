import Foundation
import TrellisProcess
import TrellisProto

/// Why the agent stopped an attempt before it ended by itself.
public enum StopCause: Sendable, Hashable {
    /// Its task's `execution_timeout` passed.
    case timedOut(limit: Duration)
    /// The control plane cancelled it (CancelTask), with its reason.
    case cancelled(reason: String)
    /// The agent was drained and its grace ran out.
    case drained(grace: Duration)
}

/// Turns how an attempt's process ended into the `AttemptFinished` the
/// control plane records: outcome, exit code or signal, a machine-readable
/// reason and a sentence for the user (quoting the end of the output when
/// the task failed), and the XCom result of a successful task.
///
/// Reasons: `ExitCode`, `Signal`, `ExecutionTimeout`, `Cancelled`,
/// `Drained`, `InvalidXCom`, `CannotRun`.
enum AttemptEnding {
    /// The largest XCom file accepted.
    static let maximumXComBytes = 64 * 1024

    static func finished(
        termination: Spawn.Termination, stop: StopCause?, killed: Bool, outputTail: String, xcomFile: URL
    ) -> Trellis_V1_AttemptFinished {
        var finished = Trellis_V1_AttemptFinished()
        switch termination {
        case .exited(let code): finished.exitCode = code
        case .signalled(let signal): finished.signal = signal
        }
        let how = describe(termination)
        let escalation = killed ? ", then SIGKILL after the grace period" : ""
        switch stop {
        case .timedOut(let limit)?:
            finished.outcome = .timedOut
            finished.reason = "ExecutionTimeout"
            finished.message = "the task exceeded its execution timeout of \(seconds(limit)): stopped with SIGTERM\(escalation); it \(how)"
            return finished
        case .cancelled(let reason)?:
            finished.outcome = .cancelled
            finished.reason = "Cancelled"
            finished.message = "the task was cancelled\(reason.isEmpty ? "" : " (\(reason))"): stopped with SIGTERM\(escalation); it \(how)"
            return finished
        case .drained(let grace)?:
            finished.outcome = .cancelled
            finished.reason = "Drained"
            finished.message = "the agent was drained and the task did not finish within the \(seconds(grace)) drain grace: stopped with SIGTERM\(escalation); it \(how)"
            return finished
        case nil:
            break
        }
        switch termination {
        case .exited(0):
            switch readXCom(xcomFile) {
            case .success(let json):
                finished.outcome = .succeeded
                finished.xcomJson = json
            case .failure(let problem):
                finished.outcome = .failed
                finished.reason = "InvalidXCom"
                finished.message = problem.message
            }
        case .exited:
            finished.outcome = .failed
            finished.reason = "ExitCode"
            finished.message = "the task \(how)" + quoted(outputTail)
        case .signalled:
            finished.outcome = .failed
            finished.reason = "Signal"
            finished.message = "the task \(how)" + quoted(outputTail)
        }
        return finished
    }

    /// The end of an attempt that never started.
    static func cannotRun(_ message: String) -> Trellis_V1_AttemptFinished {
        var finished = Trellis_V1_AttemptFinished()
        finished.outcome = .failed
        finished.reason = "CannotRun"
        finished.message = message
        return finished
    }

    struct XComProblem: Error {
        var message: String
    }

    /// The XCom file's content: "" when the task wrote none; a problem when
    /// it is too big or not JSON.
    static func readXCom(_ file: URL) -> Result<String, XComProblem> {
        guard let handle = try? FileHandle(forReadingFrom: file) else { return .success("") }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: maximumXComBytes + 1)) ?? Data()
        if data.count > maximumXComBytes {
            let size = (try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? data.count
            return .failure(XComProblem(message: "the task's XCom file ($TRELLIS_XCOM_FILE) is \(size) bytes; at most \(maximumXComBytes) are allowed"))
        }
        do {
            _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            return .failure(XComProblem(message: "the task's XCom file ($TRELLIS_XCOM_FILE) is not valid JSON: \(String(decoding: data.prefix(200), as: UTF8.self))"))
        }
        return .success(String(decoding: data, as: UTF8.self))
    }

    /// "exited with code 3", "was killed by signal 9 (SIGKILL)".
    static func describe(_ termination: Spawn.Termination) -> String {
        switch termination {
        case .exited(let code): "exited with code \(code)"
        case .signalled(let signal): "was killed by signal \(signal)\(signalNames[signal].map { " (\($0))" } ?? "")"
        }
    }

    private static let signalNames: [Int32: String] = [
        SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGABRT: "SIGABRT", SIGFPE: "SIGFPE",
        SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM", SIGBUS: "SIGBUS",
        SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2",
    ]

    private static func quoted(_ tail: String) -> String {
        tail.isEmpty ? "" : "; last output:\n" + tail
    }

    /// "30s", "1.5s", "250ms".
    static func seconds(_ duration: Duration) -> String {
        let millis = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        if millis % 1000 == 0 { return "\(millis / 1000)s" }
        if millis < 1000 { return "\(millis)ms" }
        return "\(Double(millis) / 1000)s"
    }
}
