import Testing
import WalletDomain
import WalletTestSupport

@Suite("What a command must lock and look up")
struct FootprintTests {
    /// A small ledger with one transaction of every kind a command can
    /// target or replay, and those transactions as a store would load them.
    static func knownTransactions() async throws -> [String: TransactionRecord] {
        let ledger = try await LedgerHarness()
        for id in ["alice", "bob", "pot"] { try await ledger.wallet(id) }
        var known: [String: TransactionRecord] = [:]
        for command in [
            try credit("c1", "alice", 1_000), try debit("d1", "alice", 10), try authorize("a1", "alice", 20),
            try authorize("a2", "alice", 30), try settle("s2", "a2", destination: "pot"),
            try transfer("t1", from: "alice", to: "bob", 5), try rollback("r1", "never-sent"),
        ] {
            let result = try await ledger.ok(command)
            known[result.transaction.id] = result.transaction
        }
        // The tombstone the rollback of a never-sent bet leaves, if the
        // store shows it.
        if let tombstone = try? await ledger.store.transaction(id: "never-sent") { known[tombstone.id] = tombstone }
        return known
    }

    static func commands() throws -> [Command] {
        [
            // New ids, and ids that replay (or mismatch) a known transaction.
            try credit("c-new", "bob", 1), try credit("c1", "alice", 1_000), try credit("d1", "bob", 3),
            try debit("d-new", "bob", 1), try debit("d1", "alice", 10),
            try authorize("a-new", "bob", 1), try authorize("a1", "alice", 20),
            try transfer("t-new", from: "bob", to: "alice", 1), try transfer("t1", from: "alice", to: "bob", 5),
            // Targets known and unknown, into a destination or not.
            try settle("s-new", "a1"), try settle("s-pot", "a1", destination: "pot"), try settle("s2", "a2"),
            try settle("s-unknown", "a-unknown"),
            try rollback("r-debit", "d1"), try rollback("r-hold", "a1"), try rollback("r-unknown", "x"),
            try rollback("r1", "never-sent"), try rollback("r-late", "never-sent"),
            try reverse("v-credit", "c1"), try reverse("v-settle", "s2"), try reverse("v-unknown", "y"),
            .expire(holdID: "a1"), .expire(holdID: "a-unknown"),
        ]
    }

    @Test func theShortcutGivesWhatAFullRecomputationGives() async throws {
        let all = try await Self.knownTransactions()
        // Every transaction known, none, and each one alone.
        var knownSets: [[String: TransactionRecord]] = [all, [:]]
        for (id, record) in all { knownSets.append([id: record]) }
        for houseSlot in [nil, 0, 3] {
            for command in try Self.commands() {
                let base = Ledger.footprint(of: command, known: [:], houseSlot: houseSlot)
                for known in knownSets {
                    let full = Ledger.footprint(of: command, known: known, houseSlot: houseSlot)
                    let shortcut = Ledger.footprint(of: command, known: known, houseSlot: houseSlot, base: base)
                    #expect(
                        shortcut == full,
                        "\(command.transactionID) with \(known.keys.sorted()) known, house slot \(houseSlot ?? -1)")
                }
            }
        }
    }

    @Test func aKnownTargetAddsItsWallets() async throws {
        let known = try await Self.knownTransactions()
        let command = try settle("s-pot", "a1", destination: "pot")
        let base = Ledger.footprint(of: command, known: [:])
        #expect(!base.walletIDs.contains("alice"))
        let footprint = Ledger.footprint(of: command, known: known, base: base)
        #expect(footprint.walletIDs.isSuperset(of: ["alice", "pot"]))
    }
}
