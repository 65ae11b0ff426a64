import CGRPCShim
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A gRPC server over the C shim. Unary handlers receive the raw request
/// bytes and a `ServerCall` to answer; streaming handlers receive no bytes and
/// drive the `ServerCall` as a `ServerStream`.
///
/// `@unchecked Sendable` is safe because `handle` is immutable and only
/// passed to `wgrpc_server_shutdown`, which runs at most once under `state`'s
/// lock; every other stored property is immutable and Sendable.
package final class GRPCServer: @unchecked Sendable {
    /// Runs on the server's completion-queue thread: decode, hand the work to
    /// another thread, return. Never block here.
    package typealias Handler = @Sendable (_ methodIndex: Int, _ request: [UInt8], _ call: ServerCall) -> Void

    private enum State {
        case running
        case shutDown
    }

    private let handle: OpaquePointer
    private let handlerBox: HandlerBox
    private let state = Mutex<State>(.running)

    /// The bound TCP port (useful when listening on port 0).
    package let port: Int

    /// Listens on `listen` ("HOST:PORT") for the full method paths in
    /// `methods` ("/wallet.v1.Wallet/Debit"); the handler's `methodIndex`
    /// indexes `methods`. Paths also in `streamingMethods` are served as
    /// streams (client, server or bidirectional). Other paths are answered
    /// UNIMPLEMENTED.
    ///
    /// `settings` are the transport's limits; `tls` nil serves plaintext.
    package init(
        listen: String, methods: [String], streamingMethods: Set<String> = [],
        settings: TransportSettings = TransportSettings(), tls: TLSCredentials? = nil, handler: @escaping Handler
    ) throws {
        let box = HandlerBox(handler: handler)
        var errorBuffer = [CChar](repeating: 0, count: Int(WGRPC_ERROR_MESSAGE_BYTES_MAX))
        let kinds: [Int32] = methods.map {
            streamingMethods.contains($0) ? Int32(WGRPC_METHOD_STREAMING) : Int32(WGRPC_METHOD_UNARY)
        }
        // The shim retains the TLS material for as long as the server lives.
        var options = settings.shimOptions(tls: tls)
        let created: OpaquePointer? = withCStringArray(methods) { methodPointers in
            wgrpc_server_create_with_options(
                listen, methodPointers, kinds, Int32(methods.count), &options,
                { context, call, methodIndex, request, requestLength in
                    guard let context, let call else { return }
                    let box = Unmanaged<HandlerBox>.fromOpaque(context).takeUnretainedValue()
                    let bytes: [UInt8] =
                        if let request { Array(UnsafeBufferPointer(start: request, count: requestLength)) } else { [] }
                    box.handler(Int(methodIndex), bytes, ServerCall(handle: call))
                },
                // Unretained: `handlerBox` outlives the shim server, which
                // stops calling back before `shutdown` returns.
                Unmanaged.passUnretained(box).toOpaque(),
                &errorBuffer, errorBuffer.count)
        }
        guard let created else {
            let reason = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw GRPCServerError(reason: reason)
        }
        handle = created
        handlerBox = box
        port = Int(wgrpc_server_port(created))
    }

    deinit {
        let wasShutDown = state.withLock { $0 == .shutDown }
        assert(wasShutDown, "GRPCServer released without shutdown(drainTimeoutMilliseconds:)")
        if !wasShutDown {
            wgrpc_server_shutdown(handle, 0)
        }
    }

    /// Stops accepting calls, gives in-flight calls up to the timeout to be
    /// answered (streams: finished), cancels the rest and frees the server.
    /// Blocks until done (call it off the cooperative pool when the timeout
    /// is long); later calls return at once. Responding to a call after this
    /// is a no-op.
    package func shutdown(drainTimeoutMilliseconds: Int) {
        state.withLock { state in
            guard state == .running else { return }
            wgrpc_server_shutdown(handle, Int64(drainTimeoutMilliseconds))
            state = .shutDown
        }
    }
}

/// Keeps the Swift handler alive for the C callback's `user_ctx`.
private final class HandlerBox: Sendable {
    let handler: GRPCServer.Handler

    init(handler: @escaping GRPCServer.Handler) {
        self.handler = handler
    }
}

/// Calls `body` with a C array of C strings valid for the call's duration.
private func withCStringArray<Result>(
    _ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> Result
) -> Result {
    var duplicates: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    return duplicates.withUnsafeMutableBufferPointer { buffer in
        guard let base = buffer.baseAddress else { return body(nil) }
        return base.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) { body($0) }
    }
}
