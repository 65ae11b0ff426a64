import WalletDomain

/// The handlers: decode, validate, call the store, encode, map errors. They
/// see a request's bytes and a deadline (or a `ServerStream`), never the
/// transport.
package final class WalletService: Sendable {
    private let store: any LedgerStore
    private let pageTokens: PageTokenCodec
    package let health = HealthService()
    private let reflection = ReflectionService(serviceNames: WalletService.serviceNames)

    package init(store: any LedgerStore, pageTokens: PageTokenCodec) {
        self.store = store
        self.pageTokens = pageTokens
    }

    /// Every registered path: the unary `WalletMethod`s, then the
    /// `StreamingMethod`s; a transport method index indexes this.
    package static var methodPaths: [String] {
        WalletMethod.allCases.map(\.path) + StreamingMethod.allCases.map(\.path)
    }

    package static var streamingMethodPaths: Set<String> { Set(StreamingMethod.allCases.map(\.path)) }

    /// The services the registered paths belong to, in registration order.
    package static var serviceNames: [String] {
        var names: [String] = []
        for path in methodPaths {
            let service = String(path.dropFirst().prefix { $0 != "/" })
            if !names.contains(service) { names.append(service) }
        }
        return names
    }

    /// Health answers NOT_SERVING from here on (drain); open Watch streams
    /// are told and ended, open reflection streams ended with UNAVAILABLE.
    package func stopServing() {
        health.stopServing()
        reflection.stopServing()
    }

    /// Called on the transport's thread for a streaming method: hands the
    /// stream to a task at once.
    package func handle(streamingMethodIndex methodIndex: Int, stream: some ServerStream) {
        let streamingIndex = methodIndex - WalletMethod.allCases.count
        guard let method = StreamingMethod(rawValue: streamingIndex) else {
            stream.finish(RPCStatus(code: RPCStatus.unimplementedCode, message: "unknown method"))
            return
        }
        Task {
            switch method {
            case .healthWatch: await self.health.watch(stream)
            case .reflectionInfo, .reflectionInfoV1Alpha: await self.reflection.serve(stream)
            }
        }
    }

    /// Called on the transport's thread. Every request is decoded here
    /// (protobuf-c and validation, a few microseconds). A write or a read
    /// (GetBalance, GetTransaction, ListTransactions) is handed to the store,
    /// which answers from its own thread (a write once it is committed): no
    /// task and no continuation per call. A health check is answered here.
    /// CreateWallet and DefineAsset await the store on a task.
    package func handle(
        methodIndex: Int, request: [UInt8], deadline: ContinuousClock.Instant?,
        respond: @escaping @Sendable (RPCResult) -> Void
    ) {
        guard let method = WalletMethod(rawValue: methodIndex) else {
            respond(.failed(RPCStatus(code: RPCStatus.unimplementedCode, message: "unknown method")))
            return
        }
        // Only decoding throws here: a store answers through `completion`.
        do throws(LedgerError) {
            switch method {
            case .credit, .debit, .authorize, .settle, .rollback, .reverse, .transfer:
                store.submit(
                    try Self.command(method, request), deadline: deadline,
                    completion: Self.answer(respond) { Responses.operation($0, method: method) })
            case .getBalance:
                let (walletID, asset) = try Requests.getBalance(request)
                store.submitBalances(
                    walletID: walletID, asset: asset, deadline: deadline,
                    completion: Self.answer(respond, Responses.balances))
            case .getTransaction:
                store.submitTransaction(
                    id: try Requests.getTransaction(request), deadline: deadline,
                    completion: Self.answer(respond, Responses.transaction))
            case .listTransactions:
                let (walletID, pageSize, token) = try Requests.listTransactions(request)
                let cursor = token.isEmpty ? nil : try pageTokens.decode(token, walletID: walletID)
                let pageTokens = pageTokens
                store.submitHistory(
                    walletID: walletID, limit: pageSize, before: cursor, deadline: deadline,
                    completion: Self.answer(respond) { page in
                        Responses.history(
                            page.transactions,
                            nextPageToken: page.nextCursor.map { pageTokens.encode(walletID: walletID, cursor: $0) }
                                ?? "")
                    })
            case .createWallet:
                let create = try Requests.createWallet(request)
                onTask(respond) { () async throws(LedgerError) in
                    let (wallet, created) = try await self.store.createWallet(create)
                    return Responses.createWallet(wallet, created: created)
                }
            case .defineAsset:
                let define = try Requests.defineAsset(request)
                onTask(respond) { () async throws(LedgerError) in
                    let (asset, created) = try await self.store.defineAsset(define)
                    return Responses.defineAsset(asset, created: created)
                }
            case .healthCheck:
                respond(.ok(try healthCheck(request)))
            }
        } catch {
            respond(.failed(StatusMapping.status(error)))
        }
    }

    /// A store's completion that sends the encoded answer, or the error's status.
    private static func answer<Value>(
        _ respond: @escaping @Sendable (RPCResult) -> Void, _ encode: @escaping @Sendable (Value) -> [UInt8]
    ) -> @Sendable (Result<Value, LedgerError>) -> Void {
        { result in
            switch result {
            case .success(let value): respond(.ok(encode(value)))
            case .failure(let error): respond(.failed(StatusMapping.status(error)))
            }
        }
    }

    /// Runs `body` on a task and sends its answer, or its error's status.
    private func onTask(
        _ respond: @escaping @Sendable (RPCResult) -> Void,
        _ body: @escaping @Sendable () async throws(LedgerError) -> [UInt8]
    ) {
        Task {
            do throws(LedgerError) {
                respond(.ok(try await body()))
            } catch {
                respond(.failed(StatusMapping.status(error)))
            }
        }
    }

    /// The command a write method's request asks for.
    private static func command(_ method: WalletMethod, _ request: [UInt8]) throws(LedgerError) -> Command {
        switch method {
        case .credit: try Requests.credit(request)
        case .debit: try Requests.debit(request)
        case .authorize: try Requests.authorize(request)
        case .settle: try Requests.settle(request)
        case .rollback: try Requests.rollback(request)
        case .reverse: try Requests.reverse(request)
        case .transfer: try Requests.transfer(request)
        default: preconditionFailure("\(method) is not a write")
        }
    }

    private func healthCheck(_ request: [UInt8]) throws(LedgerError) -> [UInt8] {
        let service = try Requests.healthCheck(request)
        guard HealthService.serviceNames.contains(service) else {
            throw LedgerError(.notFound, "SERVICE_NOT_FOUND", "unknown service \(service)")
        }
        return Responses.health(health.status(of: service))
    }
}

/// Binds the service to a gRPC core server.
package final class WalletServer: Sendable {
    private let transport: GRPCServer
    package let service: WalletService

    package init(listen: String, service: WalletService) throws {
        self.service = service
        let unaryMethodCount = WalletMethod.allCases.count
        transport = try GRPCServer(
            listen: listen, methods: WalletService.methodPaths, streamingMethods: WalletService.streamingMethodPaths
        ) { index, request, call in
            if index >= unaryMethodCount {
                service.handle(streamingMethodIndex: index, stream: call)
            } else {
                service.handle(methodIndex: index, request: request, deadline: call.deadline) { result in
                    call.respond(result)
                }
            }
        }
    }

    package var port: Int { transport.port }

    /// Stops accepting calls and waits for in-flight ones to be answered;
    /// Watch streams end at once with NOT_SERVING, reflection streams with
    /// UNAVAILABLE.
    package func shutdown(drainTimeoutMilliseconds: Int) {
        service.stopServing()
        transport.shutdown(drainTimeoutMilliseconds: drainTimeoutMilliseconds)
    }
}
