import Foundation
import WalletDomain

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A Postgres 15 cluster in a directory of its own, for the server's embedded
/// default and for tests.
///
/// Layout under `dataDirectory`:
///   cluster/            PGDATA (initdb output)
///   superuser.password  the superuser's password, mode 0600 (see `Access`)
///   socket/             unix socket directory (or /tmp/wallet-pg-<hash> if the path is too long)
///   postgres.log        server log
///   start.lock          flock held while starting, so concurrent starters don't race initdb
///
/// The cluster listens only on the unix socket and 127.0.0.1, and lets in
/// only a client that presents the superuser password, which the URL `start`
/// returns carries. fsync stays on: this is where money is kept.
package struct LocalPostgres {
    package static let superuser = "postgres"
    /// How long to wait for the server to accept connections after starting it.
    package static let readyTimeoutSeconds = 60
    /// sun_path is 108 bytes including the terminating NUL.
    static let socketPathBytesMax = 107

    /// Makes sure the cluster exists, runs on `port`, asks for the password,
    /// and has `databaseName`; returns a libpq URL for that database over the
    /// unix socket, password included (never log it).
    package static func start(dataDirectory: String, port: Int, databaseName: String) throws -> String {
        precondition((1...65_535).contains(port), "port out of range")
        let layout = try Layout(dataDirectory: dataDirectory, port: port)
        let tools = try Tools.locate()
        try layout.prepareDirectories()

        let lock = try FileLock(path: layout.lockFile)
        defer { lock.release() }

        let clusterExisted = FileManager.default.fileExists(atPath: layout.cluster + "/PG_VERSION")
        let storedPassword = try Access.readPassword(layout)
        let password = try storedPassword ?? Access.createPassword(layout)
        if !clusterExisted {
            try tools.run(
                tools.initdb,
                [
                    "--pgdata=\(layout.cluster)", "--username=\(superuser)", "--auth=scram-sha-256",
                    "--pwfile=\(layout.passwordFile)", "--encoding=UTF8", "--no-locale",
                ],
                in: layout.root
            )
            try appendIncludeDirective(layout)
            try Access.writeHostBasedAuthentication(layout)
        }

        switch try tools.status(layout) {
        case .running:
            let runningPort = runningPort(layout)
            guard runningPort == port else {
                throw LocalPostgresError(
                    "cluster in \(layout.root) is already running on port \(runningPort.map(String.init) ?? "?"), not \(port)"
                )
            }
        case .stopped:
            try writeLocalSettings(layout)
            try tools.run(
                tools.pgCtl,
                [
                    "start", "--pgdata=\(layout.cluster)", "--log=\(layout.logFile)", "--wait",
                    "--timeout=\(readyTimeoutSeconds)",
                ],
                in: layout.root
            )
        }

        let serverURL = url(
            socketDirectory: layout.socketDirectory, port: port, databaseName: "postgres", password: password)
        let connection: PostgresConnection
        do {
            connection = try waitUntilReady(serverURL)
        } catch {
            // An older build's cluster trusts any password; one that refuses
            // a password made just now was made with another, whose file is
            // gone. Drop the new file so that the next start says so again.
            guard clusterExisted && storedPassword == nil else { throw error }
            try? FileManager.default.removeItem(atPath: layout.passwordFile)
            throw LocalPostgresError(
                "cannot connect to the cluster in \(layout.root) with a new password: if it was made with"
                    + " a password, \(layout.passwordFile) is lost (\(error))")
        }
        try Access.closeIfTrusting(layout, port: port, password: password, on: connection)
        try createDatabaseIfMissing(databaseName, on: connection)
        return url(
            socketDirectory: layout.socketDirectory, port: port, databaseName: databaseName, password: password)
    }

    /// Stops the cluster (fast shutdown: rolls back open transactions). Does
    /// nothing when there is no cluster or it is not running.
    package static func stop(dataDirectory: String) throws {
        let layout = try Layout(dataDirectory: dataDirectory, port: nil)
        guard FileManager.default.fileExists(atPath: layout.cluster + "/PG_VERSION") else { return }
        let tools = try Tools.locate()
        guard try tools.status(layout) == .running else { return }
        try tools.run(tools.pgCtl, ["stop", "--pgdata=\(layout.cluster)", "--mode=fast", "--wait"], in: layout.root)
    }

    /// A libpq URL for a database in a local cluster reached over its socket.
    package static func url(socketDirectory: String, port: Int, databaseName: String, password: String) -> String {
        "postgresql://\(superuser):\(percentEncoded(password, allowing: unreserved))@/\(percentEncoded(databaseName))"
            + "?host=\(percentEncoded(socketDirectory))&port=\(port)"
    }

    /// Where the cluster in `dataDirectory` puts its unix socket.
    package static func socketDirectory(dataDirectory: String) throws -> String {
        try Layout(dataDirectory: dataDirectory, port: nil).socketDirectory
    }

    /// Double-quoted SQL identifier.
    package static func quotedIdentifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    // MARK: Steps

    private static func appendIncludeDirective(_ layout: Layout) throws {
        // Settings that depend on start() arguments live in their own file, rewritten on each start.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: layout.cluster + "/postgresql.conf"))
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(
            contentsOf: Data("\n# Added by LocalPostgres.\ninclude_if_exists = 'wallet_local.conf'\n".utf8))
    }

    private static func writeLocalSettings(_ layout: Layout) throws {
        let path = layout.cluster + "/wallet_local.conf"
        let settings = """
            # Written by LocalPostgres on every start; edits are overwritten.
            port = \(layout.port ?? 5432)
            listen_addresses = '127.0.0.1'
            unix_socket_directories = '\(layout.socketDirectory.replacingOccurrences(of: "'", with: "''"))'
            fsync = on
            synchronous_commit = on
            # Sized for a ledger's write stream (every setting keeps each
            # commit durable): room for the working set, so backends do not
            # evict dirty pages themselves; checkpoints every 15 minutes or
            # 4 GB of WAL rather than every 1 GB (a checkpoint's first writes
            # of each page are full-page images, and its flushes stall commits).
            shared_buffers = 512MB
            wal_buffers = 16MB
            max_wal_size = 4GB
            checkpoint_timeout = 15min
            # Each server instance holds --pool-size + 1 sessions (its lanes
            # and its event feed) and a short one for its database probe;
            # several instances, tools and the test suites (which run many
            # stores at once) passed the default 100.
            max_connections = 300

            """
        try Data(settings.utf8).write(to: URL(fileURLWithPath: path))
        try Ownership.giveToPostgresIfRoot(path)
    }

    /// The port in postmaster.pid (line 4), i.e. what the running server uses.
    private static func runningPort(_ layout: Layout) -> Int? {
        guard let text = try? String(contentsOfFile: layout.cluster + "/postmaster.pid", encoding: .utf8) else {
            return nil
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > 3 else { return nil }
        return Int(lines[3].trimmingCharacters(in: .whitespaces))
    }

    private static func waitUntilReady(_ url: String) throws -> PostgresConnection {
        let deadline = Date().addingTimeInterval(TimeInterval(readyTimeoutSeconds))
        while true {
            do {
                return try PostgresConnection(url: url)
            } catch {
                // Not yet listening, or still recovering ("the database system is starting up").
                guard error.isConnectionFailure, Date() < deadline else { throw error }
                usleep(100_000)
            }
        }
    }

    private static func createDatabaseIfMissing(_ name: String, on connection: PostgresConnection) throws {
        let existing = try connection.execute("SELECT 1 FROM pg_database WHERE datname = $1", [name])
        if existing.rowCount > 0 { return }
        do {
            try connection.executeScript("CREATE DATABASE \(quotedIdentifier(name))")
        } catch {
            // Another process created it between the check and here.
            if error.sqlState == "42P04" || error.isUniqueViolation { return }
            throw error
        }
    }

    /// RFC 3986 unreserved characters: never special anywhere in a URL.
    private static let unreserved = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"

    /// Percent-encodes all but `allowing` (by default the unreserved characters
    /// and `/`, which paths and the socket directory keep).
    private static func percentEncoded(_ text: String, allowing: String = unreserved + "/") -> String {
        text.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: allowing)) ?? text
    }
}

