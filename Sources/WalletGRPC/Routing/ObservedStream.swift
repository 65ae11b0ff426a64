import Synchronization

/// A stream that reports how it ended, once: the status its handler
/// finished it with, or CANCELLED when the transport closed it first (the
/// client went away, its deadline passed, the server shut down). Everything
/// else passes through to the stream it wraps: every requirement of
/// `ServerStream`, those with a default too (OutcomeTests checks that what
/// a handler calls reaches the wrapped stream).
final class ObservedStream: ServerStream {
    private struct State {
        var reported = false
        var closed = false
        /// The handler's `onClose`, held until the wrapped stream closes.
        var onClose: (@Sendable () -> Void)?
    }

    private static let closedFirst = RPCStatus(
        code: RPCStatus.cancelledCode, message: "the call closed before its handler finished it")

    private let base: any ServerStream
    private let report: @Sendable (RPCStatus?) -> Void
    private let state = Mutex(State())

    /// Takes the wrapped stream's one `onClose` registration; the handler
    /// registers with this wrapper instead.
    init(_ base: any ServerStream, report: @escaping @Sendable (RPCStatus?) -> Void) {
        self.base = base
        self.report = report
        base.onClose { [self] in closed() }
    }

    func read() async -> [UInt8]? {
        await base.read()
    }

    func send(_ message: [UInt8]) async -> Bool {
        await base.send(message)
    }

    // Forwarded, not left to the protocol's default (one at a time): the
    // transport's own hands the whole page to the shim at once.
    func send(all messages: [[UInt8]]) async -> Int {
        await base.send(all: messages)
    }

    func finish(_ status: RPCStatus?) {
        // Reported first: the close this finish causes may run on the
        // transport's thread before `base.finish` returns here, and must find
        // the outcome already reported.
        reportOnce(status)
        base.finish(status)
    }

    func onClose(_ body: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state in
            precondition(state.onClose == nil, "onClose registered twice")
            if state.closed { return true }
            state.onClose = body
            return false
        }
        if runNow { body() }
    }

    private func closed() {
        let body = state.withLock { state in
            state.closed = true
            defer { state.onClose = nil }
            return state.onClose
        }
        // Reported before the handler hears of the close: a handler that
        // then finishes (Health/Watch does) must not turn a call the client
        // cancelled into an OK one.
        reportOnce(Self.closedFirst)
        body?()
    }

    private func reportOnce(_ status: RPCStatus?) {
        let first = state.withLock { state in
            defer { state.reported = true }
            return !state.reported
        }
        if first { report(status) }
    }
}
