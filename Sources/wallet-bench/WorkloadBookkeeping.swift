import WalletGRPC

/// The status an acknowledged transaction must have in the ledger.
enum ExpectedStatus: String, Sendable {
    case posted = "POSTED"
    case pending = "PENDING"
    case settled = "SETTLED"
    case rolledBack = "ROLLED_BACK"
    case rejected = "REJECTED"
}

/// Everything the run was told by the server, kept to be checked against the
/// database at the end: which transaction ids were acknowledged and with what
/// status they must end, which were answered "nothing recorded", which are
/// in doubt, and how far each wallet's posted balance must have moved.
struct WorkloadBookkeeping: Sendable {
    /// Debits remembered for the mixed scenario's rollbacks.
    static let rollbackCandidatesMax = 10_000
    /// Requests remembered for the mixed scenario's retries.
    static let retryCandidatesMax = 4_096

    private(set) var expectedStatuses: [Int: ExpectedStatus] = [:]
    private(set) var answeredNotRecorded: Set<Int> = []
    private(set) var inDoubt: Set<Int> = []
    /// Posted balance each wallet must end with (setup funding included).
    private(set) var expectedPosted: [Int64]
    private(set) var walletsInDoubt: Set<Int> = []
    private(set) var retriesMatched = 0
    private(set) var retriesMismatched = 0
    private(set) var retriesInDoubt = 0

    private var rollbackCandidates: [(number: Int, wallet: Int, amount: Int64)] = []
    private var retryCandidates: [RetryRecord] = []
    private var retryCandidatesNext = 0

    init(walletCount: Int) {
        expectedPosted = [Int64](repeating: 0, count: walletCount)
    }

    /// Records the answer to `operation`. Returns whether it was what the
    /// workload expected (a retry answered unlike the original is not).
    @discardableResult
    mutating func record(_ operation: WorkloadOperation, outcome: CallOutcome, keepForRetry: Bool) -> Bool {
        if let retry = operation.retry { return recordRetry(retry, outcome: outcome) }
        guard let number = operation.transactionNumber else { return true }
        switch outcome {
        case .acknowledged:
            apply(operation.effect, number: number)
            if keepForRetry { remember(operation, number: number, code: RPCStatus.okCode) }
        case .rejected:
            expectedStatuses[number] = .rejected
            if keepForRetry { remember(operation, number: number, code: RPCStatus.failedPreconditionCode) }
        case .notRecorded:
            answeredNotRecorded.insert(number)
        case .unknown:
            inDoubt.insert(number)
            if let target = operation.effect.target { inDoubt.insert(target) }
            walletsInDoubt.formUnion(operation.effect.wallets)
        }
        return true
    }

    /// A debit nobody rolled back yet, removed from the candidates.
    mutating func takeRollbackCandidate(using random: inout SplitMix64) -> (number: Int, wallet: Int, amount: Int64)? {
        guard !rollbackCandidates.isEmpty else { return nil }
        let index = Int.random(in: 0..<rollbackCandidates.count, using: &random)
        rollbackCandidates.swapAt(index, rollbackCandidates.count - 1)
        return rollbackCandidates.removeLast()
    }

    func retryCandidate(using random: inout SplitMix64) -> RetryRecord? {
        guard !retryCandidates.isEmpty else { return nil }
        return retryCandidates[Int.random(in: 0..<retryCandidates.count, using: &random)]
    }

    private mutating func apply(_ effect: ExpectedEffect, number: Int) {
        switch effect {
        case .none:
            break
        case .credit(let wallet, let amount):
            expectedStatuses[number] = .posted
            expectedPosted[wallet] += amount
        case .debit(let wallet, let amount):
            expectedStatuses[number] = .posted
            expectedPosted[wallet] -= amount
            if rollbackCandidates.count < Self.rollbackCandidatesMax {
                rollbackCandidates.append((number, wallet, amount))
            }
        case .authorize:
            expectedStatuses[number] = .pending
        case .settle(let authorization, let wallet, let destination, let amount):
            expectedStatuses[number] = .posted
            expectedStatuses[authorization] = .settled
            expectedPosted[wallet] -= amount
            if let destination { expectedPosted[destination] += amount }
        case .rollbackDebit(let target, let wallet, let amount):
            expectedStatuses[number] = .posted
            expectedStatuses[target] = .rolledBack
            expectedPosted[wallet] += amount
        case .rollbackAuthorization(let target, _, _):
            expectedStatuses[number] = .posted
            expectedStatuses[target] = .rolledBack
        case .transfer(let from, let to, let amount):
            expectedStatuses[number] = .posted
            expectedPosted[from] -= amount
            expectedPosted[to] += amount
        }
    }

    private mutating func remember(_ operation: WorkloadOperation, number: Int, code: Int32) {
        let record = RetryRecord(
            method: operation.method, request: operation.request, transactionNumber: number, originalCode: code)
        if retryCandidates.count < Self.retryCandidatesMax {
            retryCandidates.append(record)
        } else {
            retryCandidates[retryCandidatesNext] = record
            retryCandidatesNext = (retryCandidatesNext + 1) % Self.retryCandidatesMax
        }
    }

    private mutating func recordRetry(_ retry: RetryRecord, outcome: CallOutcome) -> Bool {
        let matched: Bool
        switch outcome {
        case .acknowledged(let replayed): matched = retry.originalCode == RPCStatus.okCode && replayed == true
        case .rejected: matched = retry.originalCode == RPCStatus.failedPreconditionCode
        case .unknown:
            retriesInDoubt += 1
            return true
        case .notRecorded: matched = false
        }
        if matched { retriesMatched += 1 } else { retriesMismatched += 1 }
        return matched
    }
}
