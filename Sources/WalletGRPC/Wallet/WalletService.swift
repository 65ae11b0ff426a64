import WalletDomain

/// wallet.v1.Wallet's handlers: decode, validate, call the store, encode,
/// map errors. They see a call's context and its request's bytes, never the
/// transport; who may call them was decided before they run (`Router`).
package final class WalletService: RoutedService {
    private let store: any LedgerStore
    private let pageTokens: PageTokenCodec
    /// WatchEvents; nil for a store without events (WatchEvents is then
    /// UNIMPLEMENTED).
    package let events: EventStreams?

    package init(store: any LedgerStore, pageTokens: PageTokenCodec, events: EventStreams? = nil) {
        self.store = store
        self.pageTokens = pageTokens
        self.events = events
    }

    /// The path of the one streaming method.
    package static let watchEventsPath = "/wallet.v1.Wallet/WatchEvents"

    /// Ends open WatchEvents streams (the server is shutting down).
    package func stopServing() {
        events?.stopServing()
    }

    package var serviceName: String { "wallet.v1.Wallet" }

    package var routes: [Route] {
        let unary: [Route] = WalletMethod.allCases.filter { $0 != .healthCheck }.map { method in
            .unary(method.path) { [self] context, request, respond in
                handle(method, context: context, request: request, respond: respond)
            }
        }
        guard let events else { return unary }
        return unary + [.streaming(Self.watchEventsPath) { context, stream in events.start(context, stream) }]
    }

    /// Called on the transport's thread. Every request is decoded here
    /// (protobuf-c and validation, a few microseconds). A write or a read
    /// (GetBalance, GetTransaction, ListTransactions) is handed to the store,
    /// which answers from its own thread (a write once it is committed): no
    /// task and no continuation per call. CreateWallet and DefineAsset await
    /// the store on a task.
    package func handle(
        _ method: WalletMethod, context: CallContext, request: [UInt8], respond: @escaping Respond
    ) {
        let deadline = context.deadline
        // Only decoding throws here: a store answers through `completion`.
        do throws(LedgerError) {
            switch method {
            case .credit, .debit, .authorize, .settle, .rollback, .reverse, .transfer:
                var command = try Self.command(method, request)
                // Who wrote it comes from the certificate, never the request.
                command.caller = context.caller ?? ""
                store.submit(
                    command, deadline: deadline,
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
                preconditionFailure("Health/Check is routed to HealthService")
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
}
