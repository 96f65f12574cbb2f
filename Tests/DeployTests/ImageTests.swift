import Foundation
import Testing
import TrellisTestSupport

extension Deploy {
    /// deploy/docker without a Docker engine (none runs where the tests do): the
    /// Dockerfile's structure; the image's file tree, made by the Dockerfile's
    /// own staging script from this build; every path the manifests run exists
    /// in it; and every shared library the binaries and plugins load is either
    /// in that tree or in a Debian package the runtime stage installs. Whether
    /// `docker build` itself succeeds is not checked here.
    @Suite struct ImageTests {
        static let dockerfile = "deploy/docker/Dockerfile"

        @Test func theDockerfileBuildsEverythingInReleaseAndShipsItOnSlimDebianAsUid50000() async throws {
            let text = try Repository.text(Self.dockerfile)
            let file = Dockerfile(text)
            #expect(file.stages.count == 2)
            let build = try #require(file.stages.first)
            let runtime = try #require(file.stages.last)

            // Stage 1: the official Swift image of this toolchain's version, on
            // bookworm.
            #expect(build.name == "build")
            let swiftVersion = try await Repository.run(try Repository.tool("swift"), ["--version"]).stdout
            let minor = try #require(swiftVersion.firstMatch(of: /Swift version (\d+\.\d+)/)?.output.1)
            #expect(file.baseImage(of: build) == "swift:\(minor)-bookworm", "\(file.baseImage(of: build)) vs the tests' Swift \(minor)")
            // The -dev packages scripts/setup installs for the build.
            let setup = try Repository.text("scripts/setup")
            let block = try #require(setup.firstMatch(of: /packages=\(\n([\s\S]*?)\n\)/)?.output.1)
            let setupPackages = block.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
            let buildPackages = build.all("RUN").flatMap { Dockerfile.aptPackages($0.arguments) }
            #expect(Set(buildPackages) == Set(setupPackages.filter { $0.hasSuffix("-dev") || $0 == "pkg-config" }), "\(buildPackages) vs \(setupPackages)")
            // The package's sources: every directory Package.swift's targets
            // live in (custom `path:`s and the default Sources/ and Tests/).
            let copied = Set(build.all("COPY").compactMap { $0.arguments.split(separator: " ").first.map(String.init) })
            let manifest = try Repository.text("Package.swift")
            let roots = Set(manifest.matches(of: /path: "([^"\/]+)/).map { String($0.output.1) }).union(["Sources", "Tests", "Package.swift"])
            #expect(roots.isSubset(of: copied), "not copied: \(roots.subtracting(copied))")
            // Release, everything, shared Swift runtime, staged by the script.
            let runs = build.all("RUN").map(\.arguments).joined(separator: "\n")
            #expect(runs.contains("swift build -c release"))
            // (Comments are not instructions: the Dockerfile explains why not.)
            let instructions = file.stages.flatMap(\.instructions).map(\.arguments).joined(separator: "\n")
            #expect(!instructions.contains("static-swift-stdlib"), "trellisd loads Swift plugins: the runtime must stay shared")
            #expect(runs.contains("stage-image-root \"$(swift build -c release --show-bin-path)\" /usr/lib/swift/linux /staging"))
            #expect(build.all("COPY").contains { $0.arguments == "deploy/docker/stage-image-root /usr/local/bin/stage-image-root" })

            // Stage 2: slim Debian, the staged tree, the loader cache, uid 50000.
            #expect(file.baseImage(of: runtime) == "debian:bookworm-slim")
            #expect(runtime.all("COPY").map(\.arguments) == ["--from=build /staging/ /"])
            let runtimeRuns = runtime.all("RUN").map(\.arguments)
            #expect(runtimeRuns.contains { $0.hasPrefix("ldconfig") }, "the ld.so.conf.d entry needs ldconfig")
            let packages = Set(runtimeRuns.flatMap(Dockerfile.aptPackages))
            #expect(packages.isSuperset(of: ["libpq5", "libcurl4", "libprotobuf-c1", "libyaml-0-2", "ca-certificates", "tzdata"]), "\(packages)")
            #expect(!packages.contains { $0.hasSuffix("-dev") }, "\(packages)")
            let user = try #require(runtime.all("USER").last?.arguments)
            #expect(user == "50000:50000", "a numeric user, so Kubernetes can check runAsNonRoot")

