import CGRPCShim
import Synchronization

/// One in-flight call. Answer a unary call exactly once with `respond(_:)`;
/// drive a streaming call through `ServerStream` and end it with `finish(_:)`.
/// Any thread.
///
/// `@unchecked Sendable` is safe because the only stored state is an immutable
/// handle whose shim functions are documented thread-safe (`wgrpc_shim.h`:
/// respond, finish, send, read, on_close, is_cancelled, release may run on any
/// thread), an immutable deadline, and an `Atomic`.
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

    /// The call's context as the shim captured it when the call arrived.
    package func context(method: String) -> CallContext {
        var raw = wgrpc_call_context()
        wgrpc_call_get_context(handle, &raw)
        return CallContext(
            method: method,
            peer: Self.string(raw.peer, raw.peer_len) ?? "",
            caller: Self.string(raw.identity, raw.identity_len),
            traceparent: Self.string(raw.traceparent, raw.traceparent_len),
            requestID: Self.string(raw.request_id, raw.request_id_len),
            deadline: deadline)
    }

    /// The bytes as UTF-8 (invalid sequences replaced); nil when absent.
    private static func string(_ pointer: UnsafePointer<CChar>?, _ length: Int) -> String? {
        guard let pointer, length > 0 else { return nil }
        return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
            String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
        }
    }

    /// Sends the response or status. Calling it (or `finish`) twice is a bug
    /// and traps.
    package func respond(_ result: RPCResult) {
        markResponded()
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

    private func markResponded() {
        let (exchanged, _) = responded.compareExchange(
            expected: false, desired: true, ordering: .acquiringAndReleasing)
        precondition(exchanged, "ServerCall answered twice")
    }
}

extension ServerCall: ServerStream {
    package func read() async -> [UInt8]? {
        await withCheckedContinuation { (continuation: CheckedContinuation<[UInt8]?, Never>) in
            // Retained until the shim's callback, which runs exactly once
            // when the read started.
            let context = Unmanaged.passRetained(Completion(continuation)).toOpaque()
            let started = wgrpc_call_read_message(
                handle,
                { context, message, length in
                    let completion = Unmanaged<Completion<[UInt8]?>>.fromOpaque(context!).takeRetainedValue()
                    completion.continuation.resume(
                        returning: message.map { Array(UnsafeBufferPointer(start: $0, count: length)) })
                }, context)
            if started != RPCStatus.okCode {
                Unmanaged<Completion<[UInt8]?>>.fromOpaque(context).release()
                continuation.resume(returning: nil)
            }
        }
    }

    package func send(_ message: [UInt8]) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let context = Unmanaged.passRetained(Completion(continuation)).toOpaque()
            let started = message.withUnsafeBufferPointer { buffer in
                wgrpc_call_send_message(
                    handle, buffer.baseAddress, buffer.count,
                    { context, ok in
                        let completion = Unmanaged<Completion<Bool>>.fromOpaque(context!).takeRetainedValue()
                        completion.continuation.resume(returning: ok != 0)
                    }, context)
            }
            if started != RPCStatus.okCode {
                Unmanaged<Completion<Bool>>.fromOpaque(context).release()
                continuation.resume(returning: false)
            }
        }
    }

    package func send(all messages: [[UInt8]]) async -> Int {
        guard !messages.isEmpty else { return 0 }
        return await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            let context = Unmanaged.passRetained(Completion(continuation)).toOpaque()
            // The shim copies every message before returning.
            let started = withPointers(messages) { pointers, lengths in
                wgrpc_call_send_messages(
                    handle, pointers, lengths, messages.count,
                    { context, sent in
                        let completion = Unmanaged<Completion<Int>>.fromOpaque(context!).takeRetainedValue()
                        completion.continuation.resume(returning: sent)
                    }, context)
            }
            if started != RPCStatus.okCode {
                Unmanaged<Completion<Int>>.fromOpaque(context).release()
                continuation.resume(returning: 0)
            }
        }
    }

    package func finish(_ status: RPCStatus?) {
        markResponded()
        guard let status else {
            wgrpc_call_finish(handle, RPCStatus.okCode, nil, nil, 0)
            return
        }
        precondition(
            status.code > RPCStatus.okCode && status.code <= RPCStatus.codeMax,
            "RPCStatus code \(status.code) is not a failure code")
        status.details.withUnsafeBufferPointer { details in
            wgrpc_call_finish(handle, status.code, status.message, details.baseAddress, details.count)
        }
    }

    package func onClose(_ body: @escaping @Sendable () -> Void) {
        let context = Unmanaged.passRetained(CloseHandler(body)).toOpaque()
        let registered = wgrpc_call_on_close(
            handle,
            { context in
                Unmanaged<CloseHandler>.fromOpaque(context!).takeRetainedValue().body()
            }, context)
        if registered == 0 {
            Unmanaged<CloseHandler>.fromOpaque(context).release()
            body()
        }
    }
}

/// Carries a continuation through the shim's `void *ctx`.
private final class Completion<Value: Sendable>: Sendable {
    let continuation: CheckedContinuation<Value, Never>

    init(_ continuation: CheckedContinuation<Value, Never>) {
        self.continuation = continuation
    }
}

private final class CloseHandler: Sendable {
    let body: @Sendable () -> Void

    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
    }
}

/// Calls `body` with C arrays of pointers to each message's bytes and their
/// lengths, valid for the call's duration.
private func withPointers<Result>(
    _ messages: [[UInt8]],
    _ body: (UnsafePointer<UnsafePointer<UInt8>?>, UnsafePointer<Int>) -> Result
) -> Result {
    let buffers = messages.map { message -> UnsafeMutableBufferPointer<UInt8> in
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, message.count))
        _ = buffer.initialize(from: message)
        return buffer
    }
    defer { buffers.forEach { $0.deallocate() } }
    let pointers: [UnsafePointer<UInt8>?] = buffers.map { UnsafePointer($0.baseAddress) }
    let lengths = messages.map(\.count)
    return pointers.withUnsafeBufferPointer { pointerBuffer in
        lengths.withUnsafeBufferPointer { lengthBuffer in
            body(pointerBuffer.baseAddress!, lengthBuffer.baseAddress!)
        }
    }
}
