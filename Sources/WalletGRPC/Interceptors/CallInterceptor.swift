/// A step every call of every service passes before its handler runs
/// (authorization, rate limits; logging and metrics watch outcomes). It runs
/// on the transport's thread: it decides from the context alone, without
/// I/O, and returns quickly.
package protocol CallInterceptor: Sendable {
    /// Nil lets the call go on; a status refuses it, and the handler never
    /// runs.
    func admit(_ context: CallContext) -> RPCStatus?

    /// Whether `completed` should be called for unary calls (it costs a
    /// closure per call, so only interceptors that use it say yes).
    var observesOutcome: Bool { get }

    /// A unary call was answered with `code` after `elapsed`.
    func completed(_ context: CallContext, code: Int32, elapsed: Duration)
}

extension CallInterceptor {
    package var observesOutcome: Bool { false }
    package func completed(_ context: CallContext, code: Int32, elapsed: Duration) {}
}
