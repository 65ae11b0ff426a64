import Testing
import WalletDomain
import WalletTestSupport

@Suite("Rollback and Reverse")
struct RollbackReverseTests {
    static func funded() async throws -> LedgerHarness {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.wallet("pot")
        try await ledger.ok(credit("c-cash", "alice", 100))
        try await ledger.ok(credit("c-bonus", "alice", 500, bucket: "bonus"))
        return ledger
    }

    // MARK: Rollback

    @Test func rollbackOfADebitReturnsMoneyToExactlyItsBuckets() async throws {
        let ledger = try await Self.funded()
        let house = ledger.houseWalletID(for: "alice")
        let houseBefore = try await ledger.posted(house)
        try await ledger.ok(debit("bet", "alice", 300, funding: ["cash", "bonus"]))
        #expect(try await ledger.posted("alice", "cash") == 0)
        #expect(try await ledger.posted("alice", "bonus") == 300)

        let result = try await ledger.ok(rollback("cancel", "bet"))
        #expect(result.targetFound)
        #expect(result.replayed == false)
        #expect(result.transaction.kind == .rollback)
        #expect(result.transaction.status == .posted)
        #expect(result.transaction.targetID == "bet")
        #expect(result.transaction.net("alice", "cash") == 100)
        #expect(result.transaction.net("alice", "bonus") == 200)
        #expect(try await ledger.posted("alice", "cash") == 100)
        #expect(try await ledger.posted("alice", "bonus") == 500)
        #expect(try await ledger.posted(house) == houseBefore)
        #expect(try await ledger.transaction("bet").get().status == .rolledBack)
        #expect(result.balance?.posted == 600)
        await ledger.expectAuditClean()
    }

