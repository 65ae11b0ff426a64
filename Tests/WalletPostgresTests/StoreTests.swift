import Foundation
import Testing
import WalletDomain
import WalletPostgres

/// The Postgres store against a real server: persistence of every kind of
/// outcome, replays across restarts, per-wallet serialization under
/// concurrency, two stores (two server instances) on one database, and the
/// verifier catching tampering. After each scenario, `verify` is clean.
@Suite struct StoreTests {
    static func makeStore(_ url: String, mode: WriteMode = .lanes, pool: Int = 4) throws -> PostgresLedgerStore {
        try PostgresLedgerStore(configuration: StoreConfiguration(databaseURL: url, poolSize: pool, writeMode: mode))
    }

    static func seed(_ store: PostgresLedgerStore, wallets: [String], funds: Int64 = 0, overdraft: Int64 = 0)
        async throws
    {
        _ = try await store.defineAsset(try DefineAsset(code: "USD", decimalPlaces: 2))
        for wallet in wallets {
            _ = try await store.createWallet(try CreateWallet(walletID: wallet, overdraftLimit: overdraft, labels: [:]))
            if funds > 0 {
                _ = try await store.execute(try credit("fund-\(wallet)", wallet, funds), deadline: nil)
            }
        }
    }

    static func expectClean(_ url: String) throws {
        let problems = try LedgerVerifier.verify(databaseURL: url)
        #expect(problems.isEmpty, "verify: \(problems)")
    }

    static func credit(_ id: String, _ wallet: String, _ amount: Int64) throws(LedgerError) -> Command {
        .credit(
            try Credit(transactionID: id, walletID: wallet, asset: "USD", amount: amount, bucket: "", metadata: [:]))
    }

    static func debit(_ id: String, _ wallet: String, _ amount: Int64, funding: [String] = []) throws(LedgerError)
        -> Command
    {
        .debit(
            try Debit(
                transactionID: id, walletID: wallet, asset: "USD", amount: amount, funding: funding, metadata: [:]))
    }

    /// Sends `debits` debits of 1 on `wallet` at once; every refusal must be
    /// RESOURCE_EXHAUSTED QUEUE_FULL. Returns the refused transaction ids.
    static func flood(_ store: PostgresLedgerStore, wallet: String, debits: Int, idPrefix: String) async throws
        -> [String]
    {
        try await withThrowingTaskGroup(of: String?.self) { group in
            for index in 0..<debits {
                group.addTask {
                    do throws(LedgerError) {
                        _ = try await store.execute(try debit("\(idPrefix)-\(index)", wallet, 1), deadline: nil)
                        return nil
                    } catch {
                        #expect(error.code == .resourceExhausted)
                        #expect(error.reason == "QUEUE_FULL")
                        return "\(idPrefix)-\(index)"
                    }
                }
            }
            var ids: [String] = []
            for try await id in group { if let id { ids.append(id) } }
            return ids
        }
    }

