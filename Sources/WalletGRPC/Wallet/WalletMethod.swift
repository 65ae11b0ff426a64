/// Every method the server registers with gRPC core, in registration order.
package enum WalletMethod: Int, CaseIterable, Sendable {
    case createWallet, defineAsset, credit, debit, authorize, settle, rollback, reverse, transfer
    case getBalance, getTransaction, listTransactions
    case healthCheck

    package var path: String {
        switch self {
        case .createWallet: "/wallet.v1.Wallet/CreateWallet"
        case .defineAsset: "/wallet.v1.Wallet/DefineAsset"
        case .credit: "/wallet.v1.Wallet/Credit"
        case .debit: "/wallet.v1.Wallet/Debit"
        case .authorize: "/wallet.v1.Wallet/Authorize"
        case .settle: "/wallet.v1.Wallet/Settle"
        case .rollback: "/wallet.v1.Wallet/Rollback"
        case .reverse: "/wallet.v1.Wallet/Reverse"
        case .transfer: "/wallet.v1.Wallet/Transfer"
        case .getBalance: "/wallet.v1.Wallet/GetBalance"
        case .getTransaction: "/wallet.v1.Wallet/GetTransaction"
        case .listTransactions: "/wallet.v1.Wallet/ListTransactions"
        case .healthCheck: "/grpc.health.v1.Health/Check"
        }
    }

    /// Whether the request's field 1 is a `transaction_id` (every write, and
    /// GetTransaction's id to read).
    package var hasTransactionID: Bool {
        switch self {
        case .credit, .debit, .authorize, .settle, .rollback, .reverse, .transfer, .getTransaction: true
        case .createWallet, .defineAsset, .getBalance, .listTransactions, .healthCheck: false
        }
    }
}
