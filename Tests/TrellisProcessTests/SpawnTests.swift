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
