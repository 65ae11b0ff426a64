/// The server as callers see it: wallet.v1.Wallet beside Health and
/// Reflection, every call through one `Router` and its interceptors, over a
/// gRPC core transport with its limits and TLS.
package final class WalletServer: Sendable {
    private let transport: GRPCServer
    package let router: Router
    package let health: HealthService
    private let reflection: ReflectionService
    private let wallet: WalletService

    /// `interceptors` run in order before every handler of every service.
    package init(
        listen: String, wallet: WalletService, interceptors: [any CallInterceptor] = [],
        settings: TransportSettings = TransportSettings(), tls: TLSCredentials? = nil
    ) throws {
        let health = HealthService()
        let serviceNames = [
            wallet.serviceName, health.serviceName, "grpc.reflection.v1.ServerReflection",
            ReflectionService.v1AlphaServiceName,
        ]
        let reflection = ReflectionService(serviceNames: serviceNames)
        let router = Router(
            services: [wallet, health, reflection, reflection.v1Alpha], interceptors: interceptors)
        precondition(router.serviceNames == serviceNames, "reflection lists the services the router serves")
        self.health = health
        self.reflection = reflection
        self.wallet = wallet
        self.router = router
        transport = try GRPCServer(
            listen: listen, methods: router.paths, streamingMethods: router.streamingPaths, settings: settings,
            tls: tls
        ) { index, request, call in
            guard let route = router.route(at: index) else {
                call.respond(.failed(RPCStatus(code: RPCStatus.unimplementedCode, message: "unknown method")))
                return
            }
            let context = call.context(method: route.path)
            switch route.handler {
            case .unary:
                router.dispatchUnary(route, context: context, request: request) { call.respond($0) }
            case .streaming:
                router.dispatchStreaming(route, context: context, stream: call)
            }
        }
    }

    package var port: Int { transport.port }

    /// Stops accepting calls and waits for in-flight ones to be answered;
    /// Watch streams end at once with NOT_SERVING, reflection and
    /// WatchEvents streams with UNAVAILABLE.
    package func shutdown(drainTimeoutMilliseconds: Int) {
        health.stopServing()
        reflection.stopServing()
        wallet.stopServing()
        transport.shutdown(drainTimeoutMilliseconds: drainTimeoutMilliseconds)
    }
}
