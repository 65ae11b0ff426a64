/// What the server knows of a call before its handler runs: which method,
/// from where, by whom, under which trace and until when. Built once per call
/// by the transport (or by a test, with no socket) and handed to the
/// interceptors and the handler.
package struct CallContext: Sendable, Equatable {
    /// The full method path, "/wallet.v1.Wallet/Debit".
    package var method: String
    /// The client's address as gRPC reports it, "ipv4:127.0.0.1:50312".
    package var peer: String
    /// The verified client certificate's identity (first URI SAN, else first
    /// DNS SAN, else subject CN); nil without one. Never taken from request
    /// fields or metadata.
    package var caller: String?
    /// The W3C `traceparent` request header, as sent (not yet parsed).
    package var traceparent: String?
    /// The `x-request-id` request header, as sent.
    package var requestID: String?
    /// When the client stops waiting; nil when it set no deadline.
    package var deadline: ContinuousClock.Instant?

    package init(
        method: String, peer: String = "", caller: String? = nil, traceparent: String? = nil,
        requestID: String? = nil, deadline: ContinuousClock.Instant? = nil
    ) {
        self.method = method
        self.peer = peer
        self.caller = caller
        self.traceparent = traceparent
        self.requestID = requestID
        self.deadline = deadline
    }

    /// "wallet.v1.Wallet" of "/wallet.v1.Wallet/Debit".
    package var service: Substring {
        method.dropFirst().prefix { $0 != "/" }
    }

    /// "Debit" of "/wallet.v1.Wallet/Debit".
    package var methodName: Substring {
        guard let slash = method.lastIndex(of: "/") else { return method[...] }
        return method[method.index(after: slash)...]
    }
}
