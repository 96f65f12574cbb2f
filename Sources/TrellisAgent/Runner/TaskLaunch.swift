import Foundation
import TrellisProto

/// How one attempt's process is started: the program found on the task's
/// PATH, its arguments, its environment (the task's variables, Trellis's
/// own, PATH inherited from the agent when the task sets none), its working
/// directory, and the attempt's scratch directory that holds the XCom file.
///
/// Preparing one checks what can be checked before spawning, so a task
/// that cannot start fails with a sentence a user can act on.
struct TaskLaunch: Sendable {
    /// The program to execute (an absolute or working-directory-relative path).
    var executable: String
    /// argv[0] as the task wrote it.
    var argument0: String
    var arguments: [String]
    var environment: [String: String]
    var workingDirectory: String
    /// Removed when the attempt ends.
    var scratchDirectory: URL
    /// $TRELLIS_XCOM_FILE.
    var xcomFile: URL

    /// Why an attempt could not start; its message goes to the user.
    struct Problem: Error, Sendable {
        var message: String
    }

    /// Builds the launch of `assignment`'s process task and creates its
    /// scratch directory under `workDirectory`.
    static func prepare(_ assignment: Trellis_V1_TaskAssignment, agentEnvironment: [String: String], workDirectory: String) throws(Problem) -> TaskLaunch {
        let spec = assignment.task.process
        guard let program = spec.command.first, !program.isEmpty else { throw Problem(message: "the task has no command") }

        let scratch = URL(fileURLWithPath: workDirectory, isDirectory: true)
            .appendingPathComponent("attempts", isDirectory: true)
            .appendingPathComponent("\(safeName(assignment.attempt.attemptID))-\(UUID().uuidString.prefix(8))", isDirectory: true)
        do {
            try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw Problem(message: "cannot run '\(program)': cannot create its scratch directory \(scratch.path): \(error.localizedDescription)")
        }
        let xcomFile = scratch.appendingPathComponent("xcom.json")

        var environment: [String: String] = [:]
        for variable in spec.env { environment[variable.name] = variable.value }
        if environment["PATH"] == nil { environment["PATH"] = agentEnvironment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin" }
        environment["TRELLIS_DAG_ID"] = assignment.dagID
        environment["TRELLIS_RUN_ID"] = assignment.runID
        environment["TRELLIS_TASK_ID"] = assignment.taskID
        environment["TRELLIS_TRY_NUMBER"] = String(assignment.tryNumber)
        environment["TRELLIS_LOGICAL_DATE"] = iso8601(micros: assignment.logicalDate.unixMicros)
        environment["TRELLIS_XCOM_FILE"] = xcomFile.path

        let workingDirectory = spec.workingDir.isEmpty ? scratch.path : spec.workingDir
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: workingDirectory, isDirectory: &isDirectory), isDirectory.boolValue else {
            try? FileManager.default.removeItem(at: scratch)
            throw Problem(message: "cannot run '\(program)': its working directory \(workingDirectory) does not exist")
        }

        let executable: String
        if program.contains("/") {
            executable = program
        } else if let found = search(program, path: environment["PATH"] ?? "", from: workingDirectory) {
            executable = found
        } else {
            try? FileManager.default.removeItem(at: scratch)
            throw Problem(message: "cannot run '\(program)': No such file or directory (searched PATH=\(environment["PATH"] ?? ""))")
        }
        return TaskLaunch(
            executable: executable, argument0: program, arguments: Array(spec.command.dropFirst()), environment: environment,
            workingDirectory: workingDirectory, scratchDirectory: scratch, xcomFile: xcomFile)
    }

    /// The first executable file named `program` in the directories of
    /// `path`, as execvp searches (relative entries from the task's directory).
    static func search(_ program: String, path: String, from directory: String) -> String? {
        for entry in path.split(separator: ":", omittingEmptySubsequences: false) {
            let base = entry.isEmpty ? "." : String(entry)
            let absolute = base.hasPrefix("/") ? base : directory + "/" + base
            let candidate = absolute + "/" + program
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
               access(candidate, X_OK) == 0
            {
                return candidate
            }
        }
        return nil
    }

    /// `2026-11-25T19:30:00Z`, with microseconds when there are any.
    static func iso8601(micros: Int64) -> String {
        var seconds = time_t(micros.quotient(1_000_000))
        let fraction = micros - Int64(seconds) * 1_000_000
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        var text = "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
        if fraction != 0 {
            let digits = String(fraction)
            text += "." + String(repeating: "0", count: 6 - digits.count) + digits
        }
        return text + "Z"
    }

    /// An attempt id as a file name: anything but letters, digits, `.`, `_`
    /// and `-` becomes `_`.
    static func safeName(_ id: String) -> String {
        let cleaned = String(id.unicodeScalars.prefix(64).map { scalar -> Character in
            let allowed = (scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar))) || scalar == "." || scalar == "_" || scalar == "-"
            return allowed ? Character(scalar) : "_"
        })
        return cleaned.isEmpty || cleaned.hasPrefix(".") ? "attempt" + cleaned : cleaned
    }
}

extension Int64 {
    /// Division rounding towards minus infinity (times before 1970 too).
    fileprivate func quotient(_ divisor: Int64) -> Int64 {
        let (q, r) = quotientAndRemainder(dividingBy: divisor)
        return r < 0 ? q - 1 : q
    }
}
