/// How a call ended, as the interceptors that watch outcomes see it. A value
/// on the stack: building one allocates nothing, and the transaction id is
/// read from the request only when an observer asks for it (a log line).
package struct CallOutcome: Sendable {
    package let context: CallContext
    /// OK (0) or the failure's code.
    package let code: Int32
    /// The failure; nil for OK.
    package let status: RPCStatus?
    /// From dispatch to the answer (unary) or to the stream's end.
    package let elapsed: Duration
    package let isStreaming: Bool
    private let request: [UInt8]
    private let transactionIDReader: (@Sendable ([UInt8]) -> String?)?

    package init(
        context: CallContext, status: RPCStatus?, elapsed: Duration, isStreaming: Bool = false,
        request: [UInt8] = [], transactionIDReader: (@Sendable ([UInt8]) -> String?)? = nil
    ) {
        self.context = context
        self.code = status?.code ?? RPCStatus.okCode
        self.status = status
        self.elapsed = elapsed
        self.isStreaming = isStreaming
        self.request = request
        self.transactionIDReader = transactionIDReader
    }

    /// The request's `transaction_id`, for methods that have one (read from
    /// its bytes on each call of this; nil when the method has none or the
    /// bytes do not hold one).
    package var transactionID: String? {
        transactionIDReader?(request)
    }

    /// The ErrorInfo reason of a failure ("INSUFFICIENT_FUNDS"); empty for
    /// OK and for failures that carry none (the transport's own).
    package var reason: String {
        status?.reason ?? ""
    }
}