    @Test func everyOperationPersistsAndReplaysAfterRestart() async throws {
        let url = try TestDatabase.url()
        var store = try Self.makeStore(url)
        try await Self.seed(store, wallets: ["alice", "pot"], funds: 10_000)
        _ = try await store.execute(
            .credit(
                try Credit(
                    transactionID: "bonus-1", walletID: "alice", asset: "USD", amount: 500, bucket: "bonus",
                    metadata: ["src": "promo"])),
            deadline: nil)
        let bet = try await store.execute(
            try Self.debit("bet-1", "alice", 700, funding: ["bonus", "cash"]), deadline: nil)
        #expect(
            bet.transaction.funding == [
                BucketAmount(bucket: "bonus", amount: 500), BucketAmount(bucket: "cash", amount: 200),
            ])
        let hold = try await store.execute(
            .authorize(
                try Authorize(
                    transactionID: "buyin-1", walletID: "alice", asset: "USD", amount: 2_000, funding: [],
                    metadata: [:], expiresInMilliseconds: 0)),
            deadline: nil)
        #expect(hold.balance?.held == 2_000)
        let settle = try await store.execute(
            .settle(
                try Settle(
                    transactionID: "seat-1", authorizationID: "buyin-1", captureAmount: 1_500, payout: 0,
                    payoutBucket: "", destinationWalletID: "pot", metadata: [:])),
            deadline: nil)
        #expect(settle.balance?.held == 0)
        let postedAfterSettle: Int64 = 10_000 + 500 - 700 - 1_500
        #expect(settle.balance?.posted == postedAfterSettle)
        _ = try await store.execute(
            .rollback(try Rollback(transactionID: "cancel-1", targetTransactionID: "bet-1", metadata: [:])),
            deadline: nil)
        _ = try await store.execute(
            .reverse(
                try Reverse(transactionID: "rev-1", originalTransactionID: "bonus-1", reason: "mistake", metadata: [:])),
            deadline: nil)
        _ = try await store.execute(
            .transfer(
                try Transfer(
                    transactionID: "cashout-1", fromWalletID: "pot", toWalletID: "alice", asset: "USD", amount: 1_000,
                    bucket: "", metadata: [:])),
            deadline: nil)
        await #expect(throws: LedgerError.self) {
            _ = try await store.execute(try Self.debit("big-1", "alice", 1_000_000), deadline: nil)
        }
        let before = try await store.balances(walletID: "alice", asset: "USD")
        store.shutdown()

        // A new instance answers replays from the database alone.
        store = try Self.makeStore(url)
        defer { store.shutdown() }
        let replay = try await store.execute(
            try Self.debit("bet-1", "alice", 700, funding: ["bonus", "cash"]), deadline: nil)
        #expect(replay.replayed)
        #expect(replay.transaction.status == .rolledBack)
        #expect(replay.transaction.entries == bet.transaction.entries)
        do throws(LedgerError) {
            _ = try await store.execute(try Self.debit("big-1", "alice", 1_000_000), deadline: nil)
            Issue.record("a pinned rejection must stay rejected")
        } catch {
            #expect(error.reason == "INSUFFICIENT_FUNDS")
            #expect(error.metadata["posted"] == String(before[0].posted))
        }
        let after = try await store.balances(walletID: "alice", asset: "USD")
        #expect(after == before)
        #expect(after[0].posted == 10_000 + 500 - 700 - 1_500 + 700 - 500 + 1_000)
        let history = try await store.history(walletID: "pot", limit: 10, before: nil)
        #expect(history.transactions.map(\.id) == ["cashout-1", "seat-1", "fund-pot"])
        try Self.expectClean(url)
    }

    @Test(arguments: [WriteMode.lanes, WriteMode.perRequest])
    func concurrentDebitsOnOneWalletEndExact(mode: WriteMode) async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url, mode: mode)
        defer { store.shutdown() }
        try await Self.seed(store, wallets: ["hot"], funds: 1_000)
        // 1,500 debits of 1 against 1,000: exactly 1,000 succeed.
        let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<1_500 {
                group.addTask {
                    do throws(LedgerError) {
                        _ = try await store.execute(try Self.debit("d-\(index)", "hot", 1), deadline: nil)
                        return true
                    } catch {
                        #expect(error.reason == "INSUFFICIENT_FUNDS")
                        return false
                    }
                }
            }
            var successes = 0
            for try await ok in group where ok { successes += 1 }
            return successes
        }
        #expect(outcomes == 1_000)
        let balance = try await store.balances(walletID: "hot", asset: "USD")
        #expect(balance[0].posted == 0)
        try Self.expectClean(url)
    }

    @Test func twoStoresOnOneDatabaseStayCorrect() async throws {
        let url = try TestDatabase.url()
        let first = try Self.makeStore(url)
        let second = try Self.makeStore(url)
        defer {
            first.shutdown()
            second.shutdown()
        }
        let wallets = (0..<4).map { "w\($0)" }
        try await Self.seed(first, wallets: wallets, funds: 100_000)
        // Transfers in both directions between the same wallets from both
        // instances, each id sent to both: every transfer applies once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<400 {
                let from = wallets[index % 4]
                let to = wallets[
                    (index + 1 + index / 4) % 4 == index % 4 ? (index + 2) % 4 : (index + 1 + index / 4) % 4]
                let command = Command.transfer(
                    try Transfer(
                        transactionID: "t-\(index)", fromWalletID: from, toWalletID: to, asset: "USD",
                        amount: Int64(index + 1), bucket: "", metadata: [:]))
                group.addTask { _ = try await first.execute(command, deadline: nil) }
                group.addTask { _ = try await second.execute(command, deadline: nil) }
            }
            try await group.waitForAll()
        }
        var total: Int64 = 0
        for wallet in wallets {
            total += try await first.balances(walletID: wallet, asset: "USD")[0].posted
        }
        #expect(total == 400_000)
        try Self.expectClean(url)
    }

    @Test func rollbackRacingItsBetFromTwoInstancesNeverTakesMoney() async throws {
        let url = try TestDatabase.url()
        let first = try Self.makeStore(url)
        let second = try Self.makeStore(url)
        defer {
            first.shutdown()
            second.shutdown()
        }
        try await Self.seed(first, wallets: ["p"], funds: 10_000)
        for index in 0..<50 {
            async let bet: Result<OperationResult, LedgerError> = {
                do throws(LedgerError) {
                    return .success(try await first.execute(try Self.debit("bet-\(index)", "p", 10), deadline: nil))
                } catch {
                    return .failure(error)
                }
            }()
            async let cancel = second.execute(
                .rollback(
                    try Rollback(transactionID: "cancel-\(index)", targetTransactionID: "bet-\(index)", metadata: [:])),
                deadline: nil)
            let (betResult, cancelResult) = await (bet, try cancel)
            switch betResult {
            case .success(let debit):
                // The bet came first: the rollback must have found and undone it.
                #expect(cancelResult.targetFound)
                let stored = try await first.transaction(id: debit.transaction.id)
                #expect(stored.status == .rolledBack)
            case .failure(let error):
                #expect(error.reason == "ALREADY_ROLLED_BACK")
                #expect(!cancelResult.targetFound)
            }
        }
        let balance = try await first.balances(walletID: "p", asset: "USD")
        #expect(balance[0].posted == 10_000)
        try Self.expectClean(url)
    }

    @Test func holdExpiresExactlyOnceAcrossInstances() async throws {
        let url = try TestDatabase.url()
        let first = try Self.makeStore(url)
        let second = try Self.makeStore(url)
        defer {
            first.shutdown()
            second.shutdown()
        }
        try await Self.seed(first, wallets: ["p"], funds: 1_000)
        _ = try await first.execute(
            .authorize(
                try Authorize(
                    transactionID: "h-1", walletID: "p", asset: "USD", amount: 600, funding: [], metadata: [:],
                    expiresInMilliseconds: 200)),
            deadline: nil)
        try await Task.sleep(for: .milliseconds(300))
        // Expired, not yet swept: it no longer counts.
        #expect(try await first.balances(walletID: "p", asset: "USD")[0].available == 1_000)
        #expect(try await first.expiredHolds(limit: 10) == ["h-1"])
        async let a = try? first.execute(.expire(holdID: "h-1"), deadline: nil)
        async let b = try? second.execute(.expire(holdID: "h-1"), deadline: nil)
        let results = await [a, b].compactMap { $0 }
        #expect(!results.isEmpty)
        #expect(Set(results.map(\.transaction.id)).count == 1)
        #expect(try await first.transaction(id: "h-1").status == .expired)
        #expect(try await first.expiredHolds(limit: 10).isEmpty)
        let history = try await first.history(walletID: "p", limit: 10, before: nil)
        #expect(history.transactions.filter { $0.kind == .expire }.count == 1)
        try Self.expectClean(url)
    }

    @Test func aFullLaneAnswersResourceExhaustedAndRecordsNothing() async throws {
        let url = try TestDatabase.url()
        let store = try PostgresLedgerStore(
            configuration: StoreConfiguration(
                databaseURL: url, poolSize: 1, writeMode: .lanes, batchSizeMax: 4, queueDepthMax: 2))
        defer { store.shutdown() }
        try await Self.seed(store, wallets: ["p"], funds: 1_000_000)
        let refused = try await Self.flood(store, wallet: "p", debits: 200, idPrefix: "q")
        #expect(!refused.isEmpty)
        for id in refused {
            await #expect(throws: LedgerError.self) { _ = try await store.transaction(id: id) }
        }
        let posted = try await store.balances(walletID: "p", asset: "USD")[0].posted
        #expect(posted == 1_000_000 - Int64(200 - refused.count))
        try Self.expectClean(url)
    }

    /// A batch updates the balance rows it loaded and inserts the others; an
    /// update that finds fewer rows than it was sent (a row gone behind the
    /// store's back) fails instead of dropping the change.
    @Test func aBalanceUpdateThatMissesARowFailsTheStatement() async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url)
        defer { store.shutdown() }
        try await Self.seed(store, wallets: ["ann"], funds: 300)
        let connection = try PostgresConnection(url: url)
        try Statements.configureSession(connection)
        Statements.prepareAll(on: connection)
        func update(_ wallets: [String]) throws(PostgresError) {
            _ = try connection.pipeline([
                ("begin", []),
                (
                    "update_balances",
                    [
                        PostgresBinaryArray.text(wallets), PostgresBinaryArray.text(wallets.map { _ in "USD" }),
                        PostgresBinaryArray.text(wallets.map { _ in "cash" }),
                        PostgresBinaryArray.int64(wallets.map { _ in 300 }),
                    ]
                ),
                ("commit", []),
            ])
        }

        try update(["ann"])
        let error = try #require(throws: PostgresError.self) { try update(["ann", "nobody"]) }
        #expect(error.sqlState == "22012", "\(error)")
        if connection.isInTransaction { _ = try connection.executeScript("ROLLBACK") }
        let balance = try await store.balances(walletID: "ann", asset: "USD")
        #expect(balance.map(\.posted) == [300])
        try Self.expectClean(url)
    }

    /// One flooded wallet hits its own queue limit; a quiet wallet on the
    /// same lane is not refused.
    @Test func aFloodedWalletIsRefusedWithoutStarvingItsLane() async throws {
        let url = try TestDatabase.url()
        var configuration = StoreConfiguration(
            databaseURL: url, poolSize: 1, writeMode: .lanes, batchSizeMax: 4, queueDepthMax: 10_000)
        configuration.walletQueueDepthMax = 3
        let store = try PostgresLedgerStore(configuration: configuration)
        defer { store.shutdown() }
        try await Self.seed(store, wallets: ["p", "r"], funds: 1_000_000)
        async let quiet: Int = {
            var done = 0
            for index in 0..<30 {
                _ = try await store.execute(try Self.debit("r-\(index)", "r", 1), deadline: nil)
                done += 1
            }
            return done
        }()
        let refused = try await Self.flood(store, wallet: "p", debits: 300, idPrefix: "f")
        #expect(try await quiet == 30)
        #expect(!refused.isEmpty)
        for id in refused {
            await #expect(throws: LedgerError.self) { _ = try await store.transaction(id: id) }
        }
        #expect(
            try await store.balances(walletID: "p", asset: "USD")[0].posted == 1_000_000 - Int64(300 - refused.count))
        #expect(try await store.balances(walletID: "r", asset: "USD")[0].posted == 1_000_000 - 30)
        try Self.expectClean(url)
    }

    @Test func aPassedDeadlineIsRefusedAndTheRetryAppliesOnce() async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url)
        defer { store.shutdown() }
        try await Self.seed(store, wallets: ["p"], funds: 100)
        do throws(LedgerError) {
            _ = try await store.execute(try Self.debit("late-1", "p", 10), deadline: .now - .seconds(1))
            Issue.record("work whose deadline passed must not be applied")
        } catch {
            #expect(error.code == .deadlineExceeded)
        }
        let first = try await store.execute(try Self.debit("late-1", "p", 10), deadline: .now + .seconds(5))
        #expect(!first.replayed)
        #expect(first.balance?.posted == 90)
    }

    @Test func historyPagesNewestFirst() async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url)
        defer { store.shutdown() }
        try await Self.seed(store, wallets: ["p"], funds: 0)
        for index in 0..<25 {
            _ = try await store.execute(try Self.credit("c-\(index)", "p", 1), deadline: nil)
        }
        var seen: [String] = []
        var cursor: Int64? = nil
        repeat {
            let page = try await store.history(walletID: "p", limit: 10, before: cursor)
            seen += page.transactions.map(\.id)
            cursor = page.nextCursor
        } while cursor != nil
        #expect(seen == (0..<25).reversed().map { "c-\($0)" })
    }

    /// Balance reads queued together are answered together (one round trip
    /// per worker cycle); each answer is still the one a read alone would
    /// get: its own wallet's balance with its holds, or its own refusal.
    @Test func balanceReadsQueuedTogetherEachGetTheirOwnAnswer() async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url, pool: 2)
        defer { store.shutdown() }
        let wallets = (0..<10).map { "w\($0)" }
        _ = try await store.defineAsset(try DefineAsset(code: "USD", decimalPlaces: 2))
        for (index, wallet) in wallets.enumerated() {
            _ = try await store.createWallet(try CreateWallet(walletID: wallet, overdraftLimit: 0, labels: [:]))
            _ = try await store.execute(
                try Self.credit("fund-\(wallet)", wallet, Int64(index + 1) * 100), deadline: nil)
        }
        _ = try await store.execute(
            .authorize(
                try Authorize(
                    transactionID: "hold-w3", walletID: "w3", asset: "USD", amount: 50, funding: [], metadata: [:],
                    expiresInMilliseconds: 600_000)),
            deadline: nil)
        let answers = await withTaskGroup(of: (Int, Result<[Balance], LedgerError>).self) { group in
            for index in 0..<600 {
                group.addTask {
                    let wallet = "w\(index % 12)"  // w10 and w11 do not exist
                    let asset = ["USD", "", "EUR"][index % 3]  // EUR is not defined
                    let result = await withCheckedContinuation { continuation in
                        store.submitBalances(walletID: wallet, asset: asset, deadline: nil) {
                            continuation.resume(returning: $0)
                        }
                    }
                    return (index, result)
                }
            }
            var all: [Int: Result<[Balance], LedgerError>] = [:]
            for await (index, result) in group { all[index] = result }
            return all
        }
        #expect(answers.count == 600)
        for (index, result) in answers {
            let walletNumber = index % 12
            let asset = ["USD", "", "EUR"][index % 3]
            switch result {
            case .failure(let error) where walletNumber >= 10:
                #expect(error == .walletNotFound("w\(walletNumber)"))
            case .failure(let error) where asset == "EUR":
                #expect(error == .assetNotFound("EUR"))
            case .success(let balances) where walletNumber < 10 && asset != "EUR":
                let held: Int64 = walletNumber == 3 ? 50 : 0
                #expect(balances.count == 1)
                #expect(balances.first?.walletID == "w\(walletNumber)")
                #expect(balances.first?.asset == "USD")
                #expect(balances.first?.posted == Int64(walletNumber + 1) * 100)
                #expect(balances.first?.held == held)
                #expect(balances.first?.available == Int64(walletNumber + 1) * 100 - held)
            default:
                Issue.record("read \(index) (w\(walletNumber), '\(asset)'): unexpected \(result)")
            }
        }
        try Self.expectClean(url)
    }

    /// Transaction reads queued together are answered together, each with
    /// its own record (and entries) or its own NOT_FOUND; a tombstone (an id
    /// a Rollback saw first) is not found, as alone.
    @Test func transactionReadsQueuedTogetherEachGetTheirOwnAnswer() async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url, pool: 2)
        defer { store.shutdown() }
        try await Self.seed(store, wallets: (0..<5).map { "t\($0)" }, funds: 100)
        let rolledBack = try await store.execute(
            .rollback(try Rollback(transactionID: "rb-ghost", targetTransactionID: "ghost", metadata: [:])),
            deadline: nil)
        #expect(rolledBack.targetFound == false)
        let ids = (0..<300).map { index in
            switch index % 3 {
            case 0: "fund-t\(index % 5)"
            case 1: "missing-\(index)"
            default: "ghost"
            }
        }
        let answers = await withTaskGroup(of: (Int, Result<TransactionRecord, LedgerError>).self) { group in
            for (index, id) in ids.enumerated() {
                group.addTask {
                    let result = await withCheckedContinuation { continuation in
                        store.submitTransaction(id: id, deadline: nil) { continuation.resume(returning: $0) }
                    }
                    return (index, result)
                }
            }
            var all: [Int: Result<TransactionRecord, LedgerError>] = [:]
            for await (index, result) in group { all[index] = result }
            return all
        }
        #expect(answers.count == ids.count)
        for (index, result) in answers {
            let id = ids[index]
            switch result {
            case .success(let record) where id.hasPrefix("fund-"):
                #expect(record.id == id && record.kind == .credit && record.entries.count == 2)
                #expect(record.walletID == "t\(index % 5)")
            case .failure(let error) where !id.hasPrefix("fund-"):
                #expect(error == .transactionNotFound(id))
            default:
                Issue.record("read \(index) (\(id)): unexpected \(result)")
            }
        }
        let late = await withCheckedContinuation { continuation in
            store.submitTransaction(id: "fund-t0", deadline: .now - .seconds(1)) { continuation.resume(returning: $0) }
        }
        guard case .failure(let error) = late else {
            Issue.record("a read past its deadline was answered: \(late)")
            return
        }
        #expect(error.code == .deadlineExceeded)
        try Self.expectClean(url)
    }

    /// History pages queued together are answered together (one statement
    /// finds every page's positions, each with its own LIMIT); each is still
    /// the page a read alone would get: its own wallet's rows newest first,
    /// a cursor only when more rows exist, or its own NOT_FOUND.
    @Test func historyPagesQueuedTogetherEachGetTheirOwnPage() async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url, pool: 2)
        defer { store.shutdown() }
        let counts = ["h0": 0, "h1": 7, "h2": 25, "h3": 3]
        try await Self.seed(store, wallets: counts.keys.sorted())
        var newestFirst: [String: [String]] = [:]
        for (wallet, count) in counts {
            for index in 0..<count {
                _ = try await store.execute(try Self.credit("\(wallet)-\(index)", wallet, 1), deadline: nil)
            }
            newestFirst[wallet] = (0..<count).reversed().map { "\(wallet)-\($0)" }
        }
        typealias Ask = (wallet: String, limit: Int, before: Int64?)
        func pages(_ asks: [Ask]) async -> [Int: Result<HistoryPage, LedgerError>] {
            await withTaskGroup(of: (Int, Result<HistoryPage, LedgerError>).self) { group in
                for (index, ask) in asks.enumerated() {
                    group.addTask {
                        let result = await withCheckedContinuation { continuation in
                            store.submitHistory(
                                walletID: ask.wallet, limit: ask.limit, before: ask.before, deadline: nil
                            ) { continuation.resume(returning: $0) }
                        }
                        return (index, result)
                    }
                }
                var all: [Int: Result<HistoryPage, LedgerError>] = [:]
                for await (index, result) in group { all[index] = result }
                return all
            }
        }
        var firstAsks: [Ask] = []
        for _ in 0..<4 {
            for wallet in counts.keys.sorted() + ["nobody"] {
                for limit in [1, 3, 10, 50] { firstAsks.append((wallet, limit, nil)) }
            }
        }
        let firsts = await pages(firstAsks)
        #expect(firsts.count == firstAsks.count)
        var secondAsks: [Ask] = []
        for (index, result) in firsts {
            let ask = firstAsks[index]
            guard let expected = newestFirst[ask.wallet] else {
                #expect(throws: LedgerError.walletNotFound(ask.wallet)) { try result.get() }
                continue
            }
            guard case .success(let page) = result else {
                Issue.record("page \(index) (\(ask)): \(result)")
                continue
            }
            #expect(page.transactions.map(\.id) == Array(expected.prefix(ask.limit)), "\(ask)")
            #expect((page.nextCursor != nil) == (expected.count > ask.limit), "\(ask)")
            if let cursor = page.nextCursor { secondAsks.append((ask.wallet, ask.limit, cursor)) }
        }
        #expect(!secondAsks.isEmpty)
        for (index, result) in await pages(secondAsks) {
            let ask = secondAsks[index]
            let expected = Array((newestFirst[ask.wallet] ?? []).dropFirst(ask.limit))
            guard case .success(let page) = result else {
                Issue.record("second page \(index) (\(ask)): \(result)")
                continue
            }
            #expect(page.transactions.map(\.id) == Array(expected.prefix(ask.limit)), "\(ask)")
            #expect((page.nextCursor != nil) == (expected.count > ask.limit), "\(ask)")
        }
        let late = await withCheckedContinuation { continuation in
            store.submitHistory(walletID: "h2", limit: 5, before: nil, deadline: .now - .seconds(1)) {
                continuation.resume(returning: $0)
            }
        }
        guard case .failure(let error) = late else {
            Issue.record("a read past its deadline was answered: \(late)")
            return
        }
        #expect(error.code == .deadlineExceeded)
        // A page size outside 1...pageSizeMax from a caller in process is
        // refused alone, before it can join (and fail) a group.
        for limit in [0, -1, Limits.pageSizeMax + 1] {
            do throws(LedgerError) {
                _ = try await store.history(walletID: "h1", limit: limit, before: nil)
                Issue.record("page size \(limit) was accepted")
            } catch {
                #expect(error.code == .invalidArgument && error.reason == "INVALID_PAGE_SIZE")
            }
        }
        try Self.expectClean(url)
    }

    /// Labels travel to Postgres as they are: quotes, backslashes, braces,
    /// commas, non-ASCII and empty values come back byte for byte (and are
    /// compared byte for byte when the same id is created again).
    @Test func awkwardLabelsAreStoredAsGiven() async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url, pool: 2)
        defer { store.shutdown() }
        let labels = [
            "quote": "a\"b", "back\\slash": "x\\y", "brace": "{a,b}", "comma": "1,2", "null": "NULL",
            "uni": "caf\u{e9} \u{2603}", "empty": "", "json": "{\"k\": [1]}",
        ]
        let request = try CreateWallet(walletID: "l@b.e:l-s_1", overdraftLimit: 5, labels: labels)
        let (created, isNew) = try await store.createWallet(request)
        #expect(isNew)
        #expect(created.labels == labels && created.overdraftLimit == 5)
        for (key, value) in labels {
            #expect(RequestFingerprint.sameBytes(created.labels[key] ?? "-", value), "\(key)")
        }
        let again = try await store.createWallet(request)
        #expect(!again.created)
        var changed = labels
        changed["quote"] = "a\"c"
        do throws(LedgerError) {
            _ = try await store.createWallet(
                try CreateWallet(walletID: "l@b.e:l-s_1", overdraftLimit: 5, labels: changed))
            Issue.record("a wallet with other labels was accepted as the same")
        } catch {
            #expect(error.reason == "WALLET_EXISTS")
        }
        try Self.expectClean(url)
    }

    /// A balance read still queued when its caller's deadline passes is
    /// answered DEADLINE_EXCEEDED, not read.
    @Test func aBalanceReadPastItsDeadlineIsAnsweredSo() async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url, pool: 1)
        defer { store.shutdown() }
        try await Self.seed(store, wallets: ["p"], funds: 100)
        let late = await withCheckedContinuation { continuation in
            store.submitBalances(walletID: "p", asset: "USD", deadline: .now - .seconds(1)) {
                continuation.resume(returning: $0)
            }
        }
        guard case .failure(let error) = late else {
            Issue.record("a read past its deadline was answered: \(late)")
            return
        }
        #expect(error.code == .deadlineExceeded)
        let inTime = await withCheckedContinuation { continuation in
            store.submitBalances(walletID: "p", asset: "USD", deadline: .now + .seconds(30)) {
                continuation.resume(returning: $0)
            }
        }
        #expect((try? inTime.get())?.first?.available == 100)
        try Self.expectClean(url)
    }

    /// A worker's generic plans are made at a statement's first execution,
    /// often on a new database's empty tables, and kept. A plan fit only for
    /// empty tables (a hash or merge join, a sequential scan, a scan of a
    /// whole index) gets slower as the ledger grows: every statement a
    /// worker registers, planned on empty tables, must still find its rows by
    /// key. The statements are taken from the registry, so one added later
    /// is checked without being listed here.
    @Test func workerPlansMadeOnEmptyTablesLookRowsUpByKey() throws {
        let url = try TestDatabase.url()
        try Self.makeStore(url).shutdown()  // migrates
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        try Statements.configureSession(connection)
        Statements.prepareAll(on: connection)
        let registered = connection.registeredStatementsByName
        // load_assets reads the whole (small) assets table on purpose.
        let skipped: Set<String> = ["load_assets"]
        var checked: [String] = []
        for (name, sql) in registered.sorted(by: { $0.key < $1.key }) where !skipped.contains(name) {
            let verb = sql.drop { $0.isWhitespace }.prefix { $0.isLetter }.uppercased()
            // Transaction control has no plan.
            guard !["BEGIN", "COMMIT", "ROLLBACK", "SET"].contains(verb) else { continue }
            // Prepared again from SQL, under a name of its own, so that the
            // database says what its parameters are; with the worker's forced
            // generic plan, EXPLAIN makes the plan now, on these empty tables,
            // as a worker's first batch would (and does not run it).
            let copy = "plan_check_\(name)"
            try connection.executeScript("PREPARE \(copy) AS \(sql)")
            let types = try connection.execute(
                "SELECT unnest(parameter_types)::text FROM pg_prepared_statements WHERE name = $1", [copy])
            let arguments = try (0..<types.rowCount).map { row in
                let type = types.string(row: row, column: 0) ?? ""
                switch type {
                case "text[]": return "'{a,b}'"
                case "bigint[]": return "'{10,20}'"
                case "integer[]": return "'{5,5}'"
                case "boolean[]": return "'{t,f}'"
                case "bytea[]": return "ARRAY['\\x00'::bytea, '\\x01'::bytea]"
                case "text": return "'a'"
                case "bigint", "integer": return "1"
                default: throw PlanCheckError(description: "\(name): no sample argument for parameter type \(type)")
                }
            }
            let call = arguments.isEmpty ? copy : "\(copy)(\(arguments.joined(separator: ", ")))"
            let plan = try connection.execute("EXPLAIN EXECUTE \(call)")
            let lines = (0..<plan.rowCount).map { plan.string(row: $0, column: 0) ?? "" }
            for bad in ["Hash Join", "Merge Join", "Seq Scan"] {
                #expect(!lines.contains { $0.contains(bad) }, "\(name): \(bad)\n\(lines.joined(separator: "\n"))")
            }
            for (index, line) in lines.enumerated()
            where line.contains("Index Scan") || line.contains("Index Only Scan") {
                #expect(
                    index + 1 < lines.count && lines[index + 1].contains("Index Cond"),
                    "\(name): an index scanned whole\n\(lines.joined(separator: "\n"))")
            }
            checked.append(name)
        }
        // The registry is what a worker prepares: the reads under the locks,
        // the batch writes and the grouped reads are all in it.
        for name in ["lock_wallets", "load_entries", "load_open_holds", "update_balances", "load_history_pages"] {
            #expect(checked.contains(name), "\(name) was not checked")
        }
        #expect(checked.count >= 20, "checked only \(checked)")
    }

    struct PlanCheckError: Error, CustomStringConvertible {
        let description: String
    }

    /// Migration 4 moved the entries' keys onto their transactions' rows. A
    /// ledger written before it (made here by undoing the migration's schema
    /// changes) gets every row's keys: it verifies clean, a transaction is
    /// answered with the same entries, and a reverse (which reads the
    /// original's entries) still applies.
    @Test func migrationFourGivesEarlierRowsTheirEntryKeys() async throws {
        let url = try TestDatabase.url()
        var store = try Self.makeStore(url)
        try await Self.seed(store, wallets: ["p"], funds: 1_000)
        _ = try await store.execute(try Self.debit("d1", "p", 300), deadline: nil)
        let before = try await store.transaction(id: "d1")
        store.shutdown()
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        try connection.executeScript(
            """
            ALTER TABLE transactions DROP COLUMN entry_wallets, DROP COLUMN entry_sequences;
            CREATE INDEX entries_by_transaction ON entries (transaction_id);
            ALTER TABLE wallet_history ADD PRIMARY KEY (position);
            DROP INDEX transactions_hold_expiry;
            CREATE INDEX transactions_hold_expiry ON transactions (expires_at)
                WHERE kind = 'AUTHORIZE' AND status = 'PENDING';
            DELETE FROM schema_migrations WHERE version = 4;
            """)
        store = try Self.makeStore(url)
        defer { store.shutdown() }
        let keys = try connection.execute(
            """
            SELECT t.transaction_id, cardinality(t.entry_wallets) AS keys,
                   t.entry_wallets = array_agg(e.wallet_id ORDER BY e.entry_index)
                   AND t.entry_sequences = array_agg(e.sequence ORDER BY e.entry_index) AS same
            FROM transactions t JOIN entries e USING (transaction_id) GROUP BY t.transaction_id ORDER BY 1
            """)
        #expect(keys.rowCount == 2)
        for row in 0..<keys.rowCount {
            #expect(keys.int64(row: row, column: "keys") == 2)
            #expect(keys.bool(row: row, column: "same") == true)
        }
        // The previous build's insert (no entry keys) fails instead of
        // writing a row whose entries no key finds.
        let refused = try #require(throws: PostgresError.self) {
            _ = try connection.execute(
                """
                INSERT INTO transactions (transaction_id, kind, status, wallet_id, asset, amount, created_at,
                    request_hash)
                VALUES ('old-build', 'CREDIT', 'POSTED', 'p', 'USD', 1, 0, '\\x00')
                """)
        }
        #expect(refused.sqlState == "23502")  // not_null_violation
        let gone = try connection.execute(
            "SELECT to_regclass('entries_by_transaction') IS NULL AND to_regclass('wallet_history_pkey') IS NULL")
        #expect(gone.bool(row: 0, column: 0) == true)
        try Self.expectClean(url)
        let after = try await store.transaction(id: "d1")
        #expect(after.entries.count == 2)
        #expect(after.entries == before.entries)
        let replay = try await store.execute(try Self.debit("d1", "p", 300), deadline: nil)
        #expect(replay.replayed && replay.transaction.entries == before.entries)
        let reversed = try await store.execute(
            .reverse(try Reverse(transactionID: "r1", originalTransactionID: "d1", reason: "test", metadata: [:])),
            deadline: nil)
        #expect(reversed.transaction.entries.count == 2)
        #expect(try await store.balances(walletID: "p", asset: "USD").first?.available == 1_000)
        try Self.expectClean(url)
    }

    @Test func verifyReportsTamperingAndEntriesAreAppendOnly() async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url)
        try await Self.seed(store, wallets: ["p"], funds: 1_000)
        store.shutdown()
        try Self.expectClean(url)
        let connection = try PostgresConnection(url: url)
        #expect(throws: PostgresError.self) {
            _ = try connection.execute("UPDATE entries SET amount = amount + 1 WHERE wallet_id = 'p'")
        }
        #expect(throws: PostgresError.self) { _ = try connection.execute("TRUNCATE entries") }
        #expect(throws: PostgresError.self) { _ = try connection.execute("TRUNCATE wallet_history") }
        // A status changed without the transaction that changes it.
        _ = try connection.execute("UPDATE transactions SET status = 'REVERSED' WHERE transaction_id = 'fund-p'")
        #expect(try LedgerVerifier.verify(databaseURL: url).contains { $0.contains("compensation") })
        _ = try connection.execute("UPDATE transactions SET status = 'POSTED' WHERE transaction_id = 'fund-p'")
        try Self.expectClean(url)
        // An entry whose transaction row is gone (no foreign key since
        // migration 2): verify finds the orphan.
        _ = try connection.execute("ALTER TABLE transactions RENAME TO transactions_kept")
        _ = try connection.execute(
            "CREATE TABLE transactions AS SELECT * FROM transactions_kept WHERE transaction_id <> 'fund-p'")
        #expect(try LedgerVerifier.verify(databaseURL: url).contains { $0.contains("entry without its transaction") })
        _ = try connection.executeScript(
            "DROP TABLE transactions; ALTER TABLE transactions_kept RENAME TO transactions")
        try Self.expectClean(url)
        // A transaction's amount changed behind the service's back: no
        // chain covers the row, the entries no longer match it.
        _ = try connection.execute("UPDATE transactions SET amount = amount + 1 WHERE transaction_id = 'fund-p'")
        #expect(
            try LedgerVerifier.verify(databaseURL: url).contains { $0.contains("differ from the transaction's amount") }
        )
        _ = try connection.execute("UPDATE transactions SET amount = amount - 1 WHERE transaction_id = 'fund-p'")
        try Self.expectClean(url)
        // A transaction row whose entry keys (migration 4) lost one.
        _ = try connection.execute(
            "UPDATE transactions SET entry_wallets = entry_wallets[1:1], entry_sequences = entry_sequences[1:1] "
                + "WHERE transaction_id = 'fund-p'")
        #expect(
            try LedgerVerifier.verify(databaseURL: url).contains { $0.contains("entry keys and its entries disagree") })
        _ = try connection.execute(
            """
            UPDATE transactions t SET entry_wallets = k.wallets, entry_sequences = k.sequences
            FROM (SELECT array_agg(wallet_id ORDER BY entry_index) AS wallets,
                         array_agg(sequence ORDER BY entry_index) AS sequences
                  FROM entries WHERE transaction_id = 'fund-p') k
            WHERE t.transaction_id = 'fund-p'
            """)
        try Self.expectClean(url)
        // A history row written with a position already taken.
        _ = try connection.execute(
            "INSERT INTO wallet_history (position, wallet_id, transaction_id) "
                + "SELECT position, wallet_id, transaction_id FROM wallet_history LIMIT 1")
        #expect(try LedgerVerifier.verify(databaseURL: url).contains { $0.contains("history position repeats") })
        _ = try connection.executeScript(
            """
            ALTER TABLE wallet_history DISABLE TRIGGER wallet_history_append_only;
            DELETE FROM wallet_history WHERE ctid = (SELECT max(ctid) FROM wallet_history);
            ALTER TABLE wallet_history ENABLE TRIGGER wallet_history_append_only;
            """)
        try Self.expectClean(url)
        _ = try connection.execute("UPDATE balances SET posted = posted + 5 WHERE wallet_id = 'p'")
        var problems = try LedgerVerifier.verify(databaseURL: url)
        #expect(problems.contains { $0.contains("posted differs") })
        // Rewrite history behind the trigger's back: the chain shows it.
        _ = try connection.executeScript(
            """
            ALTER TABLE entries DISABLE TRIGGER entries_append_only;
            UPDATE entries SET amount = amount + 5 WHERE wallet_id = 'p';
            UPDATE entries SET amount = amount - 5 WHERE wallet_id LIKE 'sys:house:%' AND transaction_id = 'fund-p';
            ALTER TABLE entries ENABLE TRIGGER entries_append_only;
            """)
        problems = try LedgerVerifier.verify(databaseURL: url)
        #expect(problems.contains { $0.contains("hash chain breaks") })
    }

    /// CreateWallet queues on the wallet's lane and many are created in one
    /// transaction; the answers are those of one request after another.
    @Test(arguments: [WriteMode.lanes, WriteMode.perRequest])
    func concurrentCreatesAnswerAsIfOneAfterAnother(mode: WriteMode) async throws {
        let url = try TestDatabase.url()
        let store = try Self.makeStore(url, mode: mode, pool: 2)
        _ = try await store.defineAsset(try DefineAsset(code: "USD", decimalPlaces: 2))
        let outcomes = try await withThrowingTaskGroup(of: (Int, Result<Bool, LedgerError>).self) { group in
            // 600 distinct wallets, each asked for 3 times at once: twice
            // with the same parameters, once with another overdraft.
            for index in 0..<1_800 {
                group.addTask {
                    let wallet = index % 600
                    let overdraft: Int64 = index >= 1_200 ? 7 : 0
                    let request = try CreateWallet(
                        walletID: "c\(wallet)", overdraftLimit: overdraft, labels: ["n": "\(wallet)"])
                    do throws(LedgerError) {
                        return (index, .success(try await store.createWallet(request).created))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            var all: [Int: Result<Bool, LedgerError>] = [:]
            for try await (index, outcome) in group { all[index] = outcome }
            return all
        }
        for wallet in 0..<600 {
            let answers = [wallet, wallet + 600, wallet + 1_200].map { outcomes[$0]! }
            let created = answers.filter { if case .success(true) = $0 { true } else { false } }.count
            #expect(created == 1, "wallet c\(wallet) created \(created) times")
            let mismatches = answers.filter {
                if case .failure(let e) = $0 { e.reason == "WALLET_EXISTS" } else { false }
            }
            // The odd one out either created the wallet (then both others
            // mismatch) or came after the first of the others (then it alone does).
            if case .success(true) = answers[2] {
                #expect(mismatches.count == 2)
            } else {
                #expect(mismatches.count == 1)
                if case .failure(let error) = answers[2] { #expect(error.reason == "WALLET_EXISTS") }
            }
        }
        let connection = try PostgresConnection(url: url)
        let count = try connection.execute("SELECT count(*) FROM wallets WHERE wallet_id LIKE 'c%'")
        #expect(count.int64(row: 0, column: 0) == 600)
        store.shutdown()
        try Self.expectClean(url)
    }
}