    @Test func rollbackOfAnAuthorizationReleasesTheHold() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(authorize("seat", "alice", 550, funding: ["cash", "bonus"]))
        let result = try await ledger.ok(rollback("stand", "seat"))
        #expect(result.targetFound)
        #expect(result.transaction.entries.isEmpty)
        #expect(result.balance?.held == 0)
        #expect(result.balance?.available == 600)
        #expect(try await ledger.transaction("seat").get().status == .rolledBack)
        try await ledger.fails(settle("s1", "seat"), "ALREADY_ROLLED_BACK", code: .failedPrecondition)
        await ledger.expectAuditClean()
    }

    @Test func secondRollbackOfTheSameTargetIsOKAndMovesNoMoney() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(debit("bet", "alice", 100))
        try await ledger.ok(rollback("cancel-1", "bet"))
        let before = await ledger.state().postings
        let second = try await ledger.ok(rollback("cancel-2", "bet"))
        #expect(second.targetFound)
        #expect(second.replayed == false)
        #expect(second.transaction.entries.isEmpty)
        #expect(await ledger.state().postings == before)
        #expect(try await ledger.posted("alice") == 100)
        await ledger.expectAuditClean()
    }

    @Test func rollbackReplayReturnsTheSameAnswer() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(debit("bet", "alice", 100))
        let first = try await ledger.ok(rollback("cancel", "bet"))
        let replay = try await ledger.ok(rollback("cancel", "bet"))
        #expect(replay.replayed)
        #expect(replay.targetFound)
        #expect(replay.transaction == first.transaction)
        #expect(try await ledger.posted("alice") == 100)
        await ledger.expectAuditClean()
    }

    @Test func rollbackOfAnExpiredHoldIsOKTargetFoundAndMovesNoMoney() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(authorize("seat", "alice", 100, expiresInMilliseconds: 1_000))
        ledger.clock.advance(milliseconds: 1_000)
        let result = try await ledger.ok(rollback("stand", "seat"))
        #expect(result.targetFound)
        #expect(result.transaction.entries.isEmpty)
        #expect(try await ledger.transaction("seat").get().status == .expired)
        // The release happened exactly once: a sweep now is a replay.
        #expect(try await ledger.ok(.expire(holdID: "seat")).replayed)
        #expect(try await ledger.posted("alice") == 100)
        await ledger.expectAuditClean()
    }

    @Test func rollbackOfAnUnknownTargetLeavesATombstone() async throws {
        let ledger = try await Self.funded()
        let result = try await ledger.ok(rollback("cancel", "late-bet"))
        #expect(result.targetFound == false)
        #expect(result.transaction.entries.isEmpty)
        #expect(result.transaction.kind == .rollback)

        // The bet arrives after its cancel: refused, no money taken.
        let debitError = try await ledger.fails(
            debit("late-bet", "alice", 50), "ALREADY_ROLLED_BACK", code: .failedPrecondition)
        #expect(debitError != nil)
        #expect(try await ledger.posted("alice") == 100)
        // Retried: the same answer.
        try await ledger.fails(debit("late-bet", "alice", 50), "ALREADY_ROLLED_BACK", code: .failedPrecondition)

        try await ledger.ok(rollback("cancel-2", "late-hold"))
        try await ledger.fails(authorize("late-hold", "alice", 50), "ALREADY_ROLLED_BACK", code: .failedPrecondition)
        #expect(try await ledger.bucket("alice").held == 0)

        // The rollback itself replays with target_found still false.
        let replay = try await ledger.ok(rollback("cancel", "late-bet"))
        #expect(replay.replayed)
        #expect(replay.targetFound == false)
        await ledger.expectAuditClean()
    }

    @Test func secondRollbackOfAnUnknownTargetIsOKAndLeavesOneTombstone() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(rollback("cancel-1", "late-bet"))
        let second = try await ledger.ok(rollback("cancel-2", "late-bet"))
        #expect(second.replayed == false)
        #expect(second.transaction.entries.isEmpty)
        try await ledger.fails(debit("late-bet", "alice", 50), "ALREADY_ROLLED_BACK")
        #expect(try await ledger.posted("alice") == 100)
        await ledger.expectAuditClean()
    }

    /// Contract: business rejections carry the wallet's current balance
    /// (`posted`, `held`, `available`) in the ErrorInfo metadata.
    @Test func betRefusedByATombstoneCarriesTheBalance() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(rollback("cancel", "late-bet"))
        let error = try await ledger.fails(debit("late-bet", "alice", 50), "ALREADY_ROLLED_BACK")
        #expect(error?.metadata["posted"] == "600")
        #expect(error?.metadata["held"] == "0")
        #expect(error?.metadata["available"] == "600")
    }

    /// Contract: a pinned business rejection is a transaction with status
    /// REJECTED that GetTransaction returns.
    @Test func betRefusedByATombstoneIsAPinnedRejectedTransaction() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(rollback("cancel", "late-bet"))
        try await ledger.fails(debit("late-bet", "alice", 50), "ALREADY_ROLLED_BACK")
        let record = await ledger.transaction("late-bet")
        #expect((try? record.get())?.status == .rejected, "\(record)")
    }

    @Test func rollbackOfASettledAuthorizationIsAlreadySettled() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(authorize("seat", "alice", 100))
        try await ledger.ok(settle("commit", "seat", destination: "pot"))
        let error = try await ledger.fails(rollback("undo", "seat"), "ALREADY_SETTLED", code: .failedPrecondition)
        #expect(error?.metadata["posted"] == "500")
        #expect(try await ledger.posted("pot") == 100)
        #expect(try await ledger.transaction("undo").get().status == .rejected)
        await ledger.expectAuditClean()
    }

    @Test(arguments: ["credit", "transfer", "settle", "rollback"])
    func rollbackOfAnythingButDebitOrAuthorizationIsNotRollbackable(kind: String) async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(debit("bet", "alice", 10))
        try await ledger.ok(transfer("move", from: "alice", to: "pot", 10))
        try await ledger.ok(authorize("seat", "alice", 10))
        try await ledger.ok(settle("commit", "seat"))
        try await ledger.ok(rollback("cancel", "bet"))
        let target = ["credit": "c-cash", "transfer": "move", "settle": "commit", "rollback": "cancel"][kind]!
        let before = await ledger.state().postings

        try await ledger.fails(rollback("undo", target), "NOT_ROLLBACKABLE", code: .failedPrecondition)
        #expect(await ledger.state().postings == before)
        await ledger.expectAuditClean()
    }

    @Test func rollbackOfARejectedDebitIsOKAndMovesNoMoney() async throws {
        let ledger = try await Self.funded()
        try await ledger.fails(debit("bet", "alice", 10_000), "INSUFFICIENT_FUNDS")
        let result = try await ledger.ok(rollback("cancel", "bet"))
        #expect(result.targetFound)
        #expect(result.transaction.entries.isEmpty)
        #expect(try await ledger.posted("alice") == 100)
        await ledger.expectAuditClean()
    }

    @Test func rollbackIsNotRefusedByTheOverdraftOrLimits() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("vip", overdraftLimit: 200)
        try await ledger.ok(debit("bet", "vip", 200))
        try await ledger.ok(rollback("cancel", "bet"))
        #expect(try await ledger.posted("vip") == 0)
        await ledger.expectAuditClean()
    }

    // MARK: Reverse

    /// A store that lost a posted transaction's entries must not answer a
    /// reversal that posts nothing and marks the original reversed.
    @Test func reverseOfATransactionWithoutItsEntriesFailsAndChangesNothing() async throws {
        let ledger = try await Self.funded()
        var state = await ledger.state()
        var credit = try #require(state.transactions["c-cash"])
        credit.entries = []
        state.load(transaction: credit)
        let result = Ledger.apply(try reverse("undo", "c-cash"), to: &state, now: ledger.clock.now)
        guard case .failure(let error) = result else {
            Issue.record("a reversal without entries succeeded: \(result)")
            return
        }
        #expect(error.code == .internal)
        #expect(state.transactions["c-cash"]?.status == .posted)
        #expect(state.transactions["undo"] == nil)
    }

    @Test func reverseOfACreditCompensatesItOnce() async throws {
        let ledger = try await Self.funded()
        let house = ledger.houseWalletID(for: "alice")
        let houseBefore = try await ledger.posted(house)
        let result = try await ledger.ok(reverse("fix-1", "c-bonus", reason: "wrong bonus"))
        #expect(result.transaction.kind == .reverse)
        #expect(result.transaction.status == .posted)
        #expect(result.transaction.targetID == "c-bonus")
        #expect(result.transaction.net("alice", "bonus") == -500)
        #expect(try await ledger.posted("alice", "bonus") == 0)
        #expect(try await ledger.posted(house) == houseBefore + 500)
        #expect(try await ledger.transaction("c-bonus").get().status == .reversed)

        try await ledger.fails(reverse("fix-2", "c-bonus"), "ALREADY_REVERSED", code: .failedPrecondition)
        #expect(try await ledger.posted("alice", "bonus") == 0)
        await ledger.expectAuditClean()
    }

    @Test func reverseOfADebitReturnsTheMoneyToItsBuckets() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(debit("bet", "alice", 300, funding: ["cash", "bonus"]))
        let result = try await ledger.ok(reverse("fix", "bet"))
        #expect(result.transaction.net("alice", "cash") == 100)
        #expect(result.transaction.net("alice", "bonus") == 200)
        #expect(try await ledger.transaction("bet").get().status == .reversed)
        try await ledger.fails(reverse("fix-2", "bet"), "ALREADY_REVERSED")
        // A reversed debit can no longer be rolled back.
        try await ledger.fails(rollback("cancel", "bet"), "ALREADY_REVERSED")
        #expect(try await ledger.posted("alice", "cash") == 100)
        #expect(try await ledger.posted("alice", "bonus") == 500)
        await ledger.expectAuditClean()
    }

    @Test func reverseOfASettleUndoesCapturePayoutAndDestination() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(authorize("seat", "alice", 100))
        try await ledger.ok(settle("commit", "seat", payout: 40, payoutBucket: "bonus", destination: "pot"))
        #expect(try await ledger.posted("pot") == 100)

        let result = try await ledger.ok(reverse("fix", "commit"))
        #expect(result.transaction.net("pot") == -100)
        #expect(result.transaction.net("alice", "cash") == 100)
        #expect(result.transaction.net("alice", "bonus") == -40)
        #expect(try await ledger.posted("pot") == 0)
        #expect(try await ledger.posted("alice", "cash") == 100)
        #expect(try await ledger.posted("alice", "bonus") == 500)
        #expect(try await ledger.transaction("commit").get().status == .reversed)
        // The authorization stays SETTLED.
        #expect(try await ledger.transaction("seat").get().status == .settled)
        try await ledger.fails(reverse("fix-2", "commit"), "ALREADY_REVERSED")
        await ledger.expectAuditClean()
    }

    @Test func reverseOfARolledBackDebitIsAlreadyRolledBack() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(debit("bet", "alice", 50))
        try await ledger.ok(rollback("cancel", "bet"))
        try await ledger.fails(reverse("fix", "bet"), "ALREADY_ROLLED_BACK")
        #expect(try await ledger.posted("alice") == 100)
        await ledger.expectAuditClean()
    }

    @Test func reverseOfAnUnknownTransactionIsNotFoundAndRecordsNothing() async throws {
        let ledger = try await Self.funded()
        try await ledger.fails(reverse("fix", "nope"), "TRANSACTION_NOT_FOUND", code: .notFound)
        await ledger.expectNothingRecorded("fix")
        try await ledger.ok(debit("nope", "alice", 10))
        try await ledger.ok(reverse("fix", "nope"))
        await ledger.expectAuditClean()
    }

    @Test func reverseReplayMovesNothing() async throws {
        let ledger = try await Self.funded()
        let first = try await ledger.ok(reverse("fix", "c-cash"))
        let replay = try await ledger.ok(reverse("fix", "c-cash"))
        #expect(replay.replayed)
        #expect(replay.transaction == first.transaction)
        #expect(try await ledger.posted("alice") == 0)
        await ledger.expectAuditClean()
    }

    @Test func reverseOfACreditAlreadySpentIsRefusedAndPinned() async throws {
        let ledger = try await Self.funded()
        try await ledger.ok(debit("bet", "alice", 100))
        try await ledger.fails(reverse("fix", "c-cash"), "INSUFFICIENT_FUNDS")
        #expect(try await ledger.transaction("c-cash").get().status == .posted)
        try await ledger.ok(credit("c-more", "alice", 100))
        try await ledger.fails(reverse("fix", "c-cash"), "INSUFFICIENT_FUNDS")
        await ledger.expectAuditClean()
    }
}
