import Foundation
import Synchronization
import TrellisTestSupport

/// The runtime image's file tree, made without Docker: the Dockerfile's own
/// staging script (deploy/docker/stage-image-root) run on this test run's
/// build and this toolchain's runtime libraries.
enum StagedImage {
    /// Where `swift build` put the products the tests run.
    static func binDirectory() throws -> String {
        URL(fileURLWithPath: try ChildProcess.builtProduct("trellisd")).deletingLastPathComponent().path
    }

    /// The toolchain's Swift runtime: the first RUNPATH entry of trellisd
    /// (TOOLCHAIN-NOTES: built binaries carry it).
    static func swiftRuntimeDirectory() async throws -> String {
        let dynamic = try await Repository.run(try Repository.tool("readelf"), ["-d", try ChildProcess.builtProduct("trellisd")])
        guard let line = dynamic.stdout.split(separator: "\n").first(where: { $0.contains("(RUNPATH)") || $0.contains("(RPATH)") }),
              let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]") else {
            throw Repository.Failed(description: "trellisd has no RUNPATH:\n\(dynamic.stdout)")
        }
        let entries = line[line.index(after: open)..<close].split(separator: ":").map(String.init)
        guard let runtime = entries.first(where: { !$0.contains("$ORIGIN") && FileManager.default.fileExists(atPath: $0 + "/libswiftCore.so") }) else {
            throw Repository.Failed(description: "no Swift runtime directory in trellisd's RUNPATH \(entries)")
        }
        return runtime
    }

    /// Runs the staging script into a new directory; the caller removes it.
    static func stage() async throws -> URL {
        let root = try Repository.temporaryDirectory("trellis-image-root")
        do {
            try await Repository.run(Repository.path("deploy/docker/stage-image-root"), [try binDirectory(), try await swiftRuntimeDirectory(), root.path])
        } catch {
            try? FileManager.default.removeItem(at: root)
            throw error
        }
        return root
    }

    /// One staged tree for every test of the run (it is a few hundred MB of
    /// debug binaries and runtime libraries; the tests only read it),
    /// removed when the test process exits.
    static func shared() async throws -> URL {
        try await sharedStaging.root()
    }

    private static let sharedStaging = SharedStaging()
    fileprivate static let sharedPath = Mutex<String?>(nil)

    /// The loader path the image's ld.so.conf.d entry gives, inside `root`.
    static func libraryPath(_ root: URL) throws -> String {
        let entry = try String(contentsOf: root.appendingPathComponent("etc/ld.so.conf.d/swift.conf"), encoding: .utf8)
        return entry.split(separator: "\n").map { root.path + $0 }.joined(separator: ":")
    }

    /// The executor plugins Package.swift declares (`trellis-executor-NAME`
    /// dynamic libraries), by executor name.
    static func declaredExecutors() throws -> Set<String> {
        let manifest = try Repository.text("Package.swift")
        return Set(manifest.matches(of: /\.library\(name: "trellis-executor-([a-z0-9-]+)", type: \.dynamic/).map { String($0.output.1) })
    }

    /// Test fixtures that must never ship.
    static let fixtureExecutors: Set<String> = ["c-instant", "broken"]
}

private actor SharedStaging {
    private var staging: Task<URL, any Error>?

    func root() async throws -> URL {
        if let staging { return try await staging.value }
        let staging = Task { try await StagedImage.stage() }
        self.staging = staging
        let root = try await staging.value
        StagedImage.sharedPath.withLock { $0 = root.path }
        atexit {
            if let path = StagedImage.sharedPath.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: path) }
        }
        return root
    }
}

/// A Dockerfile read as Docker reads it: comments dropped, continuation
/// lines joined, instructions grouped by stage, global ARGs with defaults.
struct Dockerfile {
    struct Instruction: CustomStringConvertible {
        var keyword: String
        var arguments: String
        var description: String { "\(keyword) \(arguments)" }
    }

    struct Stage {
        var from: String
        var name: String?
        var instructions: [Instruction]

        func all(_ keyword: String) -> [Instruction] { instructions.filter { $0.keyword == keyword } }
    }

    var globalArguments: [String: String] = [:]
    var stages: [Stage] = []

    init(_ text: String) {
        var logical: [String] = []
        var current = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if current.isEmpty && (line.isEmpty || line.hasPrefix("#")) { continue }
            if !current.isEmpty && line.hasPrefix("#") { continue }  // comments inside a continuation
            if line.hasSuffix("\\") {
                current += line.dropLast() + " "
            } else {
                current += line
                logical.append(current)
                current = ""
            }
        }
        if !current.isEmpty { logical.append(current) }
        for line in logical {
            let parts = line.split(separator: " ", maxSplits: 1)
            let keyword = parts[0].uppercased()
            let arguments = parts.count > 1 ? String(parts[1]).trimmingCharacters(in: .whitespaces) : ""
            if keyword == "FROM" {
                let words = arguments.split(separator: " ").map(String.init)
                let name = words.count >= 3 && words[words.count - 2].uppercased() == "AS" ? words.last : nil
                stages.append(Stage(from: words.first(where: { !$0.hasPrefix("--") }) ?? "", name: name, instructions: []))
            } else if stages.isEmpty {
                if keyword == "ARG", let equals = arguments.firstIndex(of: "=") {
                    globalArguments[String(arguments[..<equals])] = String(arguments[arguments.index(after: equals)...])
                }
            } else {
                stages[stages.count - 1].instructions.append(Instruction(keyword: keyword, arguments: arguments))
            }
        }
    }

    /// A stage's base image with `${ARG}` replaced by the ARG's default.
    func baseImage(of stage: Stage) -> String {
        var image = stage.from
        for (name, value) in globalArguments {
            image = image.replacingOccurrences(of: "${\(name)}", with: value).replacingOccurrences(of: "$\(name)", with: value)
        }
        return image
    }

    /// The packages `apt-get install` lines of a RUN install.
    static func aptPackages(_ run: String) -> [String] {
        var packages: [String] = []
        for command in run.components(separatedBy: "&&") {
            let words = command.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let install = words.firstIndex(of: "install"), words[..<install].contains(where: { $0.hasSuffix("apt-get") }) else { continue }
            packages += words[(install + 1)...].filter { !$0.hasPrefix("-") && !$0.contains("=") }
        }
        return packages
    }
}
