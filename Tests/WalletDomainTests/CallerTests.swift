import Testing
import WalletDomain
import WalletTestSupport

extension Command {
    /// The command as sent by `caller` (what the gRPC layer does with the
    /// call's identity).
    func sent(by caller: String) -> Command {
        var command = self
        command.caller = caller
        return command
    }
}

@Suite("Caller: the identity that wrote a transaction")
struct CallerTests {
    static let game = "spiffe://casino/game-service"
    static let backOffice = "backoffice"

    /// A ledger where every kind of write has something to act on: alice
    /// with 1,000 (and a credit c0 of 50), a pot, an open hold h1 of 300 and
    /// a posted debit d1 of 100.
    static func seeded() async throws -> LedgerHarness {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.wallet("pot")
        try await ledger.ok(credit("seed", "alice", 1_000))
        try await ledger.ok(credit("c0", "alice", 50))
        try await ledger.ok(authorize("h1", "alice", 300))
        try await ledger.ok(debit("d1", "alice", 100))
        return ledger
    }

    static let writes: [(kind: TransactionKind, command: @Sendable () throws -> Command)] = [
        (.credit, { try credit("w1", "alice", 50) }),
        (.debit, { try debit("w1", "alice", 50) }),
        (.authorize, { try authorize("w1", "alice", 50) }),
        (.settle, { try settle("w1", "h1", capture: 200) }),
        (.rollback, { try rollback("w1", "d1") }),
        (.reverse, { try reverse("w1", "c0") }),
        (.transfer, { try transfer("w1", from: "alice", to: "pot", 50) }),
    ]

    @Test(arguments: writes.indices)
    func everyWriteRecordsItsCaller(index: Int) async throws {
        let (kind, command) = Self.writes[index]
        let ledger = try await Self.seeded()
        let result = try await ledger.ok(try command().sent(by: Self.game))
        #expect(result.transaction.kind == kind)
        #expect(result.transaction.caller == Self.game)
        #expect(try await ledger.transaction("w1").get().caller == Self.game)
    }

    @Test func aCallWithoutIdentityRecordsAnEmptyCaller() async throws {
        let ledger = try await Self.seeded()
        let result = try await ledger.ok(credit("w1", "alice", 50))
        #expect(result.transaction.caller == "")
    }

    @Test(arguments: writes.indices)
    func aReplayByAnotherCallerReturnsTheOriginalCaller(index: Int) async throws {
        let (_, command) = Self.writes[index]
        let ledger = try await Self.seeded()
        let first = try await ledger.ok(try command().sent(by: Self.game))

        // Not IDEMPOTENCY_MISMATCH: the caller is not part of the request.
        let replay = try await ledger.ok(try command().sent(by: Self.backOffice))
        #expect(replay.replayed)
        #expect(replay.transaction == first.transaction)
        #expect(replay.transaction.caller == Self.game)
        let anonymous = try await ledger.ok(try command())
        #expect(anonymous.transaction.caller == Self.game)
        #expect(try await ledger.transaction("w1").get().caller == Self.game)
    }

    @Test func aPinnedRejectionRecordsItsCallerAndKeepsItOnReplay() async throws {
        let ledger = try await Self.seeded()
        try await ledger.fails(debit("big", "alice", 5_000).sent(by: Self.game), "INSUFFICIENT_FUNDS")
        let pinned = try await ledger.transaction("big").get()
        #expect(pinned.status == .rejected)
        #expect(pinned.caller == Self.game)

        try await ledger.fails(debit("big", "alice", 5_000).sent(by: Self.backOffice), "INSUFFICIENT_FUNDS")
        #expect(try await ledger.transaction("big").get().caller == Self.game)
    }

    @Test func aStatusChangeKeepsTheOriginalCaller() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("seed", "alice", 1_000))
        try await ledger.ok(authorize("h1", "alice", 300).sent(by: Self.game))
        try await ledger.ok(authorize("h2", "alice", 300).sent(by: Self.game))
        try await ledger.ok(debit("d1", "alice", 100).sent(by: Self.game))

        let settled = try await ledger.ok(settle("s1", "h1").sent(by: Self.backOffice))
        try await ledger.ok(rollback("r1", "h2").sent(by: Self.backOffice))
        try await ledger.ok(rollback("r2", "d1").sent(by: Self.backOffice))
        try await ledger.ok(reverse("v1", "s1").sent(by: "auditor"))

        #expect(settled.transaction.caller == Self.backOffice)
        for (id, status) in [("h1", TransactionStatus.settled), ("h2", .rolledBack), ("d1", .rolledBack)] {
            let original = try await ledger.transaction(id).get()
            #expect(original.status == status, "\(id)")
            #expect(original.caller == Self.game, "\(id)")
        }
        let reversed = try await ledger.transaction("s1").get()
        #expect(reversed.status == .reversed)
        #expect(reversed.caller == Self.backOffice)
        #expect(try await ledger.transaction("v1").get().caller == "auditor")
    }

    @Test func anExpiryHasNoCallerAndTheHoldKeepsItsOwn() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("seed", "alice", 1_000))
        try await ledger.ok(authorize("h1", "alice", 300, expiresInMilliseconds: 1_000).sent(by: Self.game))
        ledger.clock.advance(milliseconds: 2_000)

        let expiry = try await ledger.ok(Command.expire(holdID: "h1"))
        #expect(expiry.transaction.kind == .expire)
        #expect(expiry.transaction.caller == "")
        let hold = try await ledger.transaction("h1").get()
        #expect(hold.status == .expired)
        #expect(hold.caller == Self.game)
    }

    @Test func aLateBetRefusedByItsTombstoneRecordsTheLateCaller() async throws {
        let ledger = try await Self.seeded()
        let cancel = try await ledger.ok(rollback("r1", "late").sent(by: Self.backOffice))
        #expect(!cancel.targetFound)
        #expect(cancel.transaction.caller == Self.backOffice)

        try await ledger.fails(debit("late", "alice", 10).sent(by: Self.game), "ALREADY_ROLLED_BACK")
        let pinned = try await ledger.transaction("late").get()
        #expect(pinned.status == .rejected)
        #expect(pinned.caller == Self.game)
    }

    @Test func expireHasNoCallerToSet() {
        var command = Command.expire(holdID: "h1")
        command.caller = Self.game
        #expect(command.caller == "")
        guard case .expire(let holdID) = command else {
            Issue.record("setting the caller changed the command: \(command)")
            return
        }
        #expect(holdID == "h1")
    }

    @Test func theCallerIsNotPartOfTheFingerprint() throws {
        let plain = try credit("c1", "alice", 50)
        #expect(plain.sent(by: Self.game).fingerprint == plain.fingerprint)
        #expect(plain.sent(by: Self.game).caller == Self.game)
    }
}
