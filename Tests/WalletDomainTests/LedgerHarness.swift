import Synchronization
import Testing
import WalletDomain
import WalletTestSupport

/// A clock the test moves by hand, in Unix microseconds.
final class TestClock: Sendable {
    private let microseconds: Mutex<Timestamp>

    init(start: Timestamp = 1_700_000_000_000_000) {
        microseconds = Mutex(start)
    }

    var now: Timestamp { microseconds.withLock { $0 } }

    func advance(milliseconds: Int64) {
        microseconds.withLock { $0 += milliseconds * 1000 }
    }
}

/// One in-memory ledger with a hand-moved clock, USD (2 places) defined, and
/// shorthands for the commands the scenarios send.
struct LedgerHarness {
    let clock: TestClock
    let store: InMemoryLedgerStore

    init(assets: [String] = ["USD"]) async throws {
        let clock = TestClock()
        self.clock = clock
        store = InMemoryLedgerStore(clock: { clock.now })
        for asset in assets {
            _ = try await store.defineAsset(DefineAsset(code: asset, decimalPlaces: 2))
        }
    }

    @discardableResult
    func wallet(_ id: String, overdraftLimit: Int64 = 0) async throws -> WalletRecord {
        try await store.createWallet(CreateWallet(walletID: id, overdraftLimit: overdraftLimit, labels: [:])).wallet
    }

    func run(_ command: Command) async -> Result<OperationResult, LedgerError> {
        do throws(LedgerError) {
            return .success(try await store.execute(command, deadline: nil))
        } catch {
            return .failure(error)
        }
    }

    /// Runs a command that must succeed.
    @discardableResult
    func ok(_ command: Command, sourceLocation: SourceLocation = #_sourceLocation) async throws -> OperationResult {
        switch await run(command) {
        case .success(let result):
            return result
        case .failure(let error):
            Issue.record("expected success, got \(error)", sourceLocation: sourceLocation)
            throw error
        }
    }

    /// Runs a command that must fail with `reason`; returns the error.
    @discardableResult
    func fails(
        _ command: Command, _ reason: String, code: ErrorCode? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async -> LedgerError? {
        switch await run(command) {
        case .success(let result):
            Issue.record(
                "expected \(reason), got success \(result.transaction.status)", sourceLocation: sourceLocation)
            return nil
        case .failure(let error):
            #expect(error.reason == reason, "\(error)", sourceLocation: sourceLocation)
            if let code { #expect(error.code == code, sourceLocation: sourceLocation) }
            return error
        }
    }

    func balance(_ walletID: String, asset: String = "USD") async throws -> Balance {
        let balances = try await store.balances(walletID: walletID, asset: asset)
        return try #require(balances.first)
    }

    /// Posted, held, available of one bucket (zeros when it has no row).
    func bucket(_ walletID: String, _ bucket: String = "cash", asset: String = "USD") async throws -> BucketBalance {
        let balance = try await self.balance(walletID, asset: asset)
        return balance.buckets.first { $0.bucket == bucket }
            ?? BucketBalance(bucket: bucket, posted: 0, held: 0, available: 0)
    }

    func posted(_ walletID: String, _ bucket: String = "cash", asset: String = "USD") async throws -> Int64 {
        try await self.bucket(walletID, bucket, asset: asset).posted
    }

    func houseWalletID(for walletID: String, asset: String = "USD") -> String {
        Reserved.houseWalletID(asset: asset, forWallet: walletID)
    }

    func transaction(_ id: String) async -> Result<TransactionRecord, LedgerError> {
        do throws(LedgerError) {
            return .success(try await store.transaction(id: id))
        } catch {
            return .failure(error)
        }
    }

    func state() async -> LedgerState { await store.state }

    /// The contract's invariants hold.
    func expectAuditClean(sourceLocation: SourceLocation = #_sourceLocation) async {
        let problems = LedgerAuditor.problems(in: await store.state, now: clock.now)
        #expect(problems.isEmpty, "\(problems)", sourceLocation: sourceLocation)
    }
}

// MARK: Command shorthands (valid by construction; tests of validation call the initializers)

func credit(
    _ id: String, _ walletID: String, _ amount: Int64, bucket: String = "", asset: String = "USD",
    metadata: [String: String] = [:]
) throws -> Command {
    .credit(
        try Credit(
            transactionID: id, walletID: walletID, asset: asset, amount: amount, bucket: bucket, metadata: metadata))
}

func debit(
    _ id: String, _ walletID: String, _ amount: Int64, funding: [String] = [], asset: String = "USD",
    metadata: [String: String] = [:]
) throws -> Command {
    .debit(
        try Debit(
            transactionID: id, walletID: walletID, asset: asset, amount: amount, funding: funding, metadata: metadata))
}

func authorize(
    _ id: String, _ walletID: String, _ amount: Int64, funding: [String] = [], expiresInMilliseconds: Int64 = 0,
    asset: String = "USD", metadata: [String: String] = [:]
) throws -> Command {
    .authorize(
        try Authorize(
            transactionID: id, walletID: walletID, asset: asset, amount: amount, funding: funding, metadata: metadata,
            expiresInMilliseconds: expiresInMilliseconds))
}

func settle(
    _ id: String, _ authorizationID: String, capture: Int64 = 0, payout: Int64 = 0, payoutBucket: String = "",
    destination: String = "", metadata: [String: String] = [:]
) throws -> Command {
    .settle(
        try Settle(
            transactionID: id, authorizationID: authorizationID, captureAmount: capture, payout: payout,
            payoutBucket: payoutBucket, destinationWalletID: destination, metadata: metadata))
}

func rollback(_ id: String, _ targetID: String, metadata: [String: String] = [:]) throws -> Command {
    .rollback(try Rollback(transactionID: id, targetTransactionID: targetID, metadata: metadata))
}

func reverse(_ id: String, _ originalID: String, reason: String = "correction") throws -> Command {
    .reverse(try Reverse(transactionID: id, originalTransactionID: originalID, reason: reason, metadata: [:]))
}

func transfer(
    _ id: String, from: String, to: String, _ amount: Int64, bucket: String = "", asset: String = "USD"
) throws -> Command {
    .transfer(
        try Transfer(
            transactionID: id, fromWalletID: from, toWalletID: to, asset: asset, amount: amount, bucket: bucket,
            metadata: [:]))
}

extension TransactionRecord {
    /// The net of this transaction's entries on one (wallet, bucket).
    func net(_ walletID: String, _ bucket: String = "cash") -> Int64 {
        entries.filter { $0.walletID == walletID && $0.bucket == bucket }.reduce(0) { $0 + $1.amount }
    }
}

extension LedgerHarness {
    /// No outcome is stored under `id`: the caller may send it again.
    func expectNothingRecorded(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async {
        let state = await store.state
        #expect(state.transactions[id] == nil, "\(id) was recorded", sourceLocation: sourceLocation)
    }
}
