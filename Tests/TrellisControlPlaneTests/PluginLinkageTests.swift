import Testing
import TrellisTestSupport

/// The Swift executor plugins must not carry their own copy of any Swift
/// module the host links (swift-protobuf, Yams, TrellisProto, NIO, ...):
/// each image would get its own globals and casts across the boundary
/// would fail. They share only C (the ABI, protobuf-c, libcurl, libyaml).
@Suite struct PluginLinkageTests {
    static let hostModules = [
        "SwiftProtobuf", "TrellisProto", "TrellisCore", "TrellisWire", "TrellisStore", "TrellisControlPlane",
        "NIOCore", "NIOPosix", "Logging", "Yams", "ArgumentParser",
    ]

    @Test(arguments: ["libtrellis-executor-persistent-pool.so", "libtrellis-executor-pod-per-task.so", "libtrellis-executor-scaled-pool.so"])
    func thePluginLinksNoSwiftModuleOfTheHost(file: String) async throws {
        let library = try ChildProcess.builtProduct(file)
        let symbols = try await ChildProcess.run("/usr/bin/nm", ["-D", library])
        #expect(symbols.status == 0, "\(symbols.stderr)")
        #expect(symbols.stdout.contains(" T trellis_executor_entry_v1"))
        for module in Self.hostModules {
            // Mangled Swift names spell a module as <length><name>.
            #expect(!symbols.stdout.contains("\(module.count)\(module)"), "\(file) references Swift module \(module)")
        }
        let libraries = try await ChildProcess.run("/usr/bin/ldd", [library])
        #expect(!libraries.stdout.contains("not found"), "\(libraries.stdout)")
    }
}
