/// Every service's methods in one table, and the one path every call takes:
/// the interceptors first (any of them may refuse the call), then the
/// method's handler. The transport registers `paths` and hands each call over
/// by its index in that list; a test calls `dispatch` with a context and no
/// socket.
package final class Router: Sendable {
    package let routes: [Route]
    package let serviceNames: [String]
    private let interceptors: [any CallInterceptor]
    /// The interceptors that watch outcomes, picked once.
    private let observers: [any CallInterceptor]

    /// Services are served in the order given; a path served twice is a bug.
    package init(services: [any RoutedService], interceptors: [any CallInterceptor]) {
        var routes: [Route] = []
        var seen = Set<String>()
        for service in services {
            for route in service.routes {
                precondition(seen.insert(route.path).inserted, "\(route.path) is routed twice")
                precondition(
                    route.path.hasPrefix("/\(service.serviceName)/"),
                    "\(route.path) does not belong to \(service.serviceName)")
                routes.append(route)
            }
        }
        self.routes = routes
        self.serviceNames = services.map(\.serviceName)
        self.interceptors = interceptors
        self.observers = interceptors.filter { $0.observesOutcome }
    }

    package var paths: [String] { routes.map(\.path) }
    package var streamingPaths: Set<String> { Set(routes.filter(\.isStreaming).map(\.path)) }

    /// The route at a transport index.
    package func route(at index: Int) -> Route? {
        routes.indices.contains(index) ? routes[index] : nil
    }

    /// The route for a full path (tests and tools; the transport uses indexes).
    package func route(path: String) -> Route? {
        routes.first { $0.path == path }
    }

    /// Runs a unary call: the interceptors, then the handler.
    package func dispatchUnary(
        _ route: Route, context: CallContext, request: [UInt8], respond: @escaping Respond
    ) {
        guard case .unary(let handler) = route.handler else {
            preconditionFailure("\(route.path) is not unary")
        }
        let respond = observing(route, context, request, respond)
        if let refusal = admit(context) {
            respond(.failed(refusal))
            return
        }
        handler(context, request, respond)
    }

    /// Runs a streaming call: the interceptors, then the handler.
    package func dispatchStreaming(_ route: Route, context: CallContext, stream: any ServerStream) {
        guard case .streaming(let handler) = route.handler else {
            preconditionFailure("\(route.path) is not streaming")
        }
        let stream = observing(context, stream)
        if let refusal = admit(context) {
            stream.finish(refusal)
            return
        }
        handler(context, stream)
    }

    /// The first refusal of the chain, in order; nil lets the call in.
    private func admit(_ context: CallContext) -> RPCStatus? {
        for interceptor in interceptors {
            if let refusal = interceptor.admit(context) { return refusal }
        }
        return nil
    }

    /// `respond`, telling the interceptors that watch outcomes what it sent.
    /// Without such interceptors, `respond` itself: the unary path then
    /// costs nothing here.
    private func observing(
        _ route: Route, _ context: CallContext, _ request: [UInt8], _ respond: @escaping Respond
    ) -> Respond {
        guard !observers.isEmpty else { return respond }
        let observers = observers
        let started = ContinuousClock.now
        let transactionID = route.transactionID
        return { result in
            respond(result)
            let status: RPCStatus? =
                switch result {
                case .ok: nil
                case .failed(let status): status
                }
            let outcome = CallOutcome(
                context: context, status: status, elapsed: ContinuousClock.now - started, request: request,
                transactionIDReader: transactionID)
            for observer in observers { observer.completed(outcome) }
        }
    }

    /// `stream`, wrapped so that its end reaches the interceptors that
    /// watch outcomes; `stream` itself when none do.
    private func observing(_ context: CallContext, _ stream: any ServerStream) -> any ServerStream {
        guard !observers.isEmpty else { return stream }
        let observers = observers
        let started = ContinuousClock.now
        return ObservedStream(stream) { status in
            let outcome = CallOutcome(
                context: context, status: status, elapsed: ContinuousClock.now - started, isStreaming: true)
            for observer in observers { observer.completed(outcome) }
        }
    }
}
