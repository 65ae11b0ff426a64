import Synchronization
import WalletGRPC

/// A caller's own state: its random generator and the second half of a
/// two-step flow (settle or roll back the hold it just placed).
struct CallerState: Sendable {
    enum FollowUp: Sendable {
        case settle(authorization: Int, wallet: Int, amount: Int64, destination: Int?)
        case rollback(authorization: Int, wallet: Int, amount: Int64)
    }

    var random: SplitMix64
    var followUp: FollowUp?
}

/// Generates each scenario's operations and keeps the books on what the
/// server acknowledged. Thread-safe: callers call `nextOperation` and
/// `complete` from completion-queue threads with their own `CallerState`.
final class Workload: Sendable {
    /// The mixed scenario's operation weights (out of their sum), apart from
    /// retries, which take `retryShare` first.
    static let mixedWeights: [(MixedOperation, Int)] = [
        (.credit, 28), (.debit, 28), (.authorize, 17), (.transfer, 11), (.rollbackDebit, 5), (.getBalance, 11),
    ]
    /// Share of mixed-scenario holds that are settled; the rest roll back.
    static let mixedSettleShare = 0.75

    enum MixedOperation: Sendable {
        case credit, debit, authorize, transfer, rollbackDebit, getBalance
    }

    let plan: WorkloadPlan
    let retryShare: Double
    private let picker: WalletPicker
    private let nextNumber = Atomic<Int>(1)
    private let books: Mutex<WorkloadBookkeeping>

    init(plan: WorkloadPlan, zipfExponent: Double, retryShare: Double) {
        precondition(plan.scenario != .echo, "echo has no workload")
        self.plan = plan
        self.retryShare = plan.scenario == .mixed ? retryShare : 0
        picker =
            switch plan.scenario {
            case .hot: .single
            case .zipf: .zipf(ZipfTable(count: plan.walletCount, exponent: zipfExponent))
            default: .uniform(count: plan.walletCount)
            }
        books = Mutex(WorkloadBookkeeping(walletCount: plan.totalWalletCount))
    }

    func makeCaller(seed: UInt64) -> CallerState {
        CallerState(random: SplitMix64(seed: seed), followUp: nil)
    }

    /// Transaction numbers handed out so far (1-based, no gaps).
    var numbersIssued: Int { nextNumber.load(ordering: .relaxed) - 1 }

    func bookkeeping() -> WorkloadBookkeeping { books.withLock { $0 } }

    // MARK: Setup (not timed)

    func defineAssetRequest() -> [UInt8] {
        WorkloadRequests.defineAsset(plan.asset, decimalPlaces: plan.assetDecimalPlaces)
    }

    func createWalletRequest(wallet: Int) -> [UInt8] {
        WorkloadRequests.createWallet(plan.walletID(wallet))
    }

    /// The opening deposit of a wallet; nil for the pot, which starts empty.
    func fundingOperation(wallet: Int) -> WorkloadOperation? {
        guard wallet != plan.potIndex else { return nil }
        return credit(wallet: wallet, amount: WorkloadPlan.fundingPerWallet)
    }

    // MARK: Load

    func nextOperation(_ caller: inout CallerState) -> WorkloadOperation {
        if let followUp = caller.followUp {
            caller.followUp = nil
            return operation(for: followUp)
        }
        let amount = Int64.random(in: 1...WorkloadPlan.amountMax, using: &caller.random)
        switch plan.scenario {
        case .hot, .uniform, .zipf:
            let wallet = picker.pick(using: &caller.random)
            return Bool.random(using: &caller.random)
                ? credit(wallet: wallet, amount: amount) : debit(wallet: wallet, amount: amount)
        case .pot:
            return authorize(wallet: picker.pick(using: &caller.random), amount: amount)
        case .mixed:
            return mixedOperation(&caller, amount: amount)
        case .echo:
            preconditionFailure("echo has no workload")
        }
    }

    /// Books the answer and prepares the caller's follow-up. Returns whether
    /// the answer was what the workload expected.
    @discardableResult
    func complete(_ operation: WorkloadOperation, outcome: CallOutcome, caller: inout CallerState) -> Bool {
        if operation.retry == nil, case .acknowledged = outcome,
            case .authorize(let wallet, let amount) = operation.effect, let number = operation.transactionNumber
        {
            caller.followUp =
                switch plan.scenario {
                case .pot: .settle(authorization: number, wallet: wallet, amount: amount, destination: plan.potIndex)
                default:
                    Double.random(in: 0..<1, using: &caller.random) < Self.mixedSettleShare
                        ? .settle(authorization: number, wallet: wallet, amount: amount, destination: nil)
                        : .rollback(authorization: number, wallet: wallet, amount: amount)
                }
        }
        let keepForRetry = plan.scenario == .mixed && operation.method != .settle && operation.method != .rollback
        return books.withLock { $0.record(operation, outcome: outcome, keepForRetry: keepForRetry) }
    }

