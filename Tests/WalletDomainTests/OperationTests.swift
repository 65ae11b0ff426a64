import Testing
import WalletDomain
import WalletTestSupport

@Suite("Credit, Debit, Transfer, wallets and assets")
struct OperationTests {
    @Test func creditAddsToTheBucketAgainstTheHouse() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        let result = try await ledger.ok(credit("c1", "alice", 1_000, bucket: "bonus", metadata: ["source": "promo"]))
        let house = ledger.houseWalletID(for: "alice")

        #expect(result.replayed == false)
        #expect(result.transaction.kind == .credit)
        #expect(result.transaction.status == .posted)
        #expect(result.transaction.amount == 1_000)
        #expect(result.transaction.metadata == ["source": "promo"])
        #expect(result.transaction.net("alice", "bonus") == 1_000)
        #expect(result.transaction.net(house) == -1_000)
        #expect(result.balance?.posted == 1_000)
        #expect(result.balance?.available == 1_000)
        #expect(try await ledger.posted("alice", "bonus") == 1_000)
        #expect(try await ledger.posted("alice", "cash") == 0)
        #expect(house.hasPrefix("sys:house:USD:"))
        await ledger.expectAuditClean()
    }

    @Test func creditDefaultsToCash() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c1", "alice", 250))
        #expect(try await ledger.posted("alice", "cash") == 250)
        await ledger.expectAuditClean()
    }

    @Test func debitDrawsBucketsInFundingOrderAndRecordsEachPart() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c-cash", "alice", 300))
        try await ledger.ok(credit("c-bonus", "alice", 500, bucket: "bonus"))
        try await ledger.ok(credit("c-points", "alice", 1_000, bucket: "points"))

        let result = try await ledger.ok(debit("d1", "alice", 700, funding: ["bonus", "cash", "points"]))

        #expect(
            result.transaction.funding == [
                BucketAmount(bucket: "bonus", amount: 500), BucketAmount(bucket: "cash", amount: 200),
            ])
        #expect(result.transaction.net("alice", "bonus") == -500)
        #expect(result.transaction.net("alice", "cash") == -200)
        #expect(result.transaction.net("alice", "points") == 0)
        #expect(result.transaction.net(ledger.houseWalletID(for: "alice")) == 700)
        #expect(try await ledger.posted("alice", "bonus") == 0)
        #expect(try await ledger.posted("alice", "cash") == 100)
        #expect(try await ledger.posted("alice", "points") == 1_000)
        #expect(result.balance?.posted == 1_100)
        await ledger.expectAuditClean()
    }

    @Test func debitDefaultsToCashOnly() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c-cash", "alice", 100))
        try await ledger.ok(credit("c-bonus", "alice", 1_000, bucket: "bonus"))

        try await ledger.fails(debit("d1", "alice", 150), "INSUFFICIENT_FUNDS", code: .failedPrecondition)
        let result = try await ledger.ok(debit("d2", "alice", 100))
        #expect(result.transaction.funding == [BucketAmount(bucket: "cash", amount: 100)])
        #expect(try await ledger.posted("alice", "bonus") == 1_000)
        await ledger.expectAuditClean()
    }

    @Test func debitThatFundingCannotCoverTakesNothing() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c-cash", "alice", 100))
        try await ledger.ok(credit("c-bonus", "alice", 100, bucket: "bonus"))

        let error = try await ledger.fails(debit("d1", "alice", 201, funding: ["cash", "bonus"]), "INSUFFICIENT_FUNDS")
        #expect(error?.metadata["posted"] == "200")
        #expect(error?.metadata["held"] == "0")
        #expect(error?.metadata["available"] == "200")
        #expect(try await ledger.posted("alice", "cash") == 100)
        #expect(try await ledger.posted("alice", "bonus") == 100)
        let pinned = try await ledger.transaction("d1").get()
        #expect(pinned.status == .rejected)
        #expect(pinned.reason == "INSUFFICIENT_FUNDS")
        #expect(pinned.entries.isEmpty)
        await ledger.expectAuditClean()
    }

    @Test func overdraftLetsOnlyCashGoBelowZero() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("vip", overdraftLimit: 500)
        try await ledger.ok(credit("c-bonus", "vip", 300, bucket: "bonus"))

        // Bonus cannot go below zero even though the wallet has an overdraft.
        try await ledger.fails(debit("d-bonus", "vip", 301, funding: ["bonus"]), "INSUFFICIENT_FUNDS")
        // Cash can, down to minus the limit.
        let result = try await ledger.ok(debit("d-cash", "vip", 500))
        #expect(result.transaction.funding == [BucketAmount(bucket: "cash", amount: 500)])
        #expect(try await ledger.posted("vip", "cash") == -500)
        #expect(try await ledger.bucket("vip", "cash").available == -500)
        try await ledger.fails(debit("d-more", "vip", 1), "INSUFFICIENT_FUNDS")
        // Bonus then cash: the bonus is drawn first, then the overdraft... which is used up.
        try await ledger.fails(debit("d-mix", "vip", 301, funding: ["bonus", "cash"]), "INSUFFICIENT_FUNDS")
        let mixed = try await ledger.ok(debit("d-mix2", "vip", 300, funding: ["bonus", "cash"]))
        #expect(mixed.transaction.funding == [BucketAmount(bucket: "bonus", amount: 300)])
        await ledger.expectAuditClean()
    }

    @Test func walletWithoutOverdraftStopsAtZero() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c1", "alice", 100))
        try await ledger.fails(debit("d1", "alice", 101), "INSUFFICIENT_FUNDS")
        try await ledger.ok(debit("d2", "alice", 100))
        #expect(try await ledger.posted("alice") == 0)
        await ledger.expectAuditClean()
    }

    @Test func theHouseMayGoBelowZero() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c1", "alice", 1_000_000))
        let house = ledger.houseWalletID(for: "alice")
        #expect(try await ledger.posted(house) == -1_000_000)
        await ledger.expectAuditClean()
    }

    @Test func transferMovesMoneyBetweenWallets() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("pot")
        try await ledger.wallet("bob")
        try await ledger.ok(credit("c1", "pot", 1_000))

        let result = try await ledger.ok(transfer("t1", from: "pot", to: "bob", 400))
        #expect(result.transaction.kind == .transfer)
        #expect(result.transaction.status == .posted)
        #expect(result.transaction.net("pot") == -400)
        #expect(result.transaction.net("bob") == 400)
        #expect(result.transaction.entries.count == 2)
        // The balance beside a Transfer is the payer's.
        #expect(result.balance?.walletID == "pot")
        #expect(result.balance?.posted == 600)
        #expect(try await ledger.posted("bob") == 400)

        try await ledger.fails(transfer("t2", from: "pot", to: "bob", 601), "INSUFFICIENT_FUNDS")
        #expect(try await ledger.posted("pot") == 600)
        await ledger.expectAuditClean()
    }

    @Test func transferStaysInItsBucket() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("a")
        try await ledger.wallet("b")
        try await ledger.ok(credit("c1", "a", 50, bucket: "points"))
        try await ledger.ok(transfer("t1", from: "a", to: "b", 50, bucket: "points"))
        #expect(try await ledger.posted("b", "points") == 50)
        #expect(try await ledger.posted("b", "cash") == 0)
        await ledger.expectAuditClean()
    }

    @Test func transferRespectsHolds() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("a")
        try await ledger.wallet("b")
        try await ledger.ok(credit("c1", "a", 100))
        try await ledger.ok(authorize("h1", "a", 60))
        try await ledger.fails(transfer("t1", from: "a", to: "b", 41), "INSUFFICIENT_FUNDS")
        try await ledger.ok(transfer("t2", from: "a", to: "b", 40))
        await ledger.expectAuditClean()
    }

    @Test func createWalletAgainWithSameParametersSucceeds() async throws {
        let ledger = try await LedgerHarness()
        let request = try CreateWallet(walletID: "alice", overdraftLimit: 100, labels: ["tier": "gold"])
        let first = try await ledger.store.createWallet(request)
        let second = try await ledger.store.createWallet(request)
        #expect(first.created)
        #expect(second.created == false)
        #expect(second.wallet == first.wallet)
    }

    @Test func createWalletAgainWithALabelInAnotherNormalizationIsWalletExists() async throws {
        let ledger = try await LedgerHarness()
        _ = try await ledger.store.createWallet(
            CreateWallet(walletID: "alice", overdraftLimit: 0, labels: ["note": "caf\u{E9}"]))
        #expect(
            try await ledger.store.createWallet(
                CreateWallet(walletID: "alice", overdraftLimit: 0, labels: ["note": "caf\u{E9}"])
            ).created == false)
        await #expect(throws: LedgerError.self) {
            _ = try await ledger.store.createWallet(
                CreateWallet(walletID: "alice", overdraftLimit: 0, labels: ["note": "cafe\u{301}"]))
        }
    }

    @Test(arguments: [
        (Int64(0), ["tier": "gold"]),
        (Int64(100), ["tier": "silver"]),
        (Int64(100), [:]),
    ])
    func createWalletAgainWithOtherParametersIsWalletExists(overdraft: Int64, labels: [String: String]) async throws {
        let ledger = try await LedgerHarness()
        _ = try await ledger.store.createWallet(
            CreateWallet(walletID: "alice", overdraftLimit: 100, labels: ["tier": "gold"]))
        do {
            _ = try await ledger.store.createWallet(
                CreateWallet(walletID: "alice", overdraftLimit: overdraft, labels: labels))
            Issue.record("expected WALLET_EXISTS")
        } catch {
            #expect(error.code == .alreadyExists)
            #expect(error.reason == "WALLET_EXISTS")
        }
    }

    @Test func defineAssetIsIdempotentAndRefusesOtherDecimalPlaces() async throws {
        let ledger = try await LedgerHarness(assets: [])
        let first = try await ledger.store.defineAsset(DefineAsset(code: "CHIPS", decimalPlaces: 0))
        let again = try await ledger.store.defineAsset(DefineAsset(code: "CHIPS", decimalPlaces: 0))
        #expect(first.created)
        #expect(again.created == false)
        #expect(again.asset == Asset(code: "CHIPS", decimalPlaces: 0))
        do {
            _ = try await ledger.store.defineAsset(DefineAsset(code: "CHIPS", decimalPlaces: 2))
            Issue.record("expected ASSET_EXISTS")
        } catch {
            #expect(error.code == .alreadyExists)
            #expect(error.reason == "ASSET_EXISTS")
        }
        // Defining an asset opens its house slots, so no single house row is hot.
        let state = await ledger.state()
        for slot in 0..<Limits.houseSlotCount {
            #expect(state.wallets[Reserved.houseWalletID(asset: "CHIPS", slot: slot)] != nil)
        }
    }

    @Test func houseSlotIsStablePerWalletAndSpreadsWallets() {
        let slots = (0..<200).map { Reserved.houseSlot(forWallet: "player-\($0)") }
        #expect(slots.allSatisfy { (0..<Limits.houseSlotCount).contains($0) })
        #expect(Set(slots).count > Limits.houseSlotCount / 2)
        #expect(Reserved.houseSlot(forWallet: "alice") == Reserved.houseSlot(forWallet: "alice"))
    }

    @Test func assetsAreKeptApart() async throws {
        let ledger = try await LedgerHarness(assets: ["USD", "EUR"])
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c-usd", "alice", 100, asset: "USD"))
        try await ledger.fails(debit("d-eur", "alice", 1, asset: "EUR"), "INSUFFICIENT_FUNDS")
        try await ledger.fails(transfer("t-eur", from: "alice", to: "alice2", 1, asset: "EUR"), "WALLET_NOT_FOUND")
        #expect(try await ledger.posted("alice", asset: "USD") == 100)
        #expect(try await ledger.posted("alice", asset: "EUR") == 0)
        await ledger.expectAuditClean()
    }

    @Test func balanceReportsPostedHeldAvailablePerBucketAndInTotal() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c1", "alice", 1_000))
        try await ledger.ok(credit("c2", "alice", 200, bucket: "bonus"))
        try await ledger.ok(authorize("h1", "alice", 1_100, funding: ["cash", "bonus"]))

        let balance = try await ledger.balance("alice")
        #expect(balance.posted == 1_200)
        #expect(balance.held == 1_100)
        #expect(balance.available == 100)
        #expect(
            balance.buckets == [
                BucketBalance(bucket: "bonus", posted: 200, held: 100, available: 100),
                BucketBalance(bucket: "cash", posted: 1_000, held: 1_000, available: 0),
            ])
        await ledger.expectAuditClean()
    }

    // MARK: NOT_FOUND records nothing

    @Test func unknownWalletRecordsNothingAndTheSameIDSucceedsLater() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.fails(credit("c1", "ghost", 100), "WALLET_NOT_FOUND", code: .notFound)
        try await ledger.fails(debit("d1", "ghost", 100), "WALLET_NOT_FOUND", code: .notFound)
        try await ledger.fails(authorize("h1", "ghost", 100), "WALLET_NOT_FOUND", code: .notFound)
        await ledger.expectNothingRecorded("c1")
        await ledger.expectNothingRecorded("d1")
        await ledger.expectNothingRecorded("h1")

        try await ledger.wallet("ghost")
        try await ledger.ok(credit("c1", "ghost", 100))
        try await ledger.ok(debit("d1", "ghost", 60))
        try await ledger.ok(authorize("h1", "ghost", 40))
        await ledger.expectAuditClean()
    }

    @Test func unknownAssetRecordsNothingAndTheSameIDSucceedsLater() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.fails(credit("c1", "alice", 100, asset: "EUR"), "ASSET_NOT_FOUND", code: .notFound)
        await ledger.expectNothingRecorded("c1")
        _ = try await ledger.store.defineAsset(DefineAsset(code: "EUR", decimalPlaces: 2))
        let result = try await ledger.ok(credit("c1", "alice", 100, asset: "EUR"))
        #expect(result.replayed == false)
        #expect(try await ledger.posted("alice", asset: "EUR") == 100)
        await ledger.expectAuditClean()
    }

    @Test func transferToUnknownWalletRecordsNothing() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("a")
        try await ledger.ok(credit("c1", "a", 100))
        try await ledger.fails(transfer("t1", from: "a", to: "b", 10), "WALLET_NOT_FOUND", code: .notFound)
        await ledger.expectNothingRecorded("t1")
        try await ledger.wallet("b")
        try await ledger.ok(transfer("t1", from: "a", to: "b", 10))
        #expect(try await ledger.posted("b") == 10)
        await ledger.expectAuditClean()
    }

    // MARK: Overflow

    @Test func creditThatWouldOverflowIsPinnedBalanceOverflow() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("whale")
        try await ledger.ok(credit("c-max", "whale", Int64.max))
        let error = try await ledger.fails(credit("c-one", "whale", 1), "BALANCE_OVERFLOW", code: .failedPrecondition)
        #expect(error?.metadata["posted"] == String(Int64.max))
        #expect(try await ledger.posted("whale") == Int64.max)
        // Pinned: still BALANCE_OVERFLOW after room was made.
        try await ledger.ok(debit("d1", "whale", 10))
        let replay = try await ledger.fails(credit("c-one", "whale", 1), "BALANCE_OVERFLOW", code: .failedPrecondition)
        #expect(replay?.metadata["posted"] == String(Int64.max - 10))
        let pinned = try await ledger.transaction("c-one").get()
        #expect(pinned.status == .rejected)
        #expect(pinned.reason == "BALANCE_OVERFLOW")
        await ledger.expectAuditClean()
    }

    @Test func transferThatWouldOverflowThePayeeIsPinnedBalanceOverflow() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("whale")
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c-max", "whale", Int64.max))
        try await ledger.ok(credit("c-alice", "alice", 10))
        try await ledger.fails(
            transfer("t1", from: "alice", to: "whale", 10), "BALANCE_OVERFLOW", code: .failedPrecondition)
        #expect(try await ledger.posted("alice") == 10)
        #expect(try await ledger.transaction("t1").get().status == .rejected)
        try await ledger.ok(debit("d1", "whale", 100))
        try await ledger.fails(transfer("t1", from: "alice", to: "whale", 10), "BALANCE_OVERFLOW")
        #expect(try await ledger.posted("alice") == 10)
        await ledger.expectAuditClean()
    }

    @Test func creditThatWouldOverflowTheWalletTotalIsBalanceOverflow() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("whale")
        try await ledger.ok(credit("c-max", "whale", Int64.max))
        try await ledger.fails(credit("c-bonus", "whale", 1, bucket: "bonus"), "BALANCE_OVERFLOW")
        #expect(try await ledger.posted("whale", "bonus") == 0)
        await ledger.expectAuditClean()
    }
}
