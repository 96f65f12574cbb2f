import Foundation
import TrellisProcess
import TrellisStore

#if canImport(Glibc)
import Glibc
#endif

/// The PostgreSQL server `trellisd standalone` runs for itself: Debian's
/// server binaries (`/usr/lib/postgresql/<major>/bin`, package
/// `postgresql-15`), a cluster `initdb`-ed into `<data>/postgres` on the
/// first start and reused afterwards, started with `pg_ctl` and stopped
/// with `pg_ctl stop -m fast`.
///
/// - Connections: a Unix socket in a private directory (`<data>/run`, mode
///   0700; a directory under /tmp when that path is too long for a socket),
///   trusted, since only the cluster's owner (and root) can enter it.
///   TCP on 127.0.0.1 only when asked for (`tcpPort`; 0 picks a free port),
///   with password authentication (SCRAM): the superuser `postgres`'s
///   password is in `<data>/postgres-password`.
/// - As root: PostgreSQL refuses to run as root, so `initdb`, `pg_ctl` and
///   the server run as the `postgres` user (`runuser -u postgres --`) and
///   the cluster's directories belong to it; the data directory must be
///   reachable by that user.
/// - Orphans: a server left running by a `trellisd standalone` that was
///   killed (SIGKILL) is stopped before a new one starts; the caller holds
///   the data directory's lock, so such a server has no owner left.
/// - Children are spawned through `TrellisProcess.Spawn` (they inherit no
///   descriptor); `pg_ctl` detaches the server into a session of its own, so
///   Ctrl-C in the terminal reaches `trellisd` only, which then stops the
///   server in its turn.
final class EmbeddedPostgres: Sendable {
    /// Why the embedded server could not be prepared, started or stopped.
    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// Who owns the cluster and runs its programs.
    enum Owner: Sendable {
        /// The caller (not root).
        case current
        /// The `postgres` user, entered with runuser (the caller is root).
        case postgresUser(uid: uid_t, gid: gid_t, runuser: String)
    }

    /// The database Trellis keeps its state in.
    static let databaseName = "trellis"

    /// The standalone data directory (holds the cluster and its files).
    let directory: String
    /// The cluster (PGDATA): `<directory>/postgres`.
    let clusterDirectory: String
    /// The server's log: `<directory>/postgres.log`.
    let logFile: String
    /// What initdb and pg_ctl said: `<directory>/postgres-setup.log`.
    let toolLogFile: String
    /// The superuser's password for TCP connections.
    let passwordFile: String
    /// Holds the binaries (`initdb`, `pg_ctl`, `postgres`).
    let binDirectory: String
    let owner: Owner
    /// nil: Unix socket only; 0: a free TCP port on 127.0.0.1; else that port.
    let requestedTCPPort: Int?
    private let started = SharedState()

    /// Finds the binaries and the owner; touches nothing yet.
    init(directory: String, binDirectory: String?, tcpPort: Int?) throws(Failure) {
        self.directory = directory
        clusterDirectory = directory + "/postgres"
        logFile = directory + "/postgres.log"
        toolLogFile = directory + "/postgres-setup.log"
        passwordFile = directory + "/postgres-password"
        requestedTCPPort = tcpPort
        self.binDirectory = try Self.locateBinaries(binDirectory, existingCluster: directory + "/postgres")
        owner = try Self.findOwner()
    }

    // MARK: Binaries and owner