package struct LocalPostgresError: Error, CustomStringConvertible {
    package let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Layout

extension LocalPostgres {
    struct Layout {
        let root: String
        let cluster: String
        let logFile: String
        let lockFile: String
        let passwordFile: String
        let socketDirectory: String
        let port: Int?

        init(dataDirectory: String, port: Int?) throws {
            guard !dataDirectory.isEmpty else { throw LocalPostgresError("empty data directory") }
            let absolute =
                dataDirectory.hasPrefix("/")
                ? dataDirectory : FileManager.default.currentDirectoryPath + "/" + dataDirectory
            root = URL(fileURLWithPath: absolute).standardizedFileURL.path
            cluster = root + "/cluster"
            logFile = root + "/postgres.log"
            lockFile = root + "/start.lock"
            passwordFile = root + "/superuser.password"
            self.port = port
            socketDirectory = Self.socketDirectory(root: root)
        }

        /// `<root>/socket` when the socket file's path fits in sun_path, else
        /// a short directory under /tmp named by a stable hash of the root.
        static func socketDirectory(root: String) -> String {
            let preferred = root + "/socket"
            // ".s.PGSQL.65535" is the longest socket file name.
            if (preferred + "/.s.PGSQL.65535").utf8.count <= LocalPostgres.socketPathBytesMax {
                return preferred
            }
            return "/tmp/wallet-pg-" + String(StableHash.fnv1a(root), radix: 16)
        }

        func prepareDirectories() throws {
            let manager = FileManager.default
            for directory in [root, cluster, socketDirectory] {
                try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try Ownership.giveToPostgresIfRoot(directory)
            }
            // initdb insists on 0700 (or 0750) for PGDATA.
            try manager.setAttributes([.posixPermissions: 0o700], ofItemAtPath: cluster)
        }
    }
}

// MARK: - Running the Postgres tools

extension LocalPostgres {
    struct Tools {
        let binDirectory: String
        var initdb: String { binDirectory + "/initdb" }
        var pgCtl: String { binDirectory + "/pg_ctl" }

        static let fallbackBinDirectory = "/usr/lib/postgresql/15/bin"

        static func locate() throws -> Tools {
            var candidates: [String] = []
            if let environment = ProcessInfo.processInfo.environment["WALLET_PG_BINDIR"] {
                candidates.append(environment)
            }
            if let fromPgConfig = try? Subprocess.run("/usr/bin/env", ["pg_config", "--bindir"], in: "/"),
                fromPgConfig.status == 0
            {
                candidates.append(fromPgConfig.output.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            candidates.append(fallbackBinDirectory)
            for directory in candidates where FileManager.default.isExecutableFile(atPath: directory + "/initdb") {
                return Tools(binDirectory: directory)
            }
            throw LocalPostgresError("no initdb found in \(candidates); install postgresql-15")
        }

        enum Status { case running, stopped }

        func status(_ layout: Layout) throws -> Status {
            let command = commandLine(pgCtl, ["status", "--pgdata=\(layout.cluster)"])
            let result = try Subprocess.run(command.executable, command.arguments, in: layout.root)
            // pg_ctl status: 0 running, 3 not running, 4 no usable data directory.
            switch result.status {
            case 0: return .running
            case 3: return .stopped
            default: throw LocalPostgresError("pg_ctl status exited \(result.status): \(result.output)")
            }
        }

        /// Runs a Postgres tool, as the postgres user when we are root (initdb
        /// and pg_ctl refuse to run as root).
        func run(_ tool: String, _ arguments: [String], in directory: String) throws {
            let command = commandLine(tool, arguments)
            let result = try Subprocess.run(command.executable, command.arguments, in: directory)
            guard result.status == 0 else {
                let name = (tool as NSString).lastPathComponent
                throw LocalPostgresError("\(name) \(arguments.first ?? "") exited \(result.status): \(result.output)")
            }
        }

        private func commandLine(_ tool: String, _ arguments: [String]) -> (executable: String, arguments: [String]) {
            guard getuid() == 0 else { return (tool, arguments) }
            let runuser =
                ["/usr/sbin/runuser", "/sbin/runuser"].first {
                    FileManager.default.isExecutableFile(atPath: $0)
                } ?? "/usr/sbin/runuser"
            return (runuser, ["-u", LocalPostgres.superuser, "--", tool] + arguments)
        }
    }
}

// MARK: - Ownership and locking

enum Ownership {
    /// When running as root, hands a path to the postgres user so the server
    /// (which never runs as root) can use it.
    static func giveToPostgresIfRoot(_ path: String) throws {
        guard getuid() == 0 else { return }
        guard let account = getpwnam(LocalPostgres.superuser) else {
            throw LocalPostgresError("running as root but there is no \"postgres\" user to run the server")
        }
        guard chown(path, account.pointee.pw_uid, account.pointee.pw_gid) == 0 else {
            throw LocalPostgresError("chown \(path) to postgres failed: \(String(cString: strerror(errno)))")
        }
    }
}

/// An exclusive flock on a file, held until `release()`.
struct FileLock {
    private let descriptor: Int32

    init(path: String) throws {
        descriptor = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw LocalPostgresError("cannot open lock file \(path): \(String(cString: strerror(errno)))")
        }
        while flock(descriptor, LOCK_EX) != 0 {
            guard errno == EINTR else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                throw LocalPostgresError("cannot lock \(path): \(reason)")
            }
        }
    }

    func release() {
        close(descriptor)
    }
}
