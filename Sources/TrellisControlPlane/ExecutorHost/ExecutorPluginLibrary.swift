import Foundation
import TrellisCore
import TrellisPluginABI

/// One executor plugin library loaded into the process: its file, the table
/// its entry point returned, and the name it runs tasks under.
///
/// Libraries are never unloaded (a plugin's threads or callbacks could still
/// be running code in them), so the table pointer stays valid for the life of
/// the process.
public struct ExecutorPluginLibrary: @unchecked Sendable {
    /// The file it was loaded from.
    public let path: String
    /// The executor name DAG files use.
    public let name: String
    public let version: String
    public let abiMinor: UInt32
    /// The host's copy of the plugin's table (never freed, like the library).
    let table: UnsafePointer<trellis_executor_v1>

    /// Loads `path` and checks its entry table; throws a `PluginLoadError`
    /// naming the file and the reason when it cannot be used.
    public static func load(path: String) throws(PluginLoadError) -> ExecutorPluginLibrary {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw PluginLoadError(path: path, reason: "cannot be loaded: \(reason)")
        }
        guard let symbol = dlsym(handle, TRELLIS_EXECUTOR_ENTRY_SYMBOL) else {
            throw PluginLoadError(path: path, reason: "does not export \(TRELLIS_EXECUTOR_ENTRY_SYMBOL); it is not a Trellis executor plugin")
        }
        let entry = unsafeBitCast(symbol, to: trellis_executor_entry_v1_fn.self)
        guard let table = entry() else {
            throw PluginLoadError(path: path, reason: "\(TRELLIS_EXECUTOR_ENTRY_SYMBOL) returned NULL")
        }
        let header = UnsafeRawPointer(table)
        // Read the size and versions before trusting anything else in the table.
        let structSize = header.load(as: Int.self)
        let abiMajor = header.load(fromByteOffset: MemoryLayout<trellis_executor_v1>.offset(of: \.abi_major)!, as: UInt32.self)
        guard abiMajor == UInt32(TRELLIS_EXECUTOR_ABI_MAJOR) else {
            throw PluginLoadError(path: path, reason: "was built for executor ABI \(abiMajor).x; this control plane speaks \(TRELLIS_EXECUTOR_ABI_MAJOR).\(TRELLIS_EXECUTOR_ABI_MINOR); rebuild it against this version's plugins/c-sdk/include/trellis_executor_abi.h")
        }
        // ABI 1.0's table ends after free_error; later minor versions append.
        let minimumSize = MemoryLayout<trellis_executor_v1>.offset(of: \.agents_changed)!
        guard structSize >= minimumSize else {
            throw PluginLoadError(path: path, reason: "its executor table is \(structSize) bytes, smaller than the \(minimumSize) bytes of ABI \(TRELLIS_EXECUTOR_ABI_MAJOR).0")
        }
        // A copy the size of this host's table: fields the plugin's (older)
        // table does not have stay NULL, and nothing is read past its end.
        let copy = UnsafeMutablePointer<trellis_executor_v1>.allocate(capacity: 1)
        let size = MemoryLayout<trellis_executor_v1>.size
        UnsafeMutableRawPointer(copy).initializeMemory(as: UInt8.self, repeating: 0, count: size)
        UnsafeMutableRawPointer(copy).copyMemory(from: header, byteCount: min(structSize, size))
        let fields = copy.pointee
        guard let namePointer = fields.name else {
            copy.deallocate()
            throw PluginLoadError(path: path, reason: "its executor table has no name")
        }
        let name = String(cString: namePointer)
        if let problem = BuiltInExecutor.nameProblem(name) {
            copy.deallocate()
            throw PluginLoadError(path: path, reason: "its executor name '\(name)' is invalid: \(problem)")
        }
        let missing = [
            ("create", fields.create == nil), ("submit", fields.submit == nil), ("cancel", fields.cancel == nil),
            ("adopt", fields.adopt == nil), ("tick", fields.tick == nil), ("destroy", fields.destroy == nil),
            ("free_error", fields.free_error == nil),
        ].filter(\.1).map(\.0)
        guard missing.isEmpty else {
            copy.deallocate()
            throw PluginLoadError(path: path, reason: "executor '\(name)' leaves \(missing.joined(separator: ", ")) unset")
        }
        return ExecutorPluginLibrary(
            path: path, name: name, version: fields.version.map { String(cString: $0) } ?? "",
            abiMinor: fields.abi_minor, table: UnsafePointer(copy)
        )
    }
}

/// Why a plugin file was not loaded. The message names the file and says
/// what to do; a bad plugin never stops the others from loading.
public struct PluginLoadError: Error, Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "executor plugin \(path): \(reason)" }
}
