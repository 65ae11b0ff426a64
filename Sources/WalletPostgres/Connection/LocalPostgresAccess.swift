import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Who may connect to a LocalPostgres cluster: a client that presents the
/// superuser password (scram-sha-256), over the unix socket or 127.0.0.1.
///
/// The password is random, made with the cluster, and kept in
/// `<data directory>/superuser.password`, mode 0600, owned by the user the
/// cluster runs as (postgres when we are root: initdb reads it then, and root
/// reads it anyway). The URL `start` returns carries it; nothing logs it.
///
/// A cluster made by an older build trusted every local connection and has
/// no password file. It is upgraded in place on start rather than left open:
/// the password is set while trust still lets us in, pg_hba.conf is replaced,
/// and the server reloads. A start that finds the server still trusting (an
/// upgrade cut short) does the same again.
extension LocalPostgres {
    enum Access {
        /// Bytes of randomness in a generated password, written as hex.
        static let passwordBytes = 16
        /// How long the server may take to apply a reloaded pg_hba.conf.
        static let reloadTimeoutSeconds = 10

        static let hostBasedAuthentication = """
            # Written by LocalPostgres: every connection, over the unix socket or
            # 127.0.0.1 (the only address it listens on), presents the superuser
            # password. The password is in ../superuser.password.
            # TYPE  DATABASE     USER  ADDRESS       METHOD
            local   all          all                 scram-sha-256
            host    all          all   127.0.0.1/32  scram-sha-256
            local   replication  all                 scram-sha-256
            host    replication  all   127.0.0.1/32  scram-sha-256

            """

        /// The password in the cluster's password file, or nil when there is none.
        static func readPassword(_ layout: Layout) throws -> String? {
            let path = layout.passwordFile
            let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            guard descriptor >= 0 else {
                if errno == ENOENT { return nil }
                throw LocalPostgresError("cannot open \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(descriptor) }
            var status = stat()
            guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
                throw LocalPostgresError("\(path) is not a regular file")
            }
            // A copy or an editor may have widened it; only its owner reads it.
            if status.st_mode & 0o077 != 0, fchmod(descriptor, 0o600) != 0 {
                throw LocalPostgresError("cannot make \(path) private: \(String(cString: strerror(errno)))")
            }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 256)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count > 0 {
                    bytes += buffer[..<count]
                } else if count == 0 {
                    break
                } else if errno != EINTR {
                    throw LocalPostgresError("cannot read \(path): \(String(cString: strerror(errno)))")
                }
            }
            // initdb --pwfile takes the first line; so do we.
            let line = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            guard !line.isEmpty, !line.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 } == true })
            else {
                throw LocalPostgresError("\(path) holds no usable password (one line, no spaces)")
            }
            return line
        }

        /// Generates a password and writes it to the password file, which
        /// must not exist: created 0600 and renamed into place, so the file
        /// is never readable by others nor seen half written.
        static func createPassword(_ layout: Layout) throws -> String {
            var generator = SystemRandomNumberGenerator()
            let password = (0..<passwordBytes).map { _ in
                let byte = UInt8.random(in: 0...255, using: &generator)
                return (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }.joined()
            precondition(password.count == passwordBytes * 2, "a password is two hex digits per byte")
            try writePrivateFile(layout.passwordFile, contents: password + "\n")
            return password
        }

        /// Replaces the cluster's pg_hba.conf with `hostBasedAuthentication`.
        static func writeHostBasedAuthentication(_ layout: Layout) throws {
            try writePrivateFile(layout.cluster + "/pg_hba.conf", contents: hostBasedAuthentication)
        }

        /// Makes sure the running server refuses a client without the
        /// password. If it lets one in (a cluster from an older build, or an
        /// upgrade cut short), sets the password on `connection`'s server,
        /// replaces pg_hba.conf, reloads, and waits until a client without the
        /// password is refused.
        static func closeIfTrusting(_ layout: Layout, port: Int, password: String, on connection: PostgresConnection)
            throws
        {
            guard acceptsWithoutPassword(layout, port: port) else { return }
            let verifier = try connection.scramVerifier(password: password, user: LocalPostgres.superuser)
            precondition(!verifier.contains("'"), "a SCRAM verifier is base64 and punctuation, never a quote")
            try connection.executeScript(
                "ALTER ROLE \(LocalPostgres.quotedIdentifier(LocalPostgres.superuser)) PASSWORD '\(verifier)'")
            try writeHostBasedAuthentication(layout)
            _ = try connection.execute("SELECT pg_reload_conf()")
            // The postmaster applies the file when it handles the signal, not before pg_reload_conf returns.
            let deadline = Date().addingTimeInterval(TimeInterval(reloadTimeoutSeconds))
            while acceptsWithoutPassword(layout, port: port) {
                guard Date() < deadline else {
                    throw LocalPostgresError(
                        "the cluster in \(layout.root) still lets clients in without a password"
                            + " \(reloadTimeoutSeconds) s after reloading pg_hba.conf")
                }
                usleep(50_000)
            }
        }

        /// Whether a client with no password gets in over the unix socket.
        static func acceptsWithoutPassword(_ layout: Layout, port: Int) -> Bool {
            // key=value so that an explicit empty password keeps libpq from
            // taking PGPASSWORD; a passfile that cannot exist (/dev/null is
            // not a directory) keeps it from reading ~/.pgpass.
            let probe = [
                "host=\(keywordQuoted(layout.socketDirectory))", "port=\(port)", "dbname=postgres",
                "user=\(LocalPostgres.superuser)", "password=''", "passfile='/dev/null/none'",
            ].joined(separator: " ")
            return (try? PostgresConnection(url: probe)) != nil
        }

        /// Writes `contents` to `path` through a temporary file created 0600
        /// and renamed over it, given to the postgres user when we are root.
        private static func writePrivateFile(_ path: String, contents: String) throws {
            let temporary = path + ".new"
            if unlink(temporary) != 0, errno != ENOENT {
                throw LocalPostgresError("cannot remove \(temporary): \(String(cString: strerror(errno)))")
            }
            let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard descriptor >= 0 else {
                throw LocalPostgresError("cannot create \(temporary): \(String(cString: strerror(errno)))")
            }
            var written = 0
            let bytes = Array(contents.utf8)
            while written < bytes.count {
                let count = bytes[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                if count < 0 {
                    guard errno == EINTR else {
                        let reason = String(cString: strerror(errno))
                        close(descriptor)
                        throw LocalPostgresError("cannot write \(temporary): \(reason)")
                    }
                    continue
                }
                written += count
            }
            guard fsync(descriptor) == 0 else {
                let reason = String(cString: strerror(errno))
                close(descriptor)
                throw LocalPostgresError("cannot flush \(temporary): \(reason)")
            }
            close(descriptor)
            try Ownership.giveToPostgresIfRoot(temporary)
            guard rename(temporary, path) == 0 else {
                throw LocalPostgresError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))")
            }
        }

        /// key=value quoting: single quotes, with `\` and `'` backslash-escaped.
        private static func keywordQuoted(_ value: String) -> String {
            "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        }
    }
}
