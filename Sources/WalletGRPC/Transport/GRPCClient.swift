import CGRPCShim
import Synchronization

/// What a unary call answered: the response bytes, or a non-OK status with
/// the `grpc-status-details-bin` trailer as `details`. The shim does not pass
/// the status message, so `RPCStatus.message` is empty unless the call never
/// started.
package typealias ClientResult = RPCResult

/// One HTTP/2 connection to a gRPC server through the C shim, with its own
/// completion-queue threads. Calls complete on those threads.
///
/// `@unchecked Sendable` is safe because `handle` is immutable and every shim
/// function used on it from several threads (`wgrpc_client_call_unary`,
/// `wgrpc_channel_shutdown`, `wgrpc_channel_calls_in_flight`) is documented
/// thread-safe in `wgrpc_shim.h`; `wgrpc_channel_destroy` runs only in
/// `deinit`, when no other reference exists. `threadCount` is immutable.
package final class GRPCChannel: @unchecked Sendable {
    /// Completion-queue threads a channel may have (the shim's bound).
    package static let threadCountMax = Int(WGRPC_CHANNEL_THREADS_MAX)
    /// The longest deadline a call may ask for (the shim's bound).
    package static let timeoutMillisecondsMax = Int(WGRPC_CALL_TIMEOUT_MS_MAX)

    private let handle: OpaquePointer
    private let closed = Atomic<Bool>(false)
    package let threadCount: Int

    /// A channel to `target` ("HOST:PORT"); connects on the first call.
    /// `tls` nil: plaintext.
    package init(target: String, threadCount: Int = 1, tls: ClientTLS? = nil) throws {
        var errorBuffer = [CChar](repeating: 0, count: Int(WGRPC_ERROR_MESSAGE_BYTES_MAX))
        let created: OpaquePointer? =
            if let tls {
                tls.withShimStruct { shimTLS in
                    var shimTLS = shimTLS
                    return wgrpc_channel_create_secure(
                        target, Int32(threadCount), &shimTLS, &errorBuffer, errorBuffer.count)
                }
            } else {
                wgrpc_channel_create(target, Int32(threadCount), &errorBuffer, errorBuffer.count)
            }
        guard let created else {
            let reason = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw GRPCChannelError(reason: reason)
        }
        handle = created
        self.threadCount = threadCount
    }

    deinit {
        assert(closed.load(ordering: .acquiring), "GRPCChannel released without close()")
        // Shuts down first when close() was skipped; frees the C channel.
        wgrpc_channel_destroy(handle)
    }

    /// Calls started whose completion has not returned yet.
    package var callsInFlight: Int {
        Int(wgrpc_channel_calls_in_flight(handle))
    }

    /// Starts a unary call of `method` ("/pkg.Service/Method"). `completion`
    /// runs exactly once: on a completion-queue thread of this channel (keep
    /// it short; it may start further calls), or on the caller's thread when
    /// the call could not start (bad arguments, channel closed).
    package func unary(
        method: String, request: [UInt8], timeoutMilliseconds: Int,
        completion: @escaping @Sendable (ClientResult) -> Void
    ) {
        let box = Unmanaged.passRetained(CompletionBox(completion))
        let timeout = Int64(min(max(timeoutMilliseconds, 1), Self.timeoutMillisecondsMax))
        let started = request.withUnsafeBufferPointer { bytes in
            wgrpc_client_call_unary(
                handle, method, bytes.baseAddress, bytes.count, timeout,
                { context, statusCode, response, responseLength, details, detailsLength in
                    guard let context else { return }
                    let box = Unmanaged<CompletionBox>.fromOpaque(context).takeRetainedValue()
                    if statusCode == RPCStatus.okCode {
                        let bytes: [UInt8] =
                            if let response { Array(UnsafeBufferPointer(start: response, count: responseLength)) } else
                            { [] }
                        box.completion(.ok(bytes))
                    } else {
                        let detailBytes: [UInt8] =
                            if let details { Array(UnsafeBufferPointer(start: details, count: detailsLength)) } else {
                                []
                            }
                        box.completion(.failed(RPCStatus(code: statusCode, message: "", details: detailBytes)))
                    }
                },
                box.toOpaque())
        }
        if started != RPCStatus.okCode {
            box.release()
            let message =
                started == RPCStatus.unavailableCode ? "channel closed" : "call not started (shim status \(started))"
            completion(.failed(RPCStatus(code: started, message: message)))
        }
    }

    /// Cancels calls in flight (their completions still run, mostly with
    /// CANCELLED), waits for every completion to return and closes the
    /// connection. Later calls fail with UNAVAILABLE. Blocks: call it off the
    /// cooperative pool when calls may be in flight, never from a completion.
    package func close() {
        wgrpc_channel_shutdown(handle)
        closed.store(true, ordering: .releasing)
    }
}

extension GRPCChannel {
    /// The async form of `unary(method:request:timeoutMilliseconds:completion:)`.
    package func unary(method: String, request: [UInt8], timeoutMilliseconds: Int) async -> ClientResult {
        await withCheckedContinuation { continuation in
            unary(method: method, request: request, timeoutMilliseconds: timeoutMilliseconds) { result in
                continuation.resume(returning: result)
            }
        }
    }
}

/// Carries a call's completion through the C callback's `ctx`: retained when
/// the call starts, released by the one callback.
private final class CompletionBox: Sendable {
    let completion: @Sendable (ClientResult) -> Void

    init(_ completion: @escaping @Sendable (ClientResult) -> Void) {
        self.completion = completion
    }
}

/// A client's TLS material, as PEM texts.
package struct ClientTLS: Sendable {
    /// The CA the server's certificate must chain to; nil: the system's.
    package var rootPEM: String?
    /// The client certificate and key for mutual TLS (both or neither).
    package var certificateChainPEM: String?
    package var keyPEM: String?
    /// The name to check the server's certificate against instead of the
    /// target's host.
    package var serverNameOverride: String?

    package init(
        rootPEM: String?, certificateChainPEM: String? = nil, keyPEM: String? = nil, serverNameOverride: String? = nil
    ) {
        self.rootPEM = rootPEM
        self.certificateChainPEM = certificateChainPEM
        self.keyPEM = keyPEM
        self.serverNameOverride = serverNameOverride
    }

    /// The shim's struct, valid only inside `body`.
    func withShimStruct<Result>(_ body: (wgrpc_channel_tls) -> Result) -> Result {
        withOptionalCString(rootPEM) { root in
            withOptionalCString(certificateChainPEM) { certificate in
                withOptionalCString(keyPEM) { key in
                    withOptionalCString(serverNameOverride) { name in
                        body(
                            wgrpc_channel_tls(
                                root_pem: root, cert_chain_pem: certificate, key_pem: key,
                                server_name_override: name))
                    }
                }
            }
        }
    }
}

private func withOptionalCString<Result>(_ text: String?, _ body: (UnsafePointer<CChar>?) -> Result) -> Result {
    guard let text else { return body(nil) }
    return text.withCString { body($0) }
}
