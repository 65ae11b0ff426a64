/// A step every call of every service passes before its handler runs
/// (authorization, rate limits; logging and metrics watch outcomes). It runs
/// on the transport's thread: it decides from the context alone, without
/// I/O, and returns quickly.
package protocol CallInterceptor: Sendable {
    /// Nil lets the call go on; a status refuses it, and the handler never
    /// runs.
    func admit(_ context: CallContext) -> RPCStatus?

    /// Whether `completed` should be called (it costs a closure per unary
    /// call and a wrapper per stream, so only interceptors that use it say
    /// yes).
    var observesOutcome: Bool { get }

    /// A call ended: a unary call was answered, or a stream finished (or
    /// closed without finishing: CANCELLED). Runs on whichever thread
    /// answered (a store's relay thread for most writes): return quickly.
    func completed(_ outcome: CallOutcome)
}

extension CallInterceptor {
    package var observesOutcome: Bool { false }
    package func completed(_ outcome: CallOutcome) {}
}
