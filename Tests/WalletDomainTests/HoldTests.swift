import Testing
import WalletDomain
import WalletTestSupport

@Suite("Authorize, Settle and expiry")
struct HoldTests {
    /// A player with 1,000 cash and 500 bonus, and a table pot.
    static func seated() async throws -> LedgerHarness {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.wallet("pot")
        try await ledger.ok(credit("c-cash", "alice", 1_000))
        try await ledger.ok(credit("c-bonus", "alice", 500, bucket: "bonus"))
        return ledger
    }

    @Test func authorizeReducesAvailableNotPosted() async throws {
        let ledger = try await Self.seated()
        let result = try await ledger.ok(authorize("h1", "alice", 1_200, funding: ["cash", "bonus"]))

        #expect(result.transaction.kind == .authorize)
        #expect(result.transaction.status == .pending)
        #expect(result.transaction.entries.isEmpty)
        #expect(
            result.transaction.funding == [
                BucketAmount(bucket: "cash", amount: 1_000), BucketAmount(bucket: "bonus", amount: 200),
            ])
        #expect(result.transaction.expiresAt == ledger.clock.now + Limits.holdExpiryDefaultMilliseconds * 1000)
        #expect(result.balance?.posted == 1_500)
        #expect(result.balance?.held == 1_200)
        #expect(result.balance?.available == 300)
        #expect(
            try await ledger.bucket("alice", "cash")
                == BucketBalance(bucket: "cash", posted: 1_000, held: 1_000, available: 0))
        #expect(
            try await ledger.bucket("alice", "bonus")
                == BucketBalance(bucket: "bonus", posted: 500, held: 200, available: 300))

        // What is held cannot be spent twice.
        try await ledger.fails(debit("d1", "alice", 1, funding: ["cash"]), "INSUFFICIENT_FUNDS")
        try await ledger.fails(authorize("h2", "alice", 301, funding: ["cash", "bonus"]), "INSUFFICIENT_FUNDS")
        try await ledger.ok(debit("d2", "alice", 300, funding: ["cash", "bonus"]))
        await ledger.expectAuditClean()
    }

    @Test func settleCapturesPartOfTheHoldAndReleasesTheRest() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 1_200, funding: ["cash", "bonus"]))
        let house = ledger.houseWalletID(for: "alice")
        let houseBefore = try await ledger.posted(house)

        let result = try await ledger.ok(settle("s1", "h1", capture: 700))
        #expect(result.transaction.kind == .settle)
        #expect(result.transaction.status == .posted)
        #expect(result.transaction.amount == 700)
        #expect(result.transaction.targetID == "h1")
        // The capture comes from the hold's buckets in its funding order.
        #expect(result.transaction.net("alice", "cash") == -700)
        #expect(result.transaction.net("alice", "bonus") == 0)
        #expect(result.transaction.net(house) == 700)
        #expect(try await ledger.posted(house) == houseBefore + 700)
        // The rest of the hold is released.
        #expect(result.balance?.walletID == "alice")
        #expect(result.balance?.posted == 800)
        #expect(result.balance?.held == 0)
        #expect(result.balance?.available == 800)
        #expect(try await ledger.transaction("h1").get().status == .settled)
        await ledger.expectAuditClean()
    }

    @Test func settleCaptureSpansTheHoldBucketsInOrder() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 1_200, funding: ["cash", "bonus"]))
        let result = try await ledger.ok(settle("s1", "h1", capture: 1_100))
        #expect(result.transaction.net("alice", "cash") == -1_000)
        #expect(result.transaction.net("alice", "bonus") == -100)
        #expect(try await ledger.posted("alice", "bonus") == 400)
        await ledger.expectAuditClean()
    }

    @Test func settleWithZeroCaptureTakesTheWholeHold() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 600))
        let result = try await ledger.ok(settle("s1", "h1"))
        #expect(result.transaction.amount == 600)
        #expect(try await ledger.posted("alice") == 400)
        await ledger.expectAuditClean()
    }

    @Test func settlePayoutIsCreditedIntoThePayoutBucket() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 100))
        let house = ledger.houseWalletID(for: "alice")
        let houseBefore = try await ledger.posted(house)

        let result = try await ledger.ok(settle("s1", "h1", capture: 100, payout: 250, payoutBucket: "bonus"))
        #expect(result.transaction.net("alice", "cash") == -100)
        #expect(result.transaction.net("alice", "bonus") == 250)
        #expect(try await ledger.posted("alice", "cash") == 900)
        #expect(try await ledger.posted("alice", "bonus") == 750)
        #expect(try await ledger.posted(house) == houseBefore + 100 - 250)
        await ledger.expectAuditClean()
    }

    @Test func settlePayoutDefaultsToCash() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 100))
        try await ledger.ok(settle("s1", "h1", payout: 300))
        #expect(try await ledger.posted("alice", "cash") == 1_200)
        #expect(try await ledger.posted("alice", "bonus") == 500)
        await ledger.expectAuditClean()
    }

    @Test func settleIntoADestinationPutsTheCaptureInItsCash() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("buy-in", "alice", 600, funding: ["bonus", "cash"]))
        let house = ledger.houseWalletID(for: "alice")
        let houseBefore = try await ledger.posted(house)

        let result = try await ledger.ok(settle("commit", "buy-in", destination: "pot"))
        #expect(result.transaction.net("alice", "bonus") == -500)
        #expect(result.transaction.net("alice", "cash") == -100)
        #expect(result.transaction.net("pot", "cash") == 600)
        #expect(result.transaction.counterpartyWalletID == "pot")
        #expect(try await ledger.posted("pot") == 600)
        #expect(try await ledger.posted(house) == houseBefore)
        // The balance beside a Settle is the authorizing wallet's.
        #expect(result.balance?.walletID == "alice")

        // Cash-out at stand-up.
        try await ledger.ok(transfer("cash-out", from: "pot", to: "alice", 600))
        #expect(try await ledger.posted("alice", "cash") == 1_500)
        await ledger.expectAuditClean()
    }

    @Test func settleIntoAnUnknownDestinationRecordsNothing() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 100))
        try await ledger.fails(settle("s1", "h1", destination: "table-9"), "WALLET_NOT_FOUND", code: .notFound)
        await ledger.expectNothingRecorded("s1")
        #expect(try await ledger.transaction("h1").get().status == .pending)
        try await ledger.wallet("table-9")
        try await ledger.ok(settle("s1", "h1", destination: "table-9"))
        #expect(try await ledger.posted("table-9") == 100)
        await ledger.expectAuditClean()
    }

    @Test func settleOfAnUnknownAuthorizationIsNotFoundAndRecordsNothing() async throws {
        let ledger = try await Self.seated()
        try await ledger.fails(settle("s1", "h-late"), "TRANSACTION_NOT_FOUND", code: .notFound)
        await ledger.expectNothingRecorded("s1")
        try await ledger.ok(authorize("h-late", "alice", 100))
        try await ledger.ok(settle("s1", "h-late"))
        await ledger.expectAuditClean()
    }

    @Test func settleOfSomethingThatIsNotAnAuthorizationIsNotFound() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(debit("d1", "alice", 100))
        try await ledger.fails(settle("s1", "d1"), "TRANSACTION_NOT_FOUND", code: .notFound)
        await ledger.expectNothingRecorded("s1")
    }

    @Test func oneSettlePerHold() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 300))
        try await ledger.ok(settle("s1", "h1", capture: 100))
        let error = try await ledger.fails(
            settle("s2", "h1", capture: 100), "ALREADY_SETTLED", code: .failedPrecondition)
        #expect(error?.metadata["posted"] == "1400")
        #expect(try await ledger.posted("alice") == 900)
        // Pinned.
        try await ledger.fails(settle("s2", "h1", capture: 100), "ALREADY_SETTLED")
        #expect(try await ledger.transaction("s2").get().status == .rejected)
        await ledger.expectAuditClean()
    }

    @Test func captureAboveTheHoldIsAmountExceedsHold() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 300))
        try await ledger.fails(settle("s1", "h1", capture: 301), "AMOUNT_EXCEEDS_HOLD", code: .failedPrecondition)
        #expect(try await ledger.posted("alice") == 1_000)
        #expect(try await ledger.bucket("alice").held == 300)
        #expect(try await ledger.transaction("h1").get().status == .pending)
        // Pinned to s1; the hold itself can still be settled by another id.
        try await ledger.fails(settle("s1", "h1", capture: 301), "AMOUNT_EXCEEDS_HOLD")
        try await ledger.ok(settle("s2", "h1", capture: 300))
        #expect(try await ledger.posted("alice") == 700)
        await ledger.expectAuditClean()
    }

    @Test func settleIntoTheAuthorizingWalletItselfIsInvalidAndRecordsNothing() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 300))
        let error = try await ledger.fails(
            settle("s1", "h1", destination: "alice"), "INVALID_DESTINATION_WALLET_ID", code: .invalidArgument)
        #expect(error?.metadata["field"] == "destination_wallet_id")
        await ledger.expectNothingRecorded("s1")
        try await ledger.ok(settle("s1", "h1"))
    }

    @Test func settleAfterExpiryIsHoldExpired() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 300, expiresInMilliseconds: 5_000))
        ledger.clock.advance(milliseconds: 5_000)
        try await ledger.fails(settle("s1", "h1"), "HOLD_EXPIRED", code: .failedPrecondition)
        #expect(try await ledger.posted("alice") == 1_000)
        #expect(try await ledger.transaction("h1").get().status == .expired)
        // Pinned, and the release was written exactly once.
        try await ledger.fails(settle("s1", "h1"), "HOLD_EXPIRED")
        try await ledger.fails(settle("s2", "h1"), "HOLD_EXPIRED")
        let state = await ledger.state()
        #expect(state.transactions.values.filter { $0.kind == .expire && $0.targetID == "h1" }.count == 1)
        await ledger.expectAuditClean()
    }

    @Test func settleJustBeforeExpirySucceeds() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 300, expiresInMilliseconds: 5_000))
        ledger.clock.advance(milliseconds: 4_999)
        try await ledger.ok(settle("s1", "h1"))
        #expect(try await ledger.posted("alice") == 700)
        await ledger.expectAuditClean()
    }

    @Test func expiredHoldStopsCountingBeforeAnySweep() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 1_000, expiresInMilliseconds: 60_000))
        try await ledger.fails(debit("d1", "alice", 1), "INSUFFICIENT_FUNDS")
        ledger.clock.advance(milliseconds: 60_000)

        #expect(try await ledger.bucket("alice").held == 0)
        #expect(try await ledger.bucket("alice").available == 1_000)
        #expect(try await ledger.transaction("h1").get().status == .pending)  // not swept yet
        try await ledger.ok(debit("d2", "alice", 1_000))
        #expect(try await ledger.posted("alice") == 0)
        await ledger.expectAuditClean()
    }

    @Test func defaultExpiryIsFifteenMinutes() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 100))
        ledger.clock.advance(milliseconds: 15 * 60 * 1000 - 1)
        #expect(try await ledger.bucket("alice").held == 100)
        ledger.clock.advance(milliseconds: 1)
        #expect(try await ledger.bucket("alice").held == 0)
    }

    @Test func expireReleasesExactlyOnce() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 400, expiresInMilliseconds: 1_000))
        ledger.clock.advance(milliseconds: 1_000)

        let first = try await ledger.ok(.expire(holdID: "h1"))
        #expect(first.replayed == false)
        #expect(first.transaction.kind == .expire)
        #expect(first.transaction.status == .posted)
        #expect(first.transaction.id == Reserved.expireTransactionID(holdID: "h1"))
        #expect(first.transaction.targetID == "h1")
        #expect(first.transaction.walletID == "alice")
        #expect(first.balance?.held == 0)
        #expect(try await ledger.transaction("h1").get().status == .expired)

        let second = try await ledger.ok(.expire(holdID: "h1"))
        #expect(second.replayed)
        #expect(second.transaction == first.transaction)
        #expect(try await ledger.posted("alice") == 1_000)
        await ledger.expectAuditClean()
    }

    @Test func expireOfAHoldThatHasNotExpiredIsRefusedAndRecordsNothing() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 400, expiresInMilliseconds: 1_000))
        ledger.clock.advance(milliseconds: 999)
        let error = await ledger.fails(.expire(holdID: "h1"), "NOT_EXPIRED")
        #expect(error?.code == .failedPrecondition)
        await ledger.expectNothingRecorded(Reserved.expireTransactionID(holdID: "h1"))
        #expect(try await ledger.transaction("h1").get().status == .pending)
        #expect(try await ledger.bucket("alice").held == 400)

        ledger.clock.advance(milliseconds: 1)
        try await ledger.ok(.expire(holdID: "h1"))
        await ledger.expectAuditClean()
    }

    @Test func expireOfASettledOrUnknownHoldIsRefused() async throws {
        let ledger = try await Self.seated()
        try await ledger.ok(authorize("h1", "alice", 400, expiresInMilliseconds: 1_000))
        try await ledger.ok(settle("s1", "h1"))
        ledger.clock.advance(milliseconds: 2_000)
        await ledger.fails(.expire(holdID: "h1"), "NOT_EXPIRED")
        await ledger.fails(.expire(holdID: "nope"), "NOT_EXPIRED")
        await ledger.expectNothingRecorded(Reserved.expireTransactionID(holdID: "h1"))
        #expect(try await ledger.transaction("h1").get().status == .settled)
    }

    @Test func authorizeIsPinnedInsufficientFunds() async throws {
        let ledger = try await Self.seated()
        let error = try await ledger.fails(
            authorize("h1", "alice", 2_000, funding: ["cash", "bonus"]), "INSUFFICIENT_FUNDS")
        #expect(error?.metadata["available"] == "1500")
        try await ledger.ok(credit("c-more", "alice", 5_000))
        try await ledger.fails(authorize("h1", "alice", 2_000, funding: ["cash", "bonus"]), "INSUFFICIENT_FUNDS")
        #expect(try await ledger.bucket("alice").held == 0)
        await ledger.expectAuditClean()
    }

    @Test func authorizeMayUseTheOverdraftOnCash() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("vip", overdraftLimit: 1_000)
        try await ledger.ok(authorize("h1", "vip", 1_000))
        #expect(try await ledger.bucket("vip").available == -1_000)
        try await ledger.fails(authorize("h2", "vip", 1), "INSUFFICIENT_FUNDS")
        try await ledger.ok(settle("s1", "h1"))
        #expect(try await ledger.posted("vip") == -1_000)
        await ledger.expectAuditClean()
    }
}
