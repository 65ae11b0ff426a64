import CGRPCShim

/// A server's transport limits, each with its unit in its name. 0 leaves
/// gRPC core's default (which for streams, idle and age is "unlimited").
package struct TransportSettings: Sendable, Equatable {
    /// Streams one connection may have open at once; more are refused
    /// (RST_STREAM REFUSED_STREAM), so a client that never reads cannot pile
    /// up unbounded calls.
    package var maxConcurrentStreams = 100
    /// A connection with no call open this long is closed (GOAWAY).
    package var maxConnectionIdleMilliseconds = 300_000
    /// A connection is closed this long after it opened (0: never), giving
    /// its open calls `maxConnectionAgeGraceMilliseconds` more.
    package var maxConnectionAgeMilliseconds = 0
    package var maxConnectionAgeGraceMilliseconds = 30_000
    /// The server pings a connection this often and closes it when no answer
    /// comes within `keepaliveTimeoutMilliseconds`.
    package var keepaliveTimeMilliseconds = 60_000
    package var keepaliveTimeoutMilliseconds = 20_000
    /// Larger request messages are refused with RESOURCE_EXHAUSTED.
    package var maxReceiveMessageBytes = 4 * 1024 * 1024
    /// The header list size a call may send.
    package var maxHeaderListBytes = 8 * 1024
    /// A connection must finish its TLS and HTTP/2 handshake within this.
    package var handshakeTimeoutMilliseconds = 10_000

    package init() {}

    /// The shim's struct; `tls` stays owned by the caller.
    func shimOptions(tls: TLSCredentials?) -> wgrpc_server_options {
        var options = wgrpc_server_options()
        options.tls = tls?.handle
        options.max_concurrent_streams = Int32(clamping: maxConcurrentStreams)
        options.max_connection_idle_ms = Int32(clamping: maxConnectionIdleMilliseconds)
        options.max_connection_age_ms = Int32(clamping: maxConnectionAgeMilliseconds)
        options.max_connection_age_grace_ms = Int32(clamping: maxConnectionAgeGraceMilliseconds)
        options.keepalive_time_ms = Int32(clamping: keepaliveTimeMilliseconds)
        options.keepalive_timeout_ms = Int32(clamping: keepaliveTimeoutMilliseconds)
        options.max_receive_message_bytes = Int32(clamping: maxReceiveMessageBytes)
        options.max_header_list_bytes = Int32(clamping: maxHeaderListBytes)
        options.handshake_timeout_ms = Int32(clamping: handshakeTimeoutMilliseconds)
        return options
    }
}

/// A server's certificate, key and (for mutual TLS) client CA, as PEM texts.
package struct TLSMaterial: Sendable, Equatable {
    package var certificateChainPEM: String
    package var keyPEM: String
    /// Nil: TLS without client certificates (calls carry no identity).
    package var clientCAPEM: String?

    package init(certificateChainPEM: String, keyPEM: String, clientCAPEM: String?) {
        self.certificateChainPEM = certificateChainPEM
        self.keyPEM = keyPEM
        self.clientCAPEM = clientCAPEM
    }
}

/// TLS material a server serves, replaceable while it runs: connections
/// accepted after `reload` use the new material, open ones keep theirs.
///
/// `@unchecked Sendable` is safe because `handle` is immutable and the shim's
/// wgrpc_tls functions are thread-safe (wgrpc_shim.h).
package final class TLSCredentials: @unchecked Sendable {
    let handle: OpaquePointer
    /// Whether clients must present a certificate (fixed at creation).
    package let isMutual: Bool

    /// Checks the material (PEM parses, the key matches the certificate, the
    /// client CA holds a certificate) and keeps it.
    package init(_ material: TLSMaterial) throws(TLSError) {
        var errorBuffer = [CChar](repeating: 0, count: Int(WGRPC_ERROR_MESSAGE_BYTES_MAX))
        let created = wgrpc_tls_create(
            material.certificateChainPEM, material.keyPEM, material.clientCAPEM, &errorBuffer, errorBuffer.count)
        guard let created else { throw TLSError(reason: Self.text(errorBuffer)) }
        handle = created
        isMutual = material.clientCAPEM != nil
    }

    deinit {
        wgrpc_tls_release(handle)
    }

    /// Checks new material and, when it passes, serves it to new
    /// connections; when it fails, throws and the previous material stays.
    package func reload(_ material: TLSMaterial) throws(TLSError) {
        var errorBuffer = [CChar](repeating: 0, count: Int(WGRPC_ERROR_MESSAGE_BYTES_MAX))
        let staged = wgrpc_tls_reload(
            handle, material.certificateChainPEM, material.keyPEM, material.clientCAPEM, &errorBuffer,
            errorBuffer.count)
        guard staged == 1 else { throw TLSError(reason: Self.text(errorBuffer)) }
    }

    private static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Why TLS material was refused, e.g. "the key does not match the certificate".
package struct TLSError: Error, Equatable, CustomStringConvertible {
    package var reason: String

    package init(reason: String) {
        self.reason = reason
    }

    package var description: String { reason }
}
