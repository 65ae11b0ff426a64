import Testing
import WalletDomain
import WalletTestSupport

@Suite("SHA-256 and the per-wallet hash chain")
struct HashChainTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var message: [UInt8]
        var digest: String
        var testDescription: String { name }
    }

    static let vectors: [Vector] = [
        // FIPS 180-2 / NIST examples.
        Vector(name: "empty", message: [], digest: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        Vector(
            name: "abc", message: Array("abc".utf8),
            digest: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        Vector(
            name: "448-bit message", message: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
            digest: "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        Vector(
            name: "896-bit message",
            message: Array(
                "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
                    .utf8),
            digest: "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
        // Padding edges: one block, the length just fitting or not, two blocks.
        Vector(
            name: "55 a", message: a(55), digest: "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"),
        Vector(
            name: "56 a", message: a(56), digest: "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"),
        Vector(
            name: "63 a", message: a(63), digest: "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"),
        Vector(
            name: "64 a", message: a(64), digest: "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"),
        Vector(
            name: "65 a", message: a(65), digest: "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"),
        Vector(
            name: "119 a", message: a(119), digest: "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"),
        Vector(
            name: "120 a", message: a(120), digest: "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"),
        Vector(
            name: "128 a", message: a(128), digest: "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e"),
    ]

    static func a(_ count: Int) -> [UInt8] { [UInt8](repeating: UInt8(ascii: "a"), count: count) }

    @Test(arguments: vectors)
    func knownDigest(_ vector: Vector) {
        #expect(hexString(SHA256.hash(vector.message)) == vector.digest)
    }

    @Test(arguments: vectors)
    func incrementalUpdatesGiveTheSameDigest(_ vector: Vector) {
        for chunk in [1, 3, 63, 64, 65] {
            var hasher = SHA256()
            var index = 0
            while index < vector.message.count {
                let end = min(index + chunk, vector.message.count)
                hasher.update(vector.message[index..<end])
                index = end
            }
            #expect(hexString(hasher.finalize()) == vector.digest, "chunk \(chunk)")
        }
    }

    /// Varied bytes over several blocks, fed in pieces that leave the
    /// block boundary at every kind of offset: whole blocks are then hashed
    /// straight from the middle of a piece.
    @Test(arguments: [[300], [1, 299], [32, 268], [63, 129, 108], [64, 236], [65, 0, 170, 65], [7, 7, 7, 279]])
    func variedBytesInPiecesGiveTheKnownDigest(_ pieces: [Int]) {
        let message = (0..<300).map { UInt8($0 % 256) }  // digest from Python's hashlib
        let digest = "7728ae2f2c36e2aaafbe79ca14c87ae2f89e7c88c4390ecbbf82dce88706958d"
        var hasher = SHA256()
        var start = 0
        for count in pieces {
            message[start..<(start + count)].withUnsafeBytes { hasher.update($0) }
            start += count
        }
        #expect(start == message.count)
        #expect(hexString(hasher.finalize()) == digest)
        // A sequence without contiguous storage takes the other path.
        #expect(hexString(SHA256.hash(AnySequence(message))) == digest)
        #expect(hexString(SHA256.hash(message.lazy.map { $0 })) == digest)
    }

    @Test func finalizeLeavesTheHasherUsable() {
        var hasher = SHA256()
        hasher.update(Array("ab".utf8))
        let first = hasher.finalize()
        #expect(hasher.finalize() == first)
        hasher.update(Array("c".utf8))
        #expect(hexString(hasher.finalize()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hexString(first) == hexString(SHA256.hash(Array("ab".utf8))))
    }

    @Test func aMillionAs() {
        var hasher = SHA256()
        let block = Self.a(1_000)
        for _ in 0..<1_000 { hasher.update(block) }
        #expect(hexString(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test(arguments: [Int64.min, -1_000_001, -1, 0, 7, 10, 1_000_000, Int64.max])
    func canonicalContentIsTheDocumentedText(_ amount: Int64) {
        for sequence in [UInt64(0), 1, 99, UInt64.max] {
            let entry = Entry(walletID: "w-é", asset: "USD", bucket: "bonus", amount: amount, sequence: sequence)
            let text = "v1\nw-é\nUSD\nbonus\n\(amount)\n\(sequence)\ntx:1"
            #expect(HashChain.canonicalContent(entry: entry, transactionID: "tx:1") == Array(text.utf8))
            var expected = SHA256()
            expected.update(HashChain.genesis)
            expected.update(Array(text.utf8))
            #expect(
                HashChain.hash(previous: HashChain.genesis, entry: entry, transactionID: "tx:1") == expected.finalize())
        }
    }

    @Test func hexStringIsLowercaseTwoDigitsPerByte() {
        #expect(hexString([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
        #expect(hexString([]) == "")
    }

    // MARK: The chain

    /// Recomputes a wallet's chain from its entries; nil when it verifies,
    /// else the sequence where it breaks.
    static func firstBreak(in entries: [(Entry, String)]) -> UInt64? {
        var previous = HashChain.genesis
        for (index, (entry, transactionID)) in entries.enumerated() {
            if entry.sequence != UInt64(index + 1) { return entry.sequence }
            if HashChain.hash(previous: previous, entry: entry, transactionID: transactionID) != entry.hash {
                return entry.sequence
            }
            previous = entry.hash
        }
        return nil
    }

    static func chain(of walletID: String, in state: LedgerState) -> [(Entry, String)] {
        state.transactions.values
            .flatMap { record in record.entries.filter { $0.walletID == walletID }.map { ($0, record.id) } }
            .sorted { $0.0.sequence < $1.0.sequence }
    }

    static func busyLedger() async throws -> LedgerHarness {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        try await ledger.wallet("bob")
        try await ledger.ok(credit("c1", "alice", 1_000))
        try await ledger.ok(credit("c2", "alice", 300, bucket: "bonus"))
        try await ledger.ok(debit("d1", "alice", 400, funding: ["bonus", "cash"]))
        try await ledger.ok(transfer("t1", from: "alice", to: "bob", 100))
        try await ledger.ok(authorize("h1", "alice", 200))
        try await ledger.ok(settle("s1", "h1", capture: 150, payout: 20, destination: "bob"))
        try await ledger.ok(rollback("r1", "d1"))
        try await ledger.ok(reverse("v1", "c2"))
        return ledger
    }

    @Test func entriesGetGaplessSequencesAndChainedHashesPerWallet() async throws {
        let ledger = try await Self.busyLedger()
        let state = await ledger.state()
        for walletID in ["alice", "bob", ledger.houseWalletID(for: "alice")] {
            let entries = Self.chain(of: walletID, in: state)
            #expect(!entries.isEmpty)
            #expect(entries.map(\.0.sequence) == (0..<entries.count).map { UInt64($0 + 1) })
            #expect(entries.allSatisfy { $0.0.hash.count == 32 })
            #expect(Self.firstBreak(in: entries) == nil)
            // The wallet's head is its last entry.
            #expect(state.wallets[walletID]?.lastSequence == UInt64(entries.count))
            #expect(state.wallets[walletID]?.lastHash == entries.last?.0.hash)
        }
        await ledger.expectAuditClean()
    }

    @Test func firstEntryChainsFromGenesis() async throws {
        let ledger = try await LedgerHarness()
        try await ledger.wallet("alice")
        let result = try await ledger.ok(credit("c1", "alice", 5))
        let entry = try #require(result.transaction.entries.first { $0.walletID == "alice" })
        #expect(entry.sequence == 1)
        var expected = SHA256()
        expected.update(HashChain.genesis)
        expected.update(Array("v1\nalice\nUSD\ncash\n5\n1\nc1".utf8))
        #expect(entry.hash == expected.finalize())
    }

    enum Tamper: String, CaseIterable, Sendable {
        case amount, bucket, transactionID, sequence, hash, dropEntry
    }

    @Test(arguments: Tamper.allCases)
    func tamperingWithStoredHistoryIsDetected(_ tamper: Tamper) async throws {
        let ledger = try await Self.busyLedger()
        let state = await ledger.state()
        var entries = Self.chain(of: "alice", in: state)
        #expect(Self.firstBreak(in: entries) == nil)
        let victim = 2
        switch tamper {
        case .amount: entries[victim].0.amount += 1
        case .bucket: entries[victim].0.bucket = "bonus2"
        case .transactionID: entries[victim].1 = "forged"
        case .sequence: entries[victim].0.sequence += 1
        case .hash: entries[victim].0.hash[0] ^= 1
        case .dropEntry: entries.remove(at: victim)
        }
        #expect(Self.firstBreak(in: entries) == entries[victim].0.sequence)
    }

    @Test func theAuditorCatchesARewrittenAmountThatStillBalances() async throws {
        let ledger = try await Self.busyLedger()
        let original = await ledger.state()
        // Rewrite c1 from 1,000 to 900 on both sides and fix the balances, so
        // only the chain can tell.
        var forged = LedgerState()
        forged.assets = original.assets
        for wallet in original.wallets.values { forged.load(wallet: wallet) }
        for (walletAsset, buckets) in original.postings {
            for (bucket, posted) in buckets {
                forged.load(
                    posted: posted,
                    for: BalanceKey(walletID: walletAsset.walletID, asset: walletAsset.asset, bucket: bucket))
            }
        }
        var c1 = try #require(original.transactions["c1"])
        c1.entries = c1.entries.map { entry in
            var entry = entry
            entry.amount = entry.amount > 0 ? 900 : -900
            return entry
        }
        for record in original.transactions.values where record.id != "c1" { forged.load(transaction: record) }
        forged.load(transaction: c1)
        for entry in c1.entries {
            forged.load(posted: original.posted(entry.key) + (entry.amount > 0 ? -100 : 100), for: entry.key)
        }
        #expect(LedgerAuditor.problems(in: original, now: ledger.clock.now).isEmpty)
        let problems = LedgerAuditor.problems(in: forged, now: ledger.clock.now)
        #expect(!problems.isEmpty)
        #expect(problems.allSatisfy { $0.contains("hash chain breaks") }, "\(problems)")
    }
}