    // MARK: Operation builders

    private func mixedOperation(_ caller: inout CallerState, amount: Int64) -> WorkloadOperation {
        if retryShare > 0, Double.random(in: 0..<1, using: &caller.random) < retryShare,
            let retry = books.withLock({ $0.retryCandidate(using: &caller.random) })
        {
            return WorkloadOperation(
                method: retry.method, request: retry.request, transactionNumber: nil, retry: retry)
        }
        let wallet = picker.pick(using: &caller.random)
        switch pickMixed(using: &caller.random) {
        case .credit:
            return credit(wallet: wallet, amount: amount)
        case .debit:
            return debit(wallet: wallet, amount: amount)
        case .authorize:
            return authorize(wallet: wallet, amount: amount)
        case .transfer:
            var payee = picker.pick(using: &caller.random)
            if payee == wallet { payee = (wallet + 1) % plan.walletCount }
            guard payee != wallet else { return credit(wallet: wallet, amount: amount) }
            let number = takeNumber()
            return WorkloadOperation(
                method: .transfer,
                request: WorkloadRequests.transfer(
                    transactionID: plan.transactionID(number), fromWalletID: plan.walletID(wallet),
                    toWalletID: plan.walletID(payee), asset: plan.asset, amount: amount),
                transactionNumber: number, effect: .transfer(from: wallet, to: payee, amount: amount))
        case .rollbackDebit:
            guard let debit = books.withLock({ $0.takeRollbackCandidate(using: &caller.random) }) else {
                return self.debit(wallet: wallet, amount: amount)
            }
            let number = takeNumber()
            return WorkloadOperation(
                method: .rollback,
                request: WorkloadRequests.rollback(
                    transactionID: plan.transactionID(number), targetTransactionID: plan.transactionID(debit.number)),
                transactionNumber: number,
                effect: .rollbackDebit(target: debit.number, wallet: debit.wallet, amount: debit.amount))
        case .getBalance:
            return WorkloadOperation(
                method: .getBalance,
                request: WorkloadRequests.getBalance(walletID: plan.walletID(wallet), asset: plan.asset),
                transactionNumber: nil)
        }
    }

    private func pickMixed(using random: inout SplitMix64) -> MixedOperation {
        let total = Self.mixedWeights.reduce(0) { $0 + $1.1 }
        var roll = Int.random(in: 0..<total, using: &random)
        for (operation, weight) in Self.mixedWeights {
            if roll < weight { return operation }
            roll -= weight
        }
        return .credit
    }

    private func operation(for followUp: CallerState.FollowUp) -> WorkloadOperation {
        let number = takeNumber()
        switch followUp {
        case .settle(let authorization, let wallet, let amount, let destination):
            return WorkloadOperation(
                method: .settle,
                request: WorkloadRequests.settle(
                    transactionID: plan.transactionID(number), authorizationID: plan.transactionID(authorization),
                    destinationWalletID: destination.map(plan.walletID) ?? ""),
                transactionNumber: number,
                effect: .settle(authorization: authorization, wallet: wallet, destination: destination, amount: amount))
        case .rollback(let authorization, let wallet, let amount):
            return WorkloadOperation(
                method: .rollback,
                request: WorkloadRequests.rollback(
                    transactionID: plan.transactionID(number), targetTransactionID: plan.transactionID(authorization)),
                transactionNumber: number,
                effect: .rollbackAuthorization(target: authorization, wallet: wallet, amount: amount))
        }
    }

    private func credit(wallet: Int, amount: Int64) -> WorkloadOperation {
        let number = takeNumber()
        return WorkloadOperation(
            method: .credit,
            request: WorkloadRequests.credit(
                transactionID: plan.transactionID(number), walletID: plan.walletID(wallet), asset: plan.asset,
                amount: amount),
            transactionNumber: number, effect: .credit(wallet: wallet, amount: amount))
    }

    private func debit(wallet: Int, amount: Int64) -> WorkloadOperation {
        let number = takeNumber()
        return WorkloadOperation(
            method: .debit,
            request: WorkloadRequests.debit(
                transactionID: plan.transactionID(number), walletID: plan.walletID(wallet), asset: plan.asset,
                amount: amount),
            transactionNumber: number, effect: .debit(wallet: wallet, amount: amount))
    }

    private func authorize(wallet: Int, amount: Int64) -> WorkloadOperation {
        let number = takeNumber()
        return WorkloadOperation(
            method: .authorize,
            request: WorkloadRequests.authorize(
                transactionID: plan.transactionID(number), walletID: plan.walletID(wallet), asset: plan.asset,
                amount: amount, expiresInMilliseconds: WorkloadPlan.holdExpiryMilliseconds),
            transactionNumber: number, effect: .authorize(wallet: wallet, amount: amount))
    }

    private func takeNumber() -> Int {
        nextNumber.wrappingAdd(1, ordering: .relaxed).oldValue
    }
}
