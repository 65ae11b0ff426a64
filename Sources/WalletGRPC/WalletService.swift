import Synchronization
import WalletDomain

/// The handlers: decode, validate, call the store, encode, map errors. They
/// see a request's bytes and a deadline, never the transport.
package final class WalletService: Sendable {
    private let store: any LedgerStore
    private let pageTokens: PageTokenCodec
    private let serving = Atomic<Bool>(true)

    package init(store: any LedgerStore, pageTokens: PageTokenCodec) {
        self.store = store
        self.pageTokens = pageTokens
    }

    package static var methodPaths: [String] { WalletMethod.allCases.map(\.path) }

    /// Health answers NOT_SERVING from here on (drain).
    package func stopServing() {
        serving.store(false, ordering: .releasing)
    }

    /// Called on the transport's thread: hands the work to a task at once.
    package func handle(methodIndex: Int, request: [UInt8], deadline: ContinuousClock.Instant?, respond: @escaping @Sendable (RPCResult) -> Void) {
        guard let method = WalletMethod(rawValue: methodIndex) else {
            respond(.failed(RPCStatus(code: RPCStatus.unimplementedCode, message: "unknown method")))
            return
        }
        Task {
            respond(await self.dispatch(method, request, deadline: deadline))
        }
    }

    package func dispatch(_ method: WalletMethod, _ request: [UInt8], deadline: ContinuousClock.Instant?) async -> RPCResult {
        do throws(LedgerError) {
            return .ok(try await run(method, request, deadline: deadline))
        } catch {
            return .failed(StatusMapping.status(error))
        }
    }

    private func run(_ method: WalletMethod, _ request: [UInt8], deadline: ContinuousClock.Instant?) async throws(LedgerError)
        -> [UInt8]
    {
        switch method {
        case .credit, .debit, .authorize, .settle, .rollback, .reverse, .transfer:
            let command: Command
            switch method {
            case .credit: command = try Requests.credit(request)
            case .debit: command = try Requests.debit(request)
            case .authorize: command = try Requests.authorize(request)
            case .settle: command = try Requests.settle(request)
            case .rollback: command = try Requests.rollback(request)
            case .reverse: command = try Requests.reverse(request)
            default: command = try Requests.transfer(request)
            }
            let result = try await store.execute(command, deadline: deadline)
            return Responses.operation(result, method: method)
        case .createWallet:
            let (wallet, created) = try await store.createWallet(try Requests.createWallet(request))
            return Responses.createWallet(wallet, created: created)
        case .defineAsset:
            let (asset, created) = try await store.defineAsset(try Requests.defineAsset(request))
            return Responses.defineAsset(asset, created: created)
        case .getBalance:
            let (walletID, asset) = try Requests.getBalance(request)
            return Responses.balances(try await store.balances(walletID: walletID, asset: asset))
        case .getTransaction:
            return Responses.transaction(try await store.transaction(id: try Requests.getTransaction(request)))
        case .listTransactions:
            let (walletID, pageSize, token) = try Requests.listTransactions(request)
            let cursor = token.isEmpty ? nil : try pageTokens.decode(token, walletID: walletID)
            let page = try await store.history(walletID: walletID, limit: pageSize, before: cursor)
            let next = page.nextCursor.map { pageTokens.encode(walletID: walletID, cursor: $0) } ?? ""
            return Responses.history(page.transactions, nextPageToken: next)
        case .healthCheck:
            let service = try Requests.healthCheck(request)
            guard service.isEmpty || service == "wallet.v1.Wallet" else {
                throw LedgerError(.notFound, "SERVICE_NOT_FOUND", "unknown service \(service)")
            }
            return Responses.health(serving: serving.load(ordering: .acquiring))
        }
    }
}

/// Binds the service to a gRPC core server.
package final class WalletServer: Sendable {
    private let transport: GRPCServer
    package let service: WalletService

    package init(listen: String, service: WalletService) throws {
        self.service = service
        transport = try GRPCServer(listen: listen, methods: WalletService.methodPaths) { index, request, call in
            service.handle(methodIndex: index, request: request, deadline: call.deadline) { result in
                call.respond(result)
            }
        }
    }

    package var port: Int { transport.port }

    /// Stops accepting calls and waits for in-flight ones to be answered.
    package func shutdown(drainTimeoutMilliseconds: Int) {
        service.stopServing()
        transport.shutdown(drainTimeoutMilliseconds: drainTimeoutMilliseconds)
    }
}