            // The build context: the ignore file keeps what the COPY lines need.
            let ignore = try Repository.text("deploy/docker/Dockerfile.dockerignore")
            for kept in ["!Package.swift", "!Sources/", "!plugins/", "!Tests/", "!deploy/docker/stage-image-root"] {
                #expect(ignore.contains(kept), "\(kept)")
            }
        }

        @Test func theImageHoldsEveryBinaryPluginAndPathTheManifestsUse() async throws {
            let root = try await StagedImage.shared()
            let files = FileManager.default

            for program in ["trellisd", "trellis-agent", "trellis"] {
                #expect(files.isExecutableFile(atPath: root.path + "/usr/bin/" + program), "\(program)")
            }
            // TrellisStore's migrations, where Bundle.module looks: beside the
            // executable.
            let bundles = try files.contentsOfDirectory(atPath: root.path + "/usr/bin").filter { $0.hasSuffix(".resources") }
            #expect(bundles == ["Trellis_TrellisStore.resources"], "\(bundles)")
            let migrations = try files.contentsOfDirectory(atPath: Repository.path("Sources/TrellisStore/Migrations/SQL"))
            for migration in migrations {
                #expect(files.fileExists(atPath: root.path + "/usr/bin/Trellis_TrellisStore.resources/SQL/" + migration), "\(migration)")
            }

            // Every executor plugin the package builds, and no test fixture.
            let shipped = Set(try files.contentsOfDirectory(atPath: root.path + "/usr/lib/trellis/executors"))
            let declared = try StagedImage.declaredExecutors()
            #expect(declared.isSuperset(of: StagedImage.fixtureExecutors))
            #expect(shipped == Set(declared.subtracting(StagedImage.fixtureExecutors).map { "libtrellis-executor-\($0).so" }), "\(shipped)")

            // The Swift runtime, on the loader's path.
            #expect(try String(contentsOf: root.appendingPathComponent("etc/ld.so.conf.d/swift.conf"), encoding: .utf8) == "/usr/lib/swift/linux\n")
            let runtime = Set(try files.contentsOfDirectory(atPath: root.path + "/usr/lib/swift/linux"))
            #expect(runtime.isSuperset(of: ["libswiftCore.so", "libFoundation.so", "libFoundationEssentials.so", "lib_FoundationICU.so", "libdispatch.so"]))
            #expect(!runtime.contains("libXCTest.so") && !runtime.contains("libTesting.so"))

            // What the manifests run and point at exists in the image.
            for rendering in try await Rendering.all() {
                for container in rendering.containers where container.runsTrellisImage {
                    let command = try #require(container.spec["command"][0].string)
                    #expect(files.isExecutableFile(atPath: root.path + command), "\(rendering): \(container) runs \(command), which the image lacks")
                    for directory in (container.envValue("TRELLIS_PLUGIN_DIRS") ?? "").split(separator: ":") {
                        var isDirectory: ObjCBool = false
                        #expect(files.fileExists(atPath: root.path + directory, isDirectory: &isDirectory) && isDirectory.boolValue, "\(rendering): \(container): \(directory)")
                    }
                }
                // Every executor the manifests configure is a plugin in the image.
                let trellisd = try rendering.container("Deployment", "trellisd", "trellisd")
                var configured = Set(trellisd.envNames.compactMap { name -> String? in
                    guard name.hasPrefix("TRELLIS__EXECUTOR__"), let end = name.dropFirst(19).range(of: "__") else { return nil }
                    return name.dropFirst(19)[..<end.lowerBound].lowercased().replacingOccurrences(of: "_", with: "-")
                })
                configured.insert(trellisd.envValue("TRELLIS_DEFAULT_EXECUTOR") ?? "persistent-pool")
                #expect(configured.isSuperset(of: ["persistent-pool", "scaled-pool"]), "\(configured)")
                for executor in configured.sorted() {
                    let plugin = "libtrellis-executor-\(executor).so"
                    #expect(shipped.contains(plugin), "\(rendering): trellisd is configured for \(executor), but the image has no \(plugin)")
                }
            }
        }

        /// Every library the shipped binaries and plugins load resolves, with the
        /// image's loader path, either inside the image's Swift runtime or to a
        /// file of a Debian package the runtime stage installs (or one those
        /// depend on). This machine is Debian 12, as the image is.
        @Test func everyLibraryTheBinariesLoadIsInTheImage() async throws {
            let root = try await StagedImage.shared()
            let libraryPath = try StagedImage.libraryPath(root)
            let toolchain = try await StagedImage.swiftRuntimeDirectory()
            let runtime = Dockerfile(try Repository.text(Self.dockerfile)).stages.last!
            let installed = Set(runtime.all("RUN").flatMap { Dockerfile.aptPackages($0.arguments) })
            let available = try await Self.dependencyClosure(of: installed)

            var elves = ["trellisd", "trellis-agent", "trellis"].map { root.path + "/usr/bin/" + $0 }
            elves += try FileManager.default.contentsOfDirectory(atPath: root.path + "/usr/lib/trellis/executors").map { root.path + "/usr/lib/trellis/executors/" + $0 }
            var environment = ProcessInfo.processInfo.environment
            environment["LD_LIBRARY_PATH"] = libraryPath
            var owners: [String: String] = [:]
            for elf in elves {
                let ldd = try await Repository.run(try Repository.tool("ldd"), [elf], environment: environment).stdout
                #expect(!ldd.contains("not found"), "\(elf):\n\(ldd)")
                for line in ldd.split(separator: "\n") {
                    guard let arrow = line.range(of: " => ") else { continue }  // vdso, the loader itself
                    let path = String(line[arrow.upperBound...].split(separator: " ").first ?? "")
                    if path.hasPrefix(root.path + "/usr/lib/swift/linux/") { continue }
                    #expect(!path.hasPrefix(toolchain), "\(elf) loads \(path) from the toolchain: the image lacks it")
                    if owners[path] == nil { owners[path] = try await Self.owner(of: path) }
                    let package = owners[path] ?? "?"
                    #expect(available.contains(package), "\(elf) loads \(path) from \(package), which the runtime stage does not install")
                }
            }
            #expect(Set(owners.values).isSuperset(of: ["libpq5", "libcurl4", "libprotobuf-c1", "libyaml-0-2", "libc6"]), "\(owners)")
        }

        /// The Debian package that owns `path` (trying the /usr-merged spelling
        /// too).
        static func owner(of path: String) async throws -> String {
            let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            var candidates = [path, real]
            for candidate in [path, real] {
                if candidate.hasPrefix("/usr/lib/") { candidates.append(String(candidate.dropFirst(4))) }
                if candidate.hasPrefix("/lib/") { candidates.append("/usr" + candidate) }
            }
            let dpkg = try Repository.tool("dpkg")
            for candidate in candidates {
                let result = try await ChildProcess.run(dpkg, ["-S", candidate])
                if result.status == 0, let first = result.stdout.split(separator: "\n").first, let colon = first.firstIndex(of: ":") {
                    return String(first[..<colon]).split(separator: ":").first.map(String.init) ?? ""
                }
            }
            return "(no package owns \(path))"
        }

        /// `packages` and everything they depend on (Depends and Pre-Depends,
        /// every alternative), from this machine's dpkg database.
        static func dependencyClosure(of packages: Set<String>) async throws -> Set<String> {
            let query = try Repository.tool("dpkg-query")
            var closure: Set<String> = []
            var pending = Array(packages)
            while let package = pending.popLast() {
                guard closure.insert(package).inserted else { continue }
                let result = try await ChildProcess.run(query, ["-W", "-f=${Depends}, ${Pre-Depends}", package])
                guard result.status == 0 else { continue }  // not installed here, or virtual
                for dependency in result.stdout.split(whereSeparator: { $0 == "," || $0 == "|" }) {
                    let name = dependency.trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? ""
                    let bare = name.split(separator: ":").first.map(String.init) ?? ""
                    if !bare.isEmpty && !closure.contains(bare) { pending.append(bare) }
                }
            }
            return closure
        }
    }
}
