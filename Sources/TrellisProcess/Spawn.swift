#if canImport(Glibc)
public import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif

/// Starting child processes with posix_spawn so that they inherit nothing
/// but what they are given: standard input, output and error, the
/// environment and the arguments.
///
/// Without this a child inherits every descriptor its parent holds without
/// close-on-exec — listening sockets, client connections, database
/// sessions. A peer then never sees the parent close a connection (the child
/// still holds it) and a closed listening socket goes on accepting into a
/// backlog nobody reads. Tests that start servers, the benchmarks and the
/// agent's task processes all spawn through here.
public enum Spawn {
    /// Where one of the child's standard streams goes.
    public enum Stream: Sendable {
        /// /dev/null.
        case null
        /// A file, created or truncated.
        case file(String)
        /// A file, created or appended to.
        case appending(String)
        /// A descriptor of the parent, duplicated onto the stream.
        case descriptor(Int32)
    }

    public struct Failure: Error, CustomStringConvertible {
        public var path: String
        public var errno: Int32
        public var description: String { "cannot run \(path): \(String(cString: strerror(errno)))" }
    }

    /// Starts `path` with `arguments` (argv[0] is `path`) and returns its
    /// process id; the caller reaps it. With `newProcessGroup` the child
    /// leads a process group of its own, so a signal to `-pid` reaches
    /// everything it starts.
    public static func start(
        _ path: String,
        _ arguments: [String],
        environment: [String: String],
        standardInput: Stream = .null,
        standardOutput: Stream = .null,
        standardError: Stream = .null,
        newProcessGroup: Bool = false
    ) throws(Failure) -> pid_t {
        let cArguments = ([path] + arguments).map { strdup($0) } + [nil]
        let cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArguments.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (descriptor, stream) in [(Int32(0), standardInput), (1, standardOutput), (2, standardError)] {
            switch stream {
            case .null:
                posix_spawn_file_actions_addopen(&actions, descriptor, "/dev/null", descriptor == 0 ? O_RDONLY : O_WRONLY, 0)
            case .file(let file):
                posix_spawn_file_actions_addopen(&actions, descriptor, file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            case .appending(let file):
                posix_spawn_file_actions_addopen(&actions, descriptor, file, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            case .descriptor(let source):
                posix_spawn_file_actions_adddup2(&actions, source, descriptor)
            }
        }
        closeInherited(&actions)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal handling and an empty mask, whatever the parent set.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        var flags = Int32(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        if newProcessGroup {
            flags |= Int32(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        var pid: pid_t = 0
        let status = posix_spawn(&pid, path, &actions, &attributes, cArguments, cEnvironment)
        guard status == 0 else { throw Failure(path: path, errno: status) }
        return pid
    }

    /// Adds "close every descriptor from 3 up" to `actions`:
    /// posix_spawn_file_actions_addclosefrom_np (glibc 2.34+, looked up at
    /// run time because Swift's Glibc module does not declare it), else one
    /// close action per descriptor open now.
    private static func closeInherited(_ actions: inout posix_spawn_file_actions_t) {
        #if canImport(Glibc)
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let symbol = closeFromSymbol {
            let closeFrom = unsafeBitCast(symbol, to: CloseFrom.self)
            if closeFrom(&actions, 3) == 0 { return }
        }
        guard let directory = opendir("/proc/self/fd") else { return }
        defer { closedir(directory) }
        let own = dirfd(directory)
        var open: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let descriptor = Int32(name), descriptor > 2, descriptor != own { open.append(descriptor) }
        }
        for descriptor in open { posix_spawn_file_actions_addclose(&actions, descriptor) }
        #endif
    }

    #if canImport(Glibc)
    private nonisolated(unsafe) static let closeFromSymbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")  // RTLD_DEFAULT
    #endif

    /// Waits for `pid` to exit (blocking this thread); its exit code, or
    /// 128 + the signal that killed it, as a shell reports it.
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return exitCode(status)
    }

    /// Whether `pid` has exited, without blocking; its code if so.
    public static func poll(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        return exitCode(status)
    }

    private static func exitCode(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}
