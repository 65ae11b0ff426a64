import WalletGRPC

/// What the ledger should show if an operation is acknowledged. Wallets are
/// plan indices; amounts are minor units of the plan's asset.
enum ExpectedEffect: Sendable {
    case none
    case credit(wallet: Int, amount: Int64)
    case debit(wallet: Int, amount: Int64)
    case authorize(wallet: Int, amount: Int64)
    /// Captures the whole hold; `destination` nil is the house (not audited).
    case settle(authorization: Int, wallet: Int, destination: Int?, amount: Int64)
    case rollbackDebit(target: Int, wallet: Int, amount: Int64)
    case rollbackAuthorization(target: Int, wallet: Int, amount: Int64)
    case transfer(from: Int, to: Int, amount: Int64)

    var wallets: [Int] {
        switch self {
        case .none: []
        case .credit(let wallet, _), .debit(let wallet, _), .authorize(let wallet, _),
            .rollbackDebit(_, let wallet, _), .rollbackAuthorization(_, let wallet, _):
            [wallet]
        case .settle(_, let wallet, let destination, _): [wallet] + (destination.map { [$0] } ?? [])
        case .transfer(let from, let to, _): [from, to]
        }
    }

    /// The earlier transaction whose status this one changes.
    var target: Int? {
        switch self {
        case .settle(let authorization, _, _, _): authorization
        case .rollbackDebit(let target, _, _), .rollbackAuthorization(let target, _, _): target
        default: nil
        }
    }
}

/// An earlier acknowledged request, sent again unchanged: the server must
/// answer what it answered the first time, marked as a replay.
struct RetryRecord: Sendable {
    let method: WalletMethod
    let request: [UInt8]
    let transactionNumber: Int
    /// The first answer's code: OK or FAILED_PRECONDITION (pinned).
    let originalCode: Int32
}

/// One RPC the workload wants sent.
struct WorkloadOperation: Sendable {
    let method: WalletMethod
    let request: [UInt8]
    /// Nil for reads and retries (a retry reuses an acknowledged number).
    let transactionNumber: Int?
    let effect: ExpectedEffect
    let retry: RetryRecord?

    init(
        method: WalletMethod, request: [UInt8], transactionNumber: Int?, effect: ExpectedEffect = .none,
        retry: RetryRecord? = nil
    ) {
        self.method = method
        self.request = request
        self.transactionNumber = transactionNumber
        self.effect = effect
        self.retry = retry
    }
}

/// How the server's answer bears on the ledger.
enum CallOutcome: Sendable, Equatable {
    /// OK; `replayed` is decoded only for retries.
    case acknowledged(replayed: Bool?)
    /// FAILED_PRECONDITION: a business rejection, pinned to the id.
    case rejected
    /// The contract says nothing was recorded (INVALID_ARGUMENT, NOT_FOUND,
    /// RESOURCE_EXHAUSTED, ...).
    case notRecorded(code: Int32)
    /// The answer was lost or ambiguous (DEADLINE_EXCEEDED, UNAVAILABLE,
    /// CANCELLED, INTERNAL, ALREADY_EXISTS, ...): it may or may not be applied.
    case unknown(code: Int32)

    init(code: Int32, replayed: Bool?) {
        switch code {
        case RPCStatus.okCode: self = .acknowledged(replayed: replayed)
        case RPCStatus.failedPreconditionCode: self = .rejected
        case RPCStatus.invalidArgumentCode, RPCStatus.notFoundCode, RPCStatus.resourceExhaustedCode,
            RPCStatus.unauthenticatedCode, RPCStatus.permissionDeniedCode, RPCStatus.unimplementedCode:
            self = .notRecorded(code: code)
        default: self = .unknown(code: code)
        }
    }
}
