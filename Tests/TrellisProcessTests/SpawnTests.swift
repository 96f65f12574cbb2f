import Foundation
import Testing
import TrellisProcess

@Suite struct SpawnTests {
    /// Runs a shell line; its exit code and standard output.
    static func shell(_ line: String, newProcessGroup: Bool = false) throws -> (status: Int32, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("spawn-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let pid = try Spawn.start("/bin/sh", ["-c", line], environment: ["PATH": "/usr/bin:/bin", "GREETING": "hello"],
                                  standardOutput: .file(output), newProcessGroup: newProcessGroup)
        let status = Spawn.wait(pid)
        return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    /// The bug this type exists for: a descriptor the parent holds without
    /// close-on-exec (a socket, a connection) must not leak into the child.
    @Test func theChildInheritsOnlyItsStandardStreams() throws {
        let held = open("/dev/null", O_RDONLY)  // no O_CLOEXEC, as NIO's sockets
        try #require(held > 2)
        defer { close(held) }
        let (status, output) = try Self.shell("for f in /proc/$$/fd/*; do echo ${f##*/}; done")
        #expect(status == 0)
        let open = Set(output.split(separator: "\n").compactMap { Int32($0) })
        #expect(!open.contains(held), "descriptor \(held) leaked into the child: \(open.sorted())")
        #expect(open.isSuperset(of: [0, 1, 2]))
    }

    @Test func environmentAndExitCodes() throws {
        #expect(try Self.shell("echo $GREETING; exit 7") == (7, "hello\n"))
        #expect(try Self.shell("kill -TERM $$").status == 128 + SIGTERM)
    }

    @Test func aNewProcessGroupIsLedByTheChild() throws {
        // /proc/PID/stat: pid (comm) state ppid pgrp …
        let line = "read -r pid comm state ppid pgrp rest < /proc/$$/stat; echo $pid $pgrp"
        let (_, own) = try Self.shell(line, newProcessGroup: true)
        let fields = own.split(whereSeparator: \.isWhitespace)
        #expect(fields.count == 2 && fields[0] == fields[1], "\(own)")
        let (_, shared) = try Self.shell(line)
        #expect(shared.split(whereSeparator: \.isWhitespace).last.map(String.init) == String(getpgrp()))
    }

    @Test func aMissingProgramIsAClearError() {
        #expect {
            _ = try Spawn.start("/nonexistent/program", [], environment: [:])
        } throws: { error in
            "\(error)" == "cannot run /nonexistent/program: No such file or directory"
        }
    }
}

/// What the agent needs from Spawn: a working directory, pipes for the
/// child's output, argv[0], and telling an exit code from a signal.
@Suite struct SpawnAgentSupportTests {
    /// Reads `descriptor` to end of file.
    static func readAll(_ descriptor: Int32) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 { bytes += buffer[0..<count] } else if count == 0 || errno != EINTR { break }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test func theChildRunsInItsWorkingDirectory() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("spawn-cwd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = try Spawn.Pipe()
        let pid = try Spawn.start("/bin/sh", ["-c", "pwd -P"], environment: [:], standardOutput: .descriptor(output.writeEnd),
                                  workingDirectory: directory.path)
        close(output.writeEnd)
        defer { close(output.readEnd) }
        let printed = Self.readAll(output.readEnd)
        #expect(Spawn.reap(pid) == .exited(0))
        let expected = URL(fileURLWithPath: directory.path).resolvingSymlinksInPath().path
        #expect(printed == expected + "\n")
    }

    @Test func aMissingWorkingDirectoryFailsTheStart() {
        #expect {
            _ = try Spawn.start("/bin/true", [], environment: [:], workingDirectory: "/nonexistent/directory")
        } throws: { error in
            (error as? Spawn.Failure)?.errno == ENOENT
        }
    }

    @Test func pipesCarryBothStreamsAndTheirEndsAreNotInherited() throws {
        let out = try Spawn.Pipe()
        let err = try Spawn.Pipe()
        let pid = try Spawn.start(
            "/bin/sh", ["-c", "echo to-out; echo to-err >&2; for f in /proc/$$/fd/*; do printf '%s ' ${f##*/} >&2; done"], environment: [:],
            standardOutput: .descriptor(out.writeEnd), standardError: .descriptor(err.writeEnd))
        close(out.writeEnd)
        close(err.writeEnd)
        defer {
            close(out.readEnd)
            close(err.readEnd)
        }
        #expect(Self.readAll(out.readEnd) == "to-out\n")
        let errors = Self.readAll(err.readEnd)
        #expect(errors.hasPrefix("to-err\n"))
        // The parent's pipe ends (all above 2) never reach the child.
        let descriptors = Set(errors.dropFirst("to-err\n".count).split(separator: " ").compactMap { Int32($0) })
        for end in [out.readEnd, out.writeEnd, err.readEnd, err.writeEnd] where end > 2 {
            #expect(!descriptors.contains(end), "descriptor \(end) leaked: \(descriptors.sorted())")
        }
        #expect(Spawn.reap(pid) == .exited(0))
        // Both parent ends are close-on-exec.
        #expect(fcntl(out.readEnd, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test func argumentZeroCanDifferFromThePath() throws {
        let out = try Spawn.Pipe()
        let pid = try Spawn.start("/bin/sh", ["-c", "echo $0"], argument0: "task-shell", environment: [:],
                                  standardOutput: .descriptor(out.writeEnd))
        close(out.writeEnd)
        defer { close(out.readEnd) }
        #expect(Self.readAll(out.readEnd) == "task-shell\n")
        #expect(Spawn.reap(pid) == .exited(0))
    }

    @Test func terminationTellsExitCodesFromSignals() throws {
        let exits = try Spawn.start("/bin/sh", ["-c", "exit 3"], environment: [:])
        #expect(Spawn.reap(exits) == .exited(3))
        let killed = try Spawn.start("/bin/sh", ["-c", "kill -KILL $$"], environment: [:])
        // Exited but not reaped: still a zombie, so its id stays reserved.
        Spawn.waitUntilExited(killed)
        #expect(kill(killed, 0) == 0)
        #expect(Spawn.reap(killed) == .signalled(SIGKILL))
    }
}
