import Testing
import WalletDomain
import WalletTestSupport

@Suite("Idempotency: one outcome per transaction_id")
struct IdempotencyTests {
    @Test func replayReturnsTheSameTransactionWithTheCurrentBalance() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        let first = try await ledger.ok(credit("c1", "alice", 500))
        try await ledger.ok(debit("d1", "alice", 200))

        let replay = try await ledger.ok(credit("c1", "alice", 500))
        #expect(replay.replayed)
        #expect(replay.transaction == first.transaction)
        // Current balance, not the one at the time of the original answer.
        #expect(first.balance?.posted == 500)
        #expect(replay.balance?.posted == 300)
        #expect(try await ledger.posted("alice") == 300)
        await ledger.expectAuditClean()
    }

    @Test func replayOfEveryKindNeverMovesMoney() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.wallet("pot")
        let commands: [Command] = [
            try credit("c1", "alice", 1_000),
            try debit("d1", "alice", 100),
            try authorize("h1", "alice", 300),
            try settle("s1", "h1", capture: 200, payout: 50),
            try authorize("h2", "alice", 100),
            try rollback("r1", "h2"),
            try rollback("r2", "d1"),
            try reverse("v1", "s1"),
            try transfer("t1", from: "alice", to: "pot", 100),
        ]
        var originals: [TransactionRecord] = []
        for command in commands {
            originals.append(try await ledger.ok(command).transaction)
        }
        let before = await ledger.state()
        for (command, original) in zip(commands, originals) {
            let replay = try await ledger.ok(command)
            #expect(replay.replayed)
            #expect(replay.transaction.id == original.id)
            #expect(replay.transaction.entries == original.entries)
        }
        let after = await ledger.state()
        #expect(after.postings == before.postings)
        #expect(after.transactions.count == before.transactions.count)
        await ledger.expectAuditClean()
    }

    @Test func insufficientFundsIsPinnedEvenAfterADeposit() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c1", "alice", 100))
        try await ledger.ok(authorize("h1", "alice", 30))

        let first = try await ledger.fails(debit("d1", "alice", 500), "INSUFFICIENT_FUNDS", code: .failedPrecondition)
        #expect(first?.metadata["posted"] == "100")
        #expect(first?.metadata["held"] == "30")
        #expect(first?.metadata["available"] == "70")

        try await ledger.ok(credit("c2", "alice", 1_000))
        let replay = try await ledger.fails(debit("d1", "alice", 500), "INSUFFICIENT_FUNDS", code: .failedPrecondition)
        // The replayed rejection carries the balance as of this answer.
        #expect(replay?.metadata["posted"] == "1100")
        #expect(replay?.metadata["held"] == "30")
        #expect(replay?.metadata["available"] == "1070")
        #expect(try await ledger.posted("alice") == 1_100)

        let pinned = try await ledger.transaction("d1").get()
        #expect(pinned.status == .rejected)
        #expect(pinned.kind == .debit)
        #expect(pinned.entries.isEmpty)
        await ledger.expectAuditClean()
    }

    @Test func pinnedRejectionWithOtherParametersIsStillAMismatch() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.fails(debit("d1", "alice", 500), "INSUFFICIENT_FUNDS")
        let error = try await ledger.fails(debit("d1", "alice", 5), "IDEMPOTENCY_MISMATCH", code: .alreadyExists)
        #expect(error?.metadata["fields"] == "amount")
    }

    struct MismatchCase: Sendable, CustomTestStringConvertible {
        var name: String
        var original: @Sendable () throws -> Command
        var retry: @Sendable () throws -> Command
        var fields: String
        var testDescription: String { name }
    }

    static let mismatches: [MismatchCase] = [
        MismatchCase(
            name: "credit amount", original: { try credit("x", "alice", 100) },
            retry: { try credit("x", "alice", 101) }, fields: "amount"),
        MismatchCase(
            name: "credit bucket", original: { try credit("x", "alice", 100) },
            retry: { try credit("x", "alice", 100, bucket: "bonus") }, fields: "bucket"),
        MismatchCase(
            name: "credit wallet and amount", original: { try credit("x", "alice", 100) },
            retry: { try credit("x", "bob", 7) }, fields: "amount,wallet_id"),
        MismatchCase(
            name: "credit metadata", original: { try credit("x", "alice", 100, metadata: ["a": "1"]) },
            retry: { try credit("x", "alice", 100, metadata: ["a": "2"]) }, fields: "metadata"),
        MismatchCase(
            name: "debit funding", original: { try debit("x", "alice", 10, funding: ["cash", "bonus"]) },
            retry: { try debit("x", "alice", 10, funding: ["bonus", "cash"]) }, fields: "funding"),
        MismatchCase(
            name: "authorize expiry", original: { try authorize("x", "alice", 10, expiresInMilliseconds: 1_000) },
            retry: { try authorize("x", "alice", 10, expiresInMilliseconds: 2_000) }, fields: "expires_in_ms"),
        MismatchCase(
            name: "transfer payee", original: { try transfer("x", from: "alice", to: "bob", 10) },
            retry: { try transfer("x", from: "alice", to: "pot", 10) }, fields: "to_wallet_id"),
        MismatchCase(
            name: "settle capture and payout", original: { try settle("x", "h-base", capture: 10) },
            retry: { try settle("x", "h-base", capture: 20, payout: 5) }, fields: "capture_amount,payout"),
        MismatchCase(
            name: "settle destination", original: { try settle("x", "h-base") },
            retry: { try settle("x", "h-base", destination: "pot") }, fields: "destination_wallet_id"),
        MismatchCase(
            name: "rollback target", original: { try rollback("x", "d-base") },
            retry: { try rollback("x", "c-base") }, fields: "target_transaction_id"),
        MismatchCase(
            name: "reverse reason", original: { try reverse("x", "d-base", reason: "typo") },
            retry: { try reverse("x", "d-base", reason: "fraud") }, fields: "reason"),
    ]

    @Test(arguments: mismatches)
    func sameIDWithOtherParametersIsIdempotencyMismatchNamingExactlyTheFields(_ testCase: MismatchCase) async throws {
        let ledger = try await LedgerHarness()
        for id in ["alice", "bob", "pot"] { try await ledger.wallet(id) }
        try await ledger.ok(credit("c-base", "alice", 10_000))
        try await ledger.ok(debit("d-base", "alice", 100))
        try await ledger.ok(authorize("h-base", "alice", 100))

        let original = try await ledger.ok(testCase.original())
        let before = await ledger.state()
        let error = await ledger.fails(try testCase.retry(), "IDEMPOTENCY_MISMATCH", code: .alreadyExists)
        #expect(error?.metadata["fields"] == testCase.fields)
        let after = await ledger.state()
        #expect(after.postings == before.postings)
        #expect(after.transactions[original.transaction.id] == before.transactions[original.transaction.id])
        await ledger.expectAuditClean()
    }

    @Test func sameIDForAnotherRPCIsAMismatch() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("x", "alice", 100))
        let error = try await ledger.fails(debit("x", "alice", 100), "IDEMPOTENCY_MISMATCH", code: .alreadyExists)
        let fields = error?.metadata["fields"]?.split(separator: ",").map(String.init) ?? []
        #expect(!fields.isEmpty)
        #expect(!fields.contains("amount"))
        #expect(!fields.contains("wallet_id"))
        #expect(try await ledger.posted("alice") == 100)
    }

    @Test func defaultsCompareEqualToTheirExplicitValues() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c1", "alice", 1_000))
        try await ledger.ok(credit("c2", "alice", 100, bucket: ""))
        #expect(try await ledger.ok(credit("c2", "alice", 100, bucket: "cash")).replayed)
        try await ledger.ok(debit("d1", "alice", 10, funding: []))
        #expect(try await ledger.ok(debit("d1", "alice", 10, funding: ["cash"])).replayed)
        try await ledger.ok(authorize("h1", "alice", 10, expiresInMilliseconds: 0))
        #expect(try await ledger.ok(authorize("h1", "alice", 10, expiresInMilliseconds: 15 * 60 * 1000)).replayed)
        #expect(try await ledger.posted("alice") == 1_090)
    }

    @Test func replayOfARolledBackDebitShowsItsCurrentStatusAndMovesNothing() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c1", "alice", 100))
        try await ledger.ok(debit("d1", "alice", 40))
        try await ledger.ok(rollback("r1", "d1"))
        let replay = try await ledger.ok(debit("d1", "alice", 40))
        #expect(replay.replayed)
        #expect(replay.transaction.status == .rolledBack)
        #expect(replay.balance?.posted == 100)
        #expect(try await ledger.posted("alice") == 100)
        await ledger.expectAuditClean()
    }

    @Test func fingerprintRoundTripsThroughItsEncoding() {
        let fingerprint = RequestFingerprint([
            ("wallet_id", "alice"), ("metadata", RequestFingerprint.mapValue(["note": "a=b;c\nd\\e"])),
            ("amount", "10"),
        ])
        #expect(RequestFingerprint(encoded: fingerprint.encoded) == fingerprint)
        #expect(RequestFingerprint(encoded: "") == RequestFingerprint([]))
        let other = RequestFingerprint([("wallet_id", "alice"), ("amount", "11"), ("bucket", "cash")])
        #expect(fingerprint.differingFields(from: other) == ["amount", "bucket", "metadata"])
    }

    @Test func canonicallyEquivalentTextIsStillOtherBytes() {
        let composed = RequestFingerprint([("reason", "caf\u{E9}"), ("amount", "1")])
        let decomposed = RequestFingerprint([("reason", "cafe\u{301}"), ("amount", "1")])
        #expect("caf\u{E9}" == "cafe\u{301}")  // what Swift's String == says
        #expect(composed != decomposed)
        #expect(composed.differingFields(from: decomposed) == ["reason"])
        #expect(composed == RequestFingerprint(encoded: composed.encoded))
        #expect(!RequestFingerprint.sameBytes(["k": "caf\u{E9}"], ["k": "cafe\u{301}"]))
        #expect(RequestFingerprint.sameBytes(["a": "1", "b": "2"], ["b": "2", "a": "1"]))
    }

    /// Two different metadata maps must never compare equal: the retry is
    /// another request and must be IDEMPOTENCY_MISMATCH, not a replay.
    @Test(arguments: [
        (["a=b": "c"], ["a": "b=c"]),
        (["a": "x\\", "b": "y"], ["a": "x;b=y"]),
        // Canonically equivalent, other bytes: "é" as one scalar, and as "e"
        // with a combining accent. Swift's String == calls these equal.
        (["note": "caf\u{E9}"], ["note": "cafe\u{301}"]),
        (["caf\u{E9}": "x"], ["cafe\u{301}": "x"]),
    ])
    func differentMetadataIsAMismatchEvenWhenItLooksAlike(first: [String: String], retry: [String: String]) async throws
    {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.ok(credit("c1", "alice", 100, metadata: first))
        let error = try await ledger.fails(credit("c1", "alice", 100, metadata: retry), "IDEMPOTENCY_MISMATCH")
        #expect(error?.metadata["fields"] == "metadata")
    }

    @Test func metadataMapsThatOnlyLookAlikeDiffer() {
        let a = RequestFingerprint.mapValue(["k": "v;x=y"])
        let b = RequestFingerprint.mapValue(["k": "v", "x": "y"])
        #expect(a != b)
        #expect(
            RequestFingerprint.mapValue(["b": "2", "a": "1"]) == RequestFingerprint.mapValue(["a": "1", "b": "2"]))
    }
}
