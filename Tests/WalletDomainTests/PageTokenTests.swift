import Testing
import WalletDomain
import WalletTestSupport

@Suite("Page tokens and history")
struct PageTokenTests {
    let codec = PageTokenCodec(secret: Array("test-secret".utf8))

    @Test(arguments: [Int64(1), 2, 51, 1_000_000, .max])
    func tokenRoundTripsForItsWallet(cursor: Int64) throws {
        let token = codec.encode(walletID: "alice", cursor: cursor)
        #expect(try codec.decode(token, walletID: "alice") == cursor)
    }

    @Test func tokenForAnotherWalletIsInvalid() {
        let token = codec.encode(walletID: "alice", cursor: 7)
        expectInvalid(token, walletID: "bob")
        expectInvalid(token, walletID: "alice2")
    }

    @Test func tokenFromAnotherSecretIsInvalid() {
        let other = PageTokenCodec(secret: Array("other-secret".utf8))
        expectInvalid(other.encode(walletID: "alice", cursor: 7), walletID: "alice")
    }

    @Test func tokenWithAChangedCursorIsInvalid() throws {
        let token = codec.encode(walletID: "alice", cursor: 7)
        let signature = try #require(token.split(separator: ".").last)
        expectInvalid("8.\(signature)", walletID: "alice")
    }

    @Test(arguments: ["", ".", "7", "7.", "abc.def", "-1.00", "0.00", "7.zz.zz", "99999999999999999999.00", "7 .x"])
    func garbageIsInvalid(token: String) {
        expectInvalid(token, walletID: "alice")
    }

    @Test func zeroAndNegativeCursorsAreNeverAccepted() {
        expectInvalid(codec.encode(walletID: "alice", cursor: 0), walletID: "alice")
        expectInvalid(codec.encode(walletID: "alice", cursor: -5), walletID: "alice")
    }

    func expectInvalid(_ token: String, walletID: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do throws(LedgerError) {
            let cursor = try codec.decode(token, walletID: walletID)
            Issue.record("token \(token) was accepted as cursor \(cursor)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == .invalidArgument, sourceLocation: sourceLocation)
            #expect(error.reason == "INVALID_PAGE_TOKEN", sourceLocation: sourceLocation)
            #expect(error.metadata["field"] == "page_token", sourceLocation: sourceLocation)
        }
    }

    // MARK: History

    @Test func historyIsNewestFirstAndPagesWithoutGapsOrRepeats() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        var ids: [String] = []
        for index in 0..<23 {
            let id = "c\(index)"
            try await ledger.ok(credit(id, "alice", Int64(index + 1)))
            ids.append(id)
            ledger.clock.advance(milliseconds: 1)
        }

        var seen: [String] = []
        var cursor: Int64? = nil
        var pages = 0
        repeat {
            let page = try await ledger.store.history(walletID: "alice", limit: 5, before: cursor)
            #expect(page.transactions.count <= 5)
            seen += page.transactions.map(\.id)
            // The cursor travels as a token bound to the wallet.
            if let next = page.nextCursor {
                cursor = try codec.decode(codec.encode(walletID: "alice", cursor: next), walletID: "alice")
            } else {
                cursor = nil
            }
            pages += 1
        } while cursor != nil && pages < 10
        #expect(pages == 5)
        #expect(seen == ids.reversed())
    }

    @Test func historyHoldsEveryTransactionThatTouchesTheWallet() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.wallet("pot")
        try await ledger.ok(credit("c1", "alice", 1_000))
        try await ledger.ok(authorize("buy-in", "alice", 300))
        try await ledger.ok(settle("commit", "buy-in", destination: "pot"))
        try await ledger.ok(authorize("h2", "alice", 100, expiresInMilliseconds: 1_000))
        ledger.clock.advance(milliseconds: 1_000)
        try await ledger.ok(.expire(holdID: "h2"))
        try await ledger.ok(transfer("cash-out", from: "pot", to: "alice", 300))
        try await ledger.ok(debit("bet", "alice", 10))
        try await ledger.ok(rollback("cancel", "bet"))

        let alice = try await ledger.store.history(walletID: "alice", limit: 100, before: nil)
        #expect(
            alice.transactions.map(\.id) == [
                "cancel", "bet", "cash-out", Reserved.expireTransactionID(holdID: "h2"), "h2", "commit", "buy-in", "c1",
            ])
        #expect(alice.nextCursor == nil)
        let pot = try await ledger.store.history(walletID: "pot", limit: 100, before: nil)
        #expect(pot.transactions.map(\.id) == ["cash-out", "commit"])
        await ledger.expectAuditClean()
    }
}
