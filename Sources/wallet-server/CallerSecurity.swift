import Foundation
import WalletGRPC

/// Who may call: the TLS material the transport serves and the permissions
/// the interceptors enforce, loaded from their files at start and again on
/// SIGHUP. A file that fails to load at start stops the server; on reload it
/// keeps the previous one and says why.
final class CallerSecurity: Sendable {
    let tls: TLSCredentials?
    let policy: AccessPolicy
    let limiter = RateLimiter()
    private let options: Options

    init(_ options: Options) throws {
        self.options = options
        do {
            tls = try Self.loadTLS(options).map { material throws(TLSError) in try TLSCredentials(material) }
        } catch let error as TLSError {
            throw StartupError("TLS: \(error.reason)")
        }
        if let file = options.permissionsFile {
            do {
                policy = AccessPolicy(try Self.loadPermissions(file))
            } catch let error as PermissionsError {
                throw StartupError("permissions file \(file): \(error.reason)")
            }
        } else {
            policy = AccessPolicy(nil)
        }
    }

    /// Authorization, then the rate limit: a refused call costs no token.
    var interceptors: [any CallInterceptor] {
        [Authorization(policy: policy), RateLimit(policy: policy, limiter: limiter)]
    }

    /// One line for the startup log.
    var summary: String {
        var parts: [String] = []
        switch (options.tlsCertificateFile, options.tlsClientCAFile) {
        case (nil, _): parts.append("plaintext")
        case (_, nil): parts.append("TLS without client certificates (calls carry no identity)")
        case (_, let ca?): parts.append("mutual TLS (client CA \(ca))")
        }
        if let file = options.permissionsFile, let permissions = policy.permissions {
            parts.append("permissions \(file) (\(permissions.grants.count) identities)")
        } else {
            parts.append("no permissions file: every caller that passes the transport may call every method")
        }
        return parts.joined(separator: ", ")
    }

    /// Warns of methods the permissions name that this server does not serve.
    func warnOfUnservedMethods(served: Set<String>) {
        guard let permissions = policy.permissions else { return }
        let unserved = permissions.methodsNotServed(served)
        if !unserved.isEmpty {
            Log.server.notice(
                "note: the permissions name methods this server does not serve: \(unserved.joined(separator: ", "))")
        }
    }

    /// SIGHUP: reloads each file; one that fails keeps what was loaded.
    func reload() {
        if let tls {
            do {
                guard let material = try Self.loadTLS(options) else { return }
                try tls.reload(material)
                Log.server.info("reloaded TLS certificate, key and client CA: new connections use them")
            } catch let error as TLSError {
                Log.server.error("TLS reload failed: \(error.reason); keeping the previous certificates")
            } catch {
                Log.server.error("TLS reload failed: \(error); keeping the previous certificates")
            }
        }
        if let file = options.permissionsFile {
            do {
                let permissions = try Self.loadPermissions(file)
                policy.replace(permissions)
                limiter.retain(only: Set(permissions.grants.keys))
                Log.server.info("reloaded permissions from \(file) (\(permissions.grants.count) identities)")
            } catch let error as PermissionsError {
                Log.server.error("permissions reload failed: \(file): \(error.reason); keeping the previous permissions")
            } catch {
                Log.server.error("permissions reload failed: \(file): \(error); keeping the previous permissions")
            }
        }
    }

    private static func loadTLS(_ options: Options) throws -> TLSMaterial? {
        guard let certificate = options.tlsCertificateFile, let key = options.tlsKeyFile else { return nil }
        return TLSMaterial(
            certificateChainPEM: try read(certificate, "TLS certificate"), keyPEM: try read(key, "TLS key"),
            clientCAPEM: try options.tlsClientCAFile.map { try read($0, "TLS client CA") })
    }

    private static func loadPermissions(_ file: String) throws -> Permissions {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw PermissionsError(reason: "cannot read the file")
        }
        return try Permissions.parse(Array(data))
    }

    private static func read(_ file: String, _ what: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TLSError(reason: "cannot read the \(what) file \(file)")
        }
        return String(decoding: data, as: UTF8.self)
    }
}

/// A configuration the server cannot start with.
struct StartupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
