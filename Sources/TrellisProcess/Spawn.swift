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

    /// Starts `path` with `arguments` and returns its process id; the caller
    /// reaps it. argv[0] is `argument0`, by default `path`. With
    /// `newProcessGroup` the child leads a process group of its own, so a
    /// signal to `-pid` reaches everything it starts. With
    /// `workingDirectory` the child starts there (a relative `path` and the
    /// streams' file names are resolved in the parent's directory, before
    /// the change); a directory that cannot be entered fails the start with
    /// that directory's errno.
    public static func start(
        _ path: String,
        _ arguments: [String],
        argument0: String? = nil,
        environment: [String: String],
        standardInput: Stream = .null,
        standardOutput: Stream = .null,
        standardError: Stream = .null,
        workingDirectory: String? = nil,
        newProcessGroup: Bool = false
    ) throws(Failure) -> pid_t {
        let cArguments = ([argument0 ?? path] + arguments).map { strdup($0) } + [nil]
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
        if let workingDirectory {
            try changeDirectory(&actions, to: workingDirectory)
        }

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

    /// Adds "change to `directory`" to `actions`:
    /// posix_spawn_file_actions_addchdir_np (glibc 2.29+, looked up at run
    /// time like addclosefrom_np). Without it the start fails with ENOSYS
    /// rather than running the child in the wrong place.
    private static func changeDirectory(_ actions: inout posix_spawn_file_actions_t, to directory: String) throws(Failure) {
        #if canImport(Glibc)
        typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
        guard let symbol = changeDirectorySymbol else { throw Failure(path: directory, errno: ENOSYS) }
        let addChangeDirectory = unsafeBitCast(symbol, to: ChangeDirectory.self)
        let status = directory.withCString { addChangeDirectory(&actions, $0) }
        guard status == 0 else { throw Failure(path: directory, errno: status) }
        #else
        guard posix_spawn_file_actions_addchdir_np(&actions, directory) == 0 else { throw Failure(path: directory, errno: errno) }
        #endif
    }

    #if canImport(Glibc)
    private nonisolated(unsafe) static let closeFromSymbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")  // RTLD_DEFAULT
    private nonisolated(unsafe) static let changeDirectorySymbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np")
    fileprivate nonisolated(unsafe) static let pipe2Symbol = dlsym(nil, "pipe2")
    #endif

    /// A pipe whose both ends are close-on-exec: give `writeEnd` (or
    /// `readEnd`) to a child as `.descriptor`, which duplicates it onto the
    /// child's stream without the flag, then close it in the parent. No
    /// other child, spawned here or forked elsewhere, inherits either end.
    public struct Pipe: Sendable {
        public var readEnd: Int32
        public var writeEnd: Int32

        public init() throws(Failure) {
            var descriptors: [Int32] = [-1, -1]
            #if canImport(Glibc)
            // pipe2 sets the flag atomically; Swift's Glibc module hides it
            // behind _GNU_SOURCE, so it is looked up like addclosefrom_np.
            typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
            if let symbol = Spawn.pipe2Symbol {
                guard unsafeBitCast(symbol, to: Pipe2.self)(&descriptors, O_CLOEXEC) == 0 else { throw Failure(path: "pipe", errno: errno) }
                readEnd = descriptors[0]
                writeEnd = descriptors[1]
                return
            }
            #endif
            // Not atomic, but children spawned here close every inherited
            // descriptor anyway.
            guard pipe(&descriptors) == 0 else { throw Failure(path: "pipe", errno: errno) }
            for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
            readEnd = descriptors[0]
            writeEnd = descriptors[1]
        }
    }

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

    /// How a child ended.
    public enum Termination: Sendable, Hashable {
        /// It called exit with this code.
        case exited(Int32)
        /// A signal killed it.
        case signalled(Int32)

        init(status: Int32) {
            let signal = status & 0x7F
            self = signal == 0 ? .exited((status >> 8) & 0xFF) : .signalled(signal)
        }
    }

    /// Blocks this thread until `pid` has exited, without reaping it: until
    /// `reap`, the child stays a zombie and its process id (and the id of
    /// the process group it leads) cannot be reused, so signalling `-pid`
    /// after its exit still reaches only its own group.
    public static func waitUntilExited(_ pid: pid_t) {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
    }

    /// Reaps `pid` (blocking until it exits); how it ended.
    public static func reap(_ pid: pid_t) -> Termination {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return Termination(status: status)
    }

    private static func exitCode(_ status: Int32) -> Int32 {
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }
}
