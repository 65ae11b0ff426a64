import Testing
import WalletDomain
import WalletTestSupport

/// SplitMix64: small, fast, and the same sequence on every platform.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// An independent model of the contract's money rules: what each
/// acknowledged success must have done, and which rejection a refused
/// command must have got.
private struct Model {
    struct Record {
        var kind: TransactionKind
        var status: TransactionStatus
        var walletID: String
        /// Net change per player (wallet, bucket); the house is left to the auditor.
        var effect: [BalanceKey: Int64] = [:]
        var parts: [BucketAmount] = []
        var amount: Int64 = 0
        var expiresAt: Timestamp = 0
    }

    enum Outcome: Equatable {
        case success
        case failure(String)
    }

    var overdraft: [String: Int64]
    var posted: [BalanceKey: Int64] = [:]
    var records: [String: Record] = [:]
    /// Ids in the order they were first recorded, per kind.
    var idsByKind: [TransactionKind: [String]] = [:]
    var tombstones: Set<String> = []

    mutating func insert(_ id: String, _ record: Record) {
        if records[id] == nil { idsByKind[record.kind, default: []].append(id) }
        records[id] = record
    }

    func held(_ key: BalanceKey, now: Timestamp) -> Int64 {
        (idsByKind[.authorize] ?? []).compactMap { records[$0] }.filter {
            $0.status == .pending && $0.walletID == key.walletID && $0.expiresAt > now
        }.reduce(0) { total, hold in
            total + hold.parts.filter { $0.bucket == key.bucket }.reduce(0) { $0 + $1.amount }
        }
    }

    func floor(_ key: BalanceKey) -> Int64 { key.bucket == Bucket.cash ? -(overdraft[key.walletID] ?? 0) : 0 }

    func capacity(_ key: BalanceKey, now: Timestamp) -> Int64 {
        max(0, posted[key, default: 0] - held(key, now: now) - floor(key))
    }

    func draw(_ amount: Int64, wallet: String, funding: [String], now: Timestamp) -> [BucketAmount]? {
        var remaining = amount
        var parts: [BucketAmount] = []
        for bucket in (funding.isEmpty ? [Bucket.cash] : funding) where remaining > 0 {
            let take = min(remaining, capacity(BalanceKey(walletID: wallet, asset: "USD", bucket: bucket), now: now))
            if take > 0 {
                parts.append(BucketAmount(bucket: bucket, amount: take))
                remaining -= take
            }
        }
        return remaining == 0 ? parts : nil
    }

    /// Whether applying `effect` keeps every lowered bucket above its floor.
    func fits(_ effect: [BalanceKey: Int64], now: Timestamp) -> Bool {
        effect.allSatisfy { key, change in
            change >= 0 || posted[key, default: 0] + change - held(key, now: now) >= floor(key)
        }
    }

    mutating func apply(_ effect: [BalanceKey: Int64]) {
        for (key, change) in effect { posted[key, default: 0] += change }
    }

    mutating func reject(_ id: String, kind: TransactionKind, wallet: String, _ reason: String) -> Outcome {
        insert(id, Record(kind: kind, status: .rejected, walletID: wallet))
        return .failure(reason)
    }
}

@Suite("Randomized operations against the model")
struct RandomizedLedgerTests {
    static let wallets = ["w0", "w1", "w2", "vip"]
    static let buckets = ["cash", "bonus", "points"]

