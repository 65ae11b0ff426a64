import Testing
import WalletDomain
import WalletTestSupport

/// A house slot is one Int64; the house is the sum of its slots. A slot
/// without room for an amount never refuses a player: the amount goes to a
/// slot with room, or to a new one. Only a wallet's own overflow is
/// BALANCE_OVERFLOW.
@Suite struct HouseSlotTests {
    static let players = Limits.houseSlotCount + 4

    /// The house's total for an asset, over every slot, without a ceiling.
    static func houseTotal(_ state: LedgerState, asset: String) -> Int128 {
        state.houseSlots(asset: asset).reduce(Int128(0)) { total, slot in
            total
                + Int128(
                    state.posted(
                        BalanceKey(
                            walletID: Reserved.houseWalletID(asset: asset, slot: slot), asset: asset,
                            bucket: Bucket.cash)))
        }
    }

    /// More players than slots each win Int64.max (a house slot takes one
    /// such win): every win is paid, new slots open, the house owes more
    /// than an Int64; then every player bets it all back.
    @Test(arguments: [UInt32(2), 18])
    func winsAndBetsAtTheLimitKeepWorking(decimalPlaces: UInt32) async throws {
        let ledger = try await LedgerHarness(assets: [])
        _ = try await ledger.store.defineAsset(DefineAsset(code: "ETH", decimalPlaces: decimalPlaces))
        for index in 0..<Self.players {
            try await ledger.wallet("p\(index)")
            let win = try await ledger.ok(try credit("win-\(index)", "p\(index)", Int64.max, asset: "ETH"))
            #expect(win.transaction.status == .posted)
        }
        var state = await ledger.state()
        #expect(state.houseSlots(asset: "ETH").count > Limits.houseSlotCount)
        #expect(Self.houseTotal(state, asset: "ETH") == -Int128(Self.players) * Int128(Int64.max))
        await ledger.expectAuditClean()
        for index in 0..<Self.players {
            try await ledger.ok(try debit("bet-\(index)", "p\(index)", Int64.max, asset: "ETH"))
            #expect(try await ledger.posted("p\(index)", asset: "ETH") == 0)
        }
        state = await ledger.state()
        #expect(Self.houseTotal(state, asset: "ETH") == 0)
        await ledger.expectAuditClean()
    }

    /// A player's own bucket at Int64.max: one more unit is that player's
    /// BALANCE_OVERFLOW, pinned, whatever room the house has.
    @Test func aPlayersOwnOverflowIsStillRefused() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("rich")
        try await ledger.ok(try credit("fill", "rich", Int64.max))
        await ledger.fails(try credit("one-more", "rich", 1), "BALANCE_OVERFLOW", code: .failedPrecondition)
        // Pinned: the same request again is the same rejection.
        await ledger.fails(try credit("one-more", "rich", 1), "BALANCE_OVERFLOW", code: .failedPrecondition)
        await ledger.expectAuditClean()
    }

    /// A state like a store's batch: the writer's slot 0 and slot 5 at
    /// hand. Slot 0 full: the credit goes to slot 5, named in its entries.
    /// Only slot 0 at hand: HOUSE_SLOTS_FULL (UNAVAILABLE) and nothing
    /// changed, for the store to give it a slot and apply again.
    @Test func aFullSlotMovesTheHouseSideToASlotWithRoom() throws {
        func state(slots: [Int]) -> LedgerState {
            var state = LedgerState()
            state.assets["USD"] = Asset(code: "USD", decimalPlaces: 2)
            state.houseSlot = 0
            for slot in slots {
                state.load(wallet: WalletRecord(id: Reserved.houseWalletID(asset: "USD", slot: slot), createdAt: 0))
            }
            state.load(wallet: WalletRecord(id: "p", createdAt: 0))
            state.load(
                posted: Int64.min + 10,
                for: BalanceKey(walletID: Reserved.houseWalletID(asset: "USD", slot: 0), asset: "USD", bucket: "cash"))
            return state
        }
        var roomy = state(slots: [0, 5])
        let paid = Ledger.apply(try credit("win", "p", 1_000), to: &roomy, now: 1)
        let transaction = try paid.get().transaction
        #expect(transaction.entries.map(\.walletID) == ["p", Reserved.houseWalletID(asset: "USD", slot: 5)])
        #expect(roomy.posted(BalanceKey(walletID: "sys:house:USD:5", asset: "USD", bucket: "cash")) == -1_000)
        // A small win still fits slot 0 and stays there.
        let small = Ledger.apply(try credit("small", "p", 10), to: &roomy, now: 1)
        #expect(try small.get().transaction.entries.last?.walletID == "sys:house:USD:0")

        var cramped = state(slots: [0])
        let refused = Ledger.apply(try credit("win", "p", 1_000), to: &cramped, now: 1)
        guard case .failure(let error) = refused else {
            Issue.record("applied without a slot with room: \(refused)")
            return
        }
        #expect(error.houseSlotsFullAsset == "USD")
        #expect(error.code == .unavailable)
        #expect(cramped.insertedTransactionIDs.isEmpty && cramped.touchedBalances.isEmpty)
        #expect(cramped.transactions["win"] == nil)
    }

    /// A reversal and a rollback move the house's side to a slot with room
    /// too, and a settle with a payout nets its two house entries.
    @Test func compensationsAndSettlesFindRoomToo() async throws {
        let ledger = try await LedgerHarness()
        for index in 0..<Self.players { try await ledger.wallet("p\(index)") }
        for index in 0..<Self.players {
            try await ledger.ok(try credit("win-\(index)", "p\(index)", Int64.max - 1_000))
        }
        // Every original slot is near its floor now.
        try await ledger.ok(try debit("bet", "p0", 500))
        try await ledger.ok(try rollback("cancel", "bet"))
        try await ledger.ok(try reverse("undo", "win-1"))
        try await ledger.ok(try authorize("hold", "p2", 800))
        try await ledger.ok(try settle("pay", "hold", capture: 800, payout: 1_600))
        await ledger.expectAuditClean()
    }
}