    /// `override`, else the highest `/usr/lib/postgresql/<major>/bin` with
    /// `initdb` (the major of an existing cluster first).
    static func locateBinaries(_ override: String?, existingCluster: String) throws(Failure) -> String {
        let tools = ["initdb", "pg_ctl", "postgres"]
        if let override {
            for tool in tools where !FileManager.default.isExecutableFile(atPath: override + "/" + tool) {
                throw Failure("--postgres-bin-dir \(override) has no executable \(tool)")
            }
            return override
        }
        let root = "/usr/lib/postgresql"
        let majors = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [])
            .filter { major in tools.allSatisfy { FileManager.default.isExecutableFile(atPath: "\(root)/\(major)/bin/\($0)") } }
            .sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }
        let wanted = (try? String(contentsOfFile: existingCluster + "/PG_VERSION", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        if let wanted, majors.contains(wanted) { return "\(root)/\(wanted)/bin" }
        guard let best = majors.first else {
            throw Failure("""
                no PostgreSQL server binaries (initdb, pg_ctl, postgres) under \(root)/*/bin: \
                install the Debian package postgresql-15 (apt-get install postgresql-15, or run ./scripts/setup as root), \
                or name a directory with --postgres-bin-dir
                """)
        }
        if let wanted {
            throw Failure("the cluster in \(existingCluster) was made by PostgreSQL \(wanted), but only PostgreSQL \(majors.joined(separator: ", ")) is installed: install postgresql-\(wanted)")
        }
        return "\(root)/\(best)/bin"
    }

    private static func findOwner() throws(Failure) -> Owner {
        guard getuid() == 0 else { return .current }
        guard let entry = getpwnam("postgres") else {
            throw Failure("running as root, PostgreSQL must run as the user postgres, which does not exist: install the Debian package postgresql-15, which creates it")
        }
        guard let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw Failure("running as root, PostgreSQL must run as the user postgres, but runuser is missing: install the Debian package util-linux")
        }
        return .postgresUser(uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid, runuser: runuser)
    }

    // MARK: Preparing

    /// Makes the cluster if there is none yet (`initdb`); true when it did.
    /// The data directory must exist and be writable.
    func prepare() async throws(Failure) -> Bool {
        let fileManager = FileManager.default
        if case .postgresUser = owner {
            // The postgres user must reach the cluster through the data
            // directory (which holds tokens: traverse only, no listing).
            chmod(directory, 0o711)
            let reach = await run(tool: "/usr/bin/test", ["-x", directory], asOwner: true)
            if reach != 0 {
                throw Failure("""
                    running as root, PostgreSQL runs as the user postgres, which cannot reach \(directory) \
                    (a parent directory is not searchable by others, as /root is): choose a --data-dir it can reach, \
                    such as /var/lib/trellis
                    """)
            }
        }
        if fileManager.fileExists(atPath: clusterDirectory + "/PG_VERSION") {
            try ensureOwned([clusterDirectory])
            return false
        }
        if let contents = try? fileManager.contentsOfDirectory(atPath: clusterDirectory), !contents.isEmpty {
            throw Failure("\(clusterDirectory) is not empty but holds no PostgreSQL cluster (no PG_VERSION): move it away or choose another --data-dir")
        }
        do {
            try fileManager.createDirectory(atPath: clusterDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw Failure("cannot create \(clusterDirectory): \(error.localizedDescription)")
        }
        let password = Self.randomHex(bytes: 24)
        guard fileManager.createFile(atPath: passwordFile, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600]) else {
            throw Failure("cannot write \(passwordFile)")
        }
        try ensureOwned([clusterDirectory, passwordFile])
        let status = await run(tool: binDirectory + "/initdb", [
            "-D", clusterDirectory, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + passwordFile,
        ], asOwner: true)
        guard status == 0 else {
            // initdb removes what it made on failure; leave an empty directory.
            throw Failure("initdb failed (exit \(status)) in \(clusterDirectory):\n\(tail(of: toolLogFile))")
        }
        return true
    }

    /// As root, gives `paths` to the postgres user.
    private func ensureOwned(_ paths: [String]) throws(Failure) {
        guard case .postgresUser(let uid, let gid, _) = owner else { return }
        for path in paths where chown(path, uid, gid) != 0 {
            throw Failure("cannot give \(path) to the user postgres: \(String(cString: strerror(errno)))")
        }
    }

    // MARK: Starting and stopping

    /// Where the server listens once started.
    struct Listening: Sendable {
        /// The directory of the Unix socket.
        var socketDirectory: String
        /// The port number (in the socket's name; TCP too when `tcp`).
        var port: Int
        var tcp: Bool
        /// The libpq connection string of Trellis's database, over the socket.
        var url: String
    }

    /// Starts the server (stopping an orphan left by a killed standalone
    /// first) and creates Trellis's database when missing.
    func start() async throws(Failure) -> Listening {
        if FileManager.default.fileExists(atPath: clusterDirectory + "/postmaster.pid"),
           await run(tool: binDirectory + "/pg_ctl", ["-D", clusterDirectory, "status"], asOwner: true) == 0 {
            // We hold the data directory's lock: nobody owns that server.
            _ = await run(tool: binDirectory + "/pg_ctl", ["-D", clusterDirectory, "-m", "fast", "-w", "-t", "60", "stop"], asOwner: true)
        }
        let socketDirectory = try makeSocketDirectory()
        if !FileManager.default.fileExists(atPath: logFile) {
            _ = FileManager.default.createFile(atPath: logFile, contents: nil, attributes: [.posixPermissions: 0o640])
        }
        try ensureOwned([logFile])

        var attempts = requestedTCPPort == 0 ? 3 : 1
        while true {
            attempts -= 1
            let port: Int
            var options = "-k \(Self.shellQuoted(socketDirectory)) -c unix_socket_permissions=0700"
            if let requested = requestedTCPPort {
                port = requested == 0 ? try Self.freeLoopbackPort() : requested
                if requested != 0, !Self.loopbackPortIsFree(port) {
                    throw Failure("cannot listen on 127.0.0.1:\(port) for PostgreSQL: the port is in use (choose another --postgres-port, or 0 for a free one)")
                }
                options += " -p \(port) -c listen_addresses=127.0.0.1"
            } else {
                port = 5432  // names the socket only; nothing listens on TCP
                options += " -p \(port) -c listen_addresses=''"
            }
            let status = await run(tool: binDirectory + "/pg_ctl", [
                "-D", clusterDirectory, "-l", logFile, "-w", "-t", "120", "-o", options, "start",
            ], asOwner: true)
            if status == 0 {
                let url = "host=\(Self.conninfoQuoted(socketDirectory)) port=\(port) user=postgres dbname=\(Self.databaseName)"
                try await createDatabase(socketDirectory: socketDirectory, port: port)
                return Listening(socketDirectory: socketDirectory, port: port, tcp: requestedTCPPort != nil, url: url)
            }
            if attempts > 0 { continue }
            throw Failure("PostgreSQL did not start (pg_ctl exit \(status)); its log, \(logFile), ends with:\n\(tail(of: logFile))\n\(tail(of: toolLogFile, lines: 5))")
        }
    }

    /// `pg_ctl stop -m fast` (then `-m immediate` if that fails); the data is
    /// kept. Safe to call when the server never started.
    func stop() async {
        guard FileManager.default.fileExists(atPath: clusterDirectory + "/postmaster.pid") else {
            removeTemporarySocketDirectory()
            return
        }
        let pgCtl = binDirectory + "/pg_ctl"
        if await run(tool: pgCtl, ["-D", clusterDirectory, "-m", "fast", "-w", "-t", "60", "stop"], asOwner: true) != 0 {
            _ = await run(tool: pgCtl, ["-D", clusterDirectory, "-m", "immediate", "-w", "-t", "30", "stop"], asOwner: true)
        }
        removeTemporarySocketDirectory()
    }

    /// `<data>/run`, or a directory of its own under /tmp when a socket path
    /// there would exceed the 107 bytes a Unix socket's name may have.
    private func makeSocketDirectory() throws(Failure) -> String {
        var socketDirectory = directory + "/run"
        if (socketDirectory + "/.s.PGSQL.65535").utf8.count > 100 {
            var template = Array("/tmp/trellis-pg-XXXXXX".utf8CString)
            guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
                throw Failure("cannot create a socket directory under /tmp: \(String(cString: strerror(errno)))")
            }
            socketDirectory = String(cString: made)
            started.set(temporarySocketDirectory: socketDirectory)
        } else {
            do {
                try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
            } catch {
                throw Failure("cannot create \(socketDirectory): \(error.localizedDescription)")
            }
        }
        chmod(socketDirectory, 0o700)
        try ensureOwned([socketDirectory])
        return socketDirectory
    }

    private func removeTemporarySocketDirectory() {
        if let temporary = started.temporarySocketDirectory { try? FileManager.default.removeItem(atPath: temporary) }
    }

    private func createDatabase(socketDirectory: String, port: Int) async throws(Failure) {
        let admin = "host=\(Self.conninfoQuoted(socketDirectory)) port=\(port) user=postgres dbname=postgres"
        do {
            let connection = try await PostgresConnection.connect(admin)
            defer { Task { await connection.close() } }
            let name = Self.databaseName
            try await connection.withSession { session in
                let rows = try session.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])
                if rows.count == 0 { try session.execute(script: "CREATE DATABASE \(name)") }
            }
        } catch {
            throw Failure("cannot create the database \(Self.databaseName): \(error)")
        }
    }

    // MARK: Running the tools

    /// Runs `tool` (as the cluster's owner when `asOwner`), its output
    /// appended to the tool log; its exit status.
    private func run(tool: String, _ arguments: [String], asOwner: Bool) async -> Int32 {
        var path = tool
        var argv = arguments
        if asOwner, case .postgresUser(_, _, let runuser) = owner {
            path = runuser
            argv = ["-u", "postgres", "--", tool] + arguments
        }
        // PG* variables (PGDATA, PGPORT, PGHOST…) would redirect the tools.
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PG") }
        environment["LC_ALL"] = "C.UTF-8"
        environment["LANG"] = "C.UTF-8"
        // Run from a directory the postgres user can enter.
        let pid: pid_t
        do {
            pid = try Spawn.start(
                path, argv, environment: environment, standardOutput: .appending(toolLogFile), standardError: .appending(toolLogFile),
                workingDirectory: "/")
        } catch {
            appendToolLog("cannot run \(path): \(error)\n")
            return 127
        }
        return await withCheckedContinuation { continuation in
            Thread.detachNewThread { continuation.resume(returning: Spawn.wait(pid)) }
        }
    }

    private func appendToolLog(_ text: String) {
        if let handle = FileHandle(forWritingAtPath: toolLogFile) {
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
            try? handle.close()
        }
    }

    private func tail(of file: String, lines: Int = 15) -> String {
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).map { "  " + $0 }.joined(separator: "\n")
    }

    // MARK: Helpers

    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    static func shellQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    static func conninfoQuoted(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }

    /// A port the kernel says is free on 127.0.0.1 now.
    static func freeLoopbackPort() throws(Failure) -> Int {
        guard let port = bindLoopback(port: 0) else { throw Failure("cannot find a free port on 127.0.0.1: \(String(cString: strerror(errno)))") }
        return port
    }

    static func loopbackPortIsFree(_ port: Int) -> Bool { bindLoopback(port: port) != nil }

    /// Binds a TCP socket to 127.0.0.1:`port` and closes it; the port bound.
    private static func bindLoopback(port: Int) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { return nil }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// What a started server leaves to clean up besides the cluster.
private final class SharedState: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var _temporarySocketDirectory: String?

    func set(temporarySocketDirectory: String) { lock.withLock { _temporarySocketDirectory = temporarySocketDirectory } }
    var temporarySocketDirectory: String? { lock.withLock { _temporarySocketDirectory } }
}
