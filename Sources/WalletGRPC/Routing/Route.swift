/// How a unary handler answers: exactly once, from any thread.
package typealias Respond = @Sendable (RPCResult) -> Void

/// One method a service serves: its full path and the handler for its kind.
package struct Route: Sendable {
    package enum Handler: Sendable {
        /// Runs on the transport's thread with the request's bytes: decode,
        /// hand the work on, return. Never block.
        case unary(@Sendable (_ context: CallContext, _ request: [UInt8], _ respond: @escaping Respond) -> Void)
        /// Runs on the transport's thread: hand the stream to a task, return.
        case streaming(@Sendable (_ context: CallContext, _ stream: any ServerStream) -> Void)
    }

    /// "/wallet.v1.Wallet/Debit"
    package let path: String
    package let handler: Handler
    /// Reads the request's `transaction_id` from its bytes, for methods that
    /// have one: the logs name it, and only a line being written asks.
    package let transactionID: (@Sendable (_ request: [UInt8]) -> String?)?

    package init(
        path: String, handler: Handler, transactionID: (@Sendable (_ request: [UInt8]) -> String?)? = nil
    ) {
        self.path = path
        self.handler = handler
        self.transactionID = transactionID
    }

    package static func unary(
        _ path: String, transactionID: (@Sendable (_ request: [UInt8]) -> String?)? = nil,
        _ body: @escaping @Sendable (_ context: CallContext, _ request: [UInt8], _ respond: @escaping Respond) -> Void
    ) -> Route {
        Route(path: path, handler: .unary(body), transactionID: transactionID)
    }

    package static func streaming(
        _ path: String, _ body: @escaping @Sendable (_ context: CallContext, _ stream: any ServerStream) -> Void
    ) -> Route {
        Route(path: path, handler: .streaming(body))
    }

    package var isStreaming: Bool {
        if case .streaming = handler { return true }
        return false
    }
}

/// What a service offers the router: its name and its methods.
package protocol RoutedService: Sendable {
    /// "wallet.v1.Wallet"
    var serviceName: String { get }
    var routes: [Route] { get }
}