    @Test(arguments: [UInt64(1), 0xC0FFEE])
    func thousandsOfRandomOperationsKeepTheBooks(seed: UInt64) async throws {
        var random = SeededGenerator(seed: seed)
        let ledger = try await LedgerHarness()
        var model = Model(overdraft: ["vip": 2_000])
        for wallet in Self.wallets {
            try await ledger.wallet(wallet, overdraftLimit: model.overdraft[wallet] ?? 0)
        }
        var sent: [(command: Command, outcome: Model.Outcome, id: String)] = []
        var nextID = 0
        func freshID() -> String {
            nextID += 1
            return "tx-\(nextID)"
        }
        func key(_ wallet: String, _ bucket: String) -> BalanceKey {
            BalanceKey(walletID: wallet, asset: "USD", bucket: bucket)
        }
        func ids(of kinds: Set<TransactionKind>) -> [String] {
            kinds.sorted { $0.rawValue < $1.rawValue }.flatMap { model.idsByKind[$0] ?? [] }
        }

        let steps = 2_500
        for step in 0..<steps {
            if Int.random(in: 0..<4, using: &random) == 0 {
                ledger.clock.advance(milliseconds: Int64.random(in: 0...3_000, using: &random))
            }
            let now = ledger.clock.now
            let wallet = Self.wallets.randomElement(using: &random)!
            let bucket = Self.buckets.randomElement(using: &random)!
            let amount = Int64.random(in: 1...400, using: &random)
            var funding = Array(Self.buckets.shuffled(using: &random).prefix(Int.random(in: 0...3, using: &random)))
            if funding == [Bucket.cash] { funding = [] }

            let command: Command
            let expected: Model.Outcome
            let id = freshID()
            var apply: (inout Model, OperationResult) -> Void = { _, _ in }

            switch Int.random(in: 0..<100, using: &random) {
            case 0..<20:
                command = try credit(id, wallet, amount * 3, bucket: bucket)
                expected = .success
                apply = { model, _ in
                    model.insert(
                        id,
                        .init(
                            kind: .credit, status: .posted, walletID: wallet, effect: [key(wallet, bucket): amount * 3])
                    )
                    model.apply([key(wallet, bucket): amount * 3])
                }
            case 20..<36:
                // Now and then, a bet that arrives after its cancel.
                let tombstoned = model.tombstones.sorted().randomElement(using: &random)
                let useTombstone = tombstoned != nil && Int.random(in: 0..<5, using: &random) == 0
                let debitID = useTombstone ? tombstoned! : id
                command = try debit(debitID, wallet, amount, funding: funding)
                if useTombstone {
                    // The late bet's refusal becomes the id's pinned outcome.
                    model.tombstones.remove(debitID)
                    expected = model.reject(debitID, kind: .debit, wallet: wallet, "ALREADY_ROLLED_BACK")
                } else if let parts = model.draw(amount, wallet: wallet, funding: funding, now: now) {
                    expected = .success
                    apply = { model, result in
                        #expect(result.transaction.funding == parts, "debit \(debitID) drew other buckets")
                        var effect: [BalanceKey: Int64] = [:]
                        for part in parts { effect[key(wallet, part.bucket), default: 0] -= part.amount }
                        model.insert(
                            debitID,
                            .init(
                                kind: .debit, status: .posted, walletID: wallet, effect: effect, parts: parts,
                                amount: amount))
                        model.apply(effect)
                    }
                } else {
                    expected = model.reject(debitID, kind: .debit, wallet: wallet, "INSUFFICIENT_FUNDS")
                }
            case 36..<50:
                let expiresIn = Int64.random(in: 1_000...20_000, using: &random)
                command = try authorize(id, wallet, amount, funding: funding, expiresInMilliseconds: expiresIn)
                if let parts = model.draw(amount, wallet: wallet, funding: funding, now: now) {
                    expected = .success
                    apply = { model, result in
                        #expect(result.transaction.funding == parts, "authorize \(id) reserved other buckets")
                        model.insert(
                            id,
                            .init(
                                kind: .authorize, status: .pending, walletID: wallet, parts: parts, amount: amount,
                                expiresAt: now + expiresIn * 1000))
                    }
                } else {
                    expected = model.reject(id, kind: .authorize, wallet: wallet, "INSUFFICIENT_FUNDS")
                }
            case 50..<64:
                guard
                    let holdID = ids(of: [.authorize]).filter({ model.records[$0]?.status != .rejected })
                        .randomElement(using: &random), let hold = model.records[holdID]
                else { continue }
                let capture =
                    Int.random(in: 0..<4, using: &random) == 0
                    ? 0 : Int64.random(in: 1...(hold.amount + 20), using: &random)
                let payout = Bool.random(using: &random) ? 0 : Int64.random(in: 1...300, using: &random)
                let payoutBucket = Self.buckets.randomElement(using: &random)!
                let destination =
                    Bool.random(using: &random)
                    ? "" : Self.wallets.filter { $0 != hold.walletID }.randomElement(using: &random)!
                command = try settle(
                    id, holdID, capture: capture, payout: payout, payoutBucket: payoutBucket, destination: destination)
                let captured = capture == 0 ? hold.amount : capture
                switch hold.status {
                case .settled: expected = model.reject(id, kind: .settle, wallet: hold.walletID, "ALREADY_SETTLED")
                case .rolledBack:
                    expected = model.reject(id, kind: .settle, wallet: hold.walletID, "ALREADY_ROLLED_BACK")
                case .expired: expected = model.reject(id, kind: .settle, wallet: hold.walletID, "HOLD_EXPIRED")
                case .pending where hold.expiresAt <= now:
                    model.records[holdID]?.status = .expired
                    expected = model.reject(id, kind: .settle, wallet: hold.walletID, "HOLD_EXPIRED")
                case .pending where captured > hold.amount:
                    expected = model.reject(id, kind: .settle, wallet: hold.walletID, "AMOUNT_EXCEEDS_HOLD")
                default:
                    expected = .success
                    apply = { model, _ in
                        var effect: [BalanceKey: Int64] = [:]
                        var remaining = captured
                        for part in hold.parts where remaining > 0 {
                            let take = min(part.amount, remaining)
                            effect[key(hold.walletID, part.bucket), default: 0] -= take
                            remaining -= take
                        }
                        if !destination.isEmpty { effect[key(destination, Bucket.cash), default: 0] += captured }
                        if payout > 0 { effect[key(hold.walletID, payoutBucket), default: 0] += payout }
                        model.records[holdID]?.status = .settled
                        model.insert(id, .init(kind: .settle, status: .posted, walletID: hold.walletID, effect: effect))
                        model.apply(effect)
                    }
                }
            case 64..<76:
                let candidates = ids(of: [.debit, .authorize, .credit, .transfer, .settle])
                let unknown = candidates.isEmpty || Int.random(in: 0..<6, using: &random) == 0
                let targetID = unknown ? "late-\(step)" : candidates.randomElement(using: &random)!
                command = try rollback(id, targetID)
                if unknown {
                    expected = .success
                    apply = { model, result in
                        #expect(result.targetFound == false)
                        model.tombstones.insert(targetID)
                        model.insert(id, .init(kind: .rollback, status: .posted, walletID: ""))
                    }
                } else {
                    let target = model.records[targetID]!
                    switch (target.kind, target.status) {
                    case (.debit, .posted):
                        expected = .success
                        apply = { model, result in
                            #expect(result.targetFound)
                            let effect = target.effect.mapValues { -$0 }
                            model.records[targetID]?.status = .rolledBack
                            model.insert(
                                id, .init(kind: .rollback, status: .posted, walletID: target.walletID, effect: effect))
                            model.apply(effect)
                        }
                    case (.authorize, .pending), (.debit, .rolledBack), (.debit, .rejected), (.authorize, .rolledBack),
                        (.authorize, .expired), (.authorize, .rejected):
                        expected = .success
                        apply = { model, result in
                            #expect(result.targetFound)
                            #expect(result.transaction.entries.isEmpty)
                            if target.status == .pending {
                                model.records[targetID]?.status = target.expiresAt <= now ? .expired : .rolledBack
                            }
                            model.insert(id, .init(kind: .rollback, status: .posted, walletID: target.walletID))
                        }
                    case (.authorize, .settled):
                        expected = model.reject(id, kind: .rollback, wallet: target.walletID, "ALREADY_SETTLED")
                    case (.debit, .reversed):
                        expected = model.reject(id, kind: .rollback, wallet: target.walletID, "ALREADY_REVERSED")
                    default:
                        expected = model.reject(id, kind: .rollback, wallet: target.walletID, "NOT_ROLLBACKABLE")
                    }
                }
            case 76..<82:
                guard let originalID = ids(of: [.credit, .debit, .settle, .transfer]).randomElement(using: &random)
                else {
                    continue
                }
                let original = model.records[originalID]!
                command = try reverse(id, originalID)
                let effect = original.effect.mapValues { -$0 }
                if original.kind == .transfer || original.status == .rejected {
                    expected = model.reject(id, kind: .reverse, wallet: original.walletID, "NOT_REVERSIBLE")
                } else if original.status == .reversed {
                    expected = model.reject(id, kind: .reverse, wallet: original.walletID, "ALREADY_REVERSED")
                } else if original.status == .rolledBack {
                    expected = model.reject(id, kind: .reverse, wallet: original.walletID, "ALREADY_ROLLED_BACK")
                } else if !model.fits(effect, now: now) {
                    expected = model.reject(id, kind: .reverse, wallet: original.walletID, "INSUFFICIENT_FUNDS")
                } else {
                    expected = .success
                    apply = { model, _ in
                        model.records[originalID]?.status = .reversed
                        model.insert(
                            id, .init(kind: .reverse, status: .posted, walletID: original.walletID, effect: effect))
                        model.apply(effect)
                    }
                }
            case 82..<92:
                let payee = Self.wallets.filter { $0 != wallet }.randomElement(using: &random)!
                command = try transfer(id, from: wallet, to: payee, amount, bucket: bucket)
                if model.capacity(key(wallet, bucket), now: now) >= amount {
                    expected = .success
                    apply = { model, _ in
                        let effect = [key(wallet, bucket): -amount, key(payee, bucket): amount]
                        model.insert(id, .init(kind: .transfer, status: .posted, walletID: wallet, effect: effect))
                        model.apply(effect)
                    }
                } else {
                    expected = model.reject(id, kind: .transfer, wallet: wallet, "INSUFFICIENT_FUNDS")
                }
            case 92..<95:
                guard let holdID = ids(of: [.authorize]).randomElement(using: &random), let hold = model.records[holdID]
                else {
                    continue
                }
                let outcome = await ledger.run(.expire(holdID: holdID))
                switch (hold.status, outcome) {
                case (.pending, .success(let result)) where hold.expiresAt <= now:
                    #expect(result.replayed == false)
                    model.records[holdID]?.status = .expired
                case (.expired, .success(let result)):
                    #expect(result.replayed)
                case (_, .failure(let error))
                where hold.status != .expired && !(hold.status == .pending && hold.expiresAt <= now):
                    #expect(error.reason == "NOT_EXPIRED")
                default:
                    Issue.record("expire of \(holdID) (\(hold.status)) gave \(outcome)")
                }
                continue
            default:
                // A retry of something already answered.
                guard let earlier = sent.randomElement(using: &random) else { continue }
                let before = await ledger.state().postings
                switch (earlier.outcome, await ledger.run(earlier.command)) {
                case (.success, .success(let result)):
                    #expect(result.replayed)
                    #expect(result.transaction.id == earlier.id)
                case (.failure(let reason), .failure(let error)):
                    #expect(error.reason == reason)
                case (let outcome, let result):
                    Issue.record("replay of \(earlier.id): first \(outcome), now \(result)")
                }
                #expect(await ledger.state().postings == before, "a replay moved money")
                continue
            }

            let result = await ledger.run(command)
            switch (expected, result) {
            case (.success, .success(let answer)):
                #expect(answer.replayed == false)
                apply(&model, answer)
            case (.failure(let reason), .failure(let error)):
                #expect(error.reason == reason, "\(command.transactionID): \(error)")
                if reason == "INSUFFICIENT_FUNDS" {
                    #expect(error.metadata["posted"] != nil, "\(command.transactionID): no balance in \(error)")
                }
            default:
                Issue.record("step \(step) \(command.transactionID): model expected \(expected), ledger said \(result)")
            }
            sent.append((command, expected, command.transactionID))

            if step % 500 == 499 {
                await ledger.expectAuditClean()
            }
        }

        let state = await ledger.state()
        for wallet in Self.wallets {
            for bucket in Self.buckets {
                let key = key(wallet, bucket)
                #expect(state.posted(key) == model.posted[key, default: 0], "\(wallet) \(bucket)")
            }
        }
        #expect(model.records.count > steps / 2)
        await ledger.expectAuditClean()
    }
}
