import Foundation
import Testing
import WalletDomain
import WalletTestSupport

@testable import WalletPostgres

/// House slots at the Int64 limit, in the Postgres store: a lane whose slot
/// has no room moves to a slot that has, or opens one; no player is refused
/// for the house's limit; `verify` stays exact with a house that owes more
/// than an Int64 (its sums are numeric).
@Suite struct HouseSlotStoreTests {
    static let players = Limits.houseSlotCount + 6

    static func credit(_ id: String, _ wallet: String, _ amount: Int64) throws -> Command {
        .credit(
            try Credit(transactionID: id, walletID: wallet, asset: "ETH", amount: amount, bucket: "", metadata: [:]))
    }

    static func debit(_ id: String, _ wallet: String, _ amount: Int64) throws -> Command {
        .debit(try Debit(transactionID: id, walletID: wallet, asset: "ETH", amount: amount, funding: [], metadata: [:]))
    }

    /// Runs `commands` at once; every one must succeed, none as a replay.
    static func allApply(_ store: PostgresLedgerStore, _ commands: [Command]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for command in commands {
                group.addTask {
                    let outcome = try await store.execute(command, deadline: nil)
                    #expect(outcome.transaction.status == .posted)
                    #expect(!outcome.replayed)
                }
            }
            try await group.waitForAll()
        }
    }

    /// The house's total and how many slots it has, summed by the database.
    static func house(_ url: String) throws -> (total: String, slots: Int64) {
        let connection = try PostgresConnection(url: url)
        defer { connection.close() }
        let rows = try connection.execute(
            """
            SELECT coalesce(sum(b.posted), 0)::text, (SELECT count(*) FROM wallets WHERE wallet_id LIKE 'sys:house:ETH:%')
            FROM balances b WHERE b.wallet_id LIKE 'sys:house:ETH:%'
            """)
        return (rows.string(row: 0, column: 0) ?? "", rows.int64(row: 0, column: 1) ?? 0)
    }

    @Test func winsAndBetsAtTheLimitKeepWorkingAndVerifyStaysClean() async throws {
        let url = try TestDatabase.url()
        var store = try StoreTests.makeStore(url, pool: 2)
        _ = try await store.defineAsset(try DefineAsset(code: "ETH", decimalPlaces: 18))
        for index in 0..<Self.players {
            _ = try await store.createWallet(try CreateWallet(walletID: "p\(index)", overdraftLimit: 0, labels: [:]))
        }
        // Each win is a whole slot's worth: two lanes' slots fill at once.
        try await Self.allApply(store, try (0..<Self.players).map { try Self.credit("win-\($0)", "p\($0)", .max) })
        var house = try await onOwnThread { try Self.house(url) }
        #expect(house.total == String(-Int128(Self.players) * Int128(Int64.max)))
        #expect(house.slots > Int64(Limits.houseSlotCount))
        try await onOwnThread { try StoreTests.expectClean(url) }

        // A player's own bucket at Int64.max is that player's overflow.
        let oneMore = try Self.credit("one-more", "p0", 1)
        do throws(LedgerError) {
            _ = try await store.execute(oneMore, deadline: nil)
            Issue.record("a credit past the player's Int64.max was applied")
        } catch {
            #expect(error.reason == "BALANCE_OVERFLOW")
            #expect(error.code == .failedPrecondition)
        }

        // Another instance (no memory of where the lanes moved) keeps going.
        store.shutdown()
        store = try StoreTests.makeStore(url, pool: 2)
        defer { store.shutdown() }
        _ = try await store.createWallet(try CreateWallet(walletID: "late", overdraftLimit: 0, labels: [:]))
        try await Self.allApply(store, [try Self.credit("late-win", "late", .max)])
        try await Self.allApply(
            store,
            try (0..<Self.players).map { try Self.debit("bet-\($0)", "p\($0)", .max) } + [
                try Self.debit("late-bet", "late", .max)
            ])
        house = try await onOwnThread { try Self.house(url) }
        #expect(house.total == "0")
        try await onOwnThread { try StoreTests.expectClean(url) }
        for index in 0..<Self.players {
            #expect(try await store.balances(walletID: "p\(index)", asset: "ETH")[0].posted == 0)
        }
    }
}
