import CGRPCShim
import Synchronization

/// One in-flight unary call. Answer it exactly once with `respond(_:)`, from
/// any thread.
///
/// `@unchecked Sendable` is safe because the only stored state is an immutable
/// handle whose shim functions are documented thread-safe (`wgrpc_shim.h`:
/// respond, is_cancelled, release may run on any thread), an immutable
/// deadline, and an `Atomic`.
package final class ServerCall: @unchecked Sendable {
    private let handle: OpaquePointer
    private let responded = Atomic<Bool>(false)

    /// When the client stops waiting; nil when it set no deadline.
    package let deadline: ContinuousClock.Instant?

    init(handle: OpaquePointer) {
        self.handle = handle
        let remainingMilliseconds = wgrpc_call_deadline_remaining_ms(handle)
        if remainingMilliseconds == Int64.max {
            deadline = nil
        } else {
            deadline = ContinuousClock.now.advanced(by: .milliseconds(remainingMilliseconds))
        }
    }

    deinit {
        if !responded.load(ordering: .acquiring) {
            // A handler bug, but the client still deserves an answer and the
            // call must not leak.
            respond(.failed(RPCStatus(code: RPCStatus.internalCode, message: "handler dropped the call")))
        }
        wgrpc_call_release(handle)
    }

    /// True once the client cancelled, the deadline passed, the connection
    /// dropped or the server shut down; the response will not be delivered.
    package var isCancelled: Bool {
        wgrpc_call_is_cancelled(handle) != 0
    }

    /// The client's address as gRPC reports it, e.g. "ipv4:127.0.0.1:50312".
    package var peer: String {
        let length = wgrpc_call_peer(handle, nil, 0)
        var buffer = [CChar](repeating: 0, count: length + 1)
        _ = wgrpc_call_peer(handle, &buffer, buffer.count)
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sends the response or status. Calling it twice is a bug and traps.
    package func respond(_ result: RPCResult) {
        let (exchanged, _) = responded.compareExchange(
            expected: false, desired: true, ordering: .acquiringAndReleasing)
        precondition(exchanged, "ServerCall.respond called twice")
        switch result {
        case .ok(let response):
            // A non-NULL pointer means "send a message", also an empty one.
            let emptyMessage: [UInt8] = [0]
            let bytes = response.isEmpty ? emptyMessage : response
            bytes.withUnsafeBufferPointer { buffer in
                wgrpc_call_respond(handle, 0, nil, buffer.baseAddress, response.count, nil, 0)
            }
        case .failed(let status):
            precondition(
                status.code > RPCStatus.okCode && status.code <= RPCStatus.codeMax,
                "RPCStatus code \(status.code) is not a failure code")
            status.details.withUnsafeBufferPointer { details in
                wgrpc_call_respond(
                    handle, status.code, status.message, nil, 0, details.baseAddress, details.count)
            }
        }
    }
}
