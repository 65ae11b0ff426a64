/// The outcome of a money-moving command that the caller sees as OK.
public struct OperationResult: Sendable, Equatable {
    public var transaction: TransactionRecord
    public var replayed: Bool
    /// The wallet's balance in the transaction's asset as of this answer
    /// (Transfer: the payer's; Settle: the authorizing wallet's). Nil for a
    /// Rollback of an unknown target.
    public var balance: Balance?
    /// Rollback only.
    public var targetFound: Bool

    public init(transaction: TransactionRecord, replayed: Bool, balance: Balance?, targetFound: Bool = false) {
        self.transaction = transaction
        self.replayed = replayed
        self.balance = balance
        self.targetFound = targetFound
    }
}

/// What a store must lock and look up before it can apply a command.
public struct Footprint: Sendable, Equatable {
    public var walletIDs: Set<String> = []
    public var transactionIDs: Set<String> = []

    public init(walletIDs: Set<String> = [], transactionIDs: Set<String> = []) {
        self.walletIDs = walletIDs
        self.transactionIDs = transactionIDs
    }

    public mutating func formUnion(_ other: Footprint) {
        walletIDs.formUnion(other.walletIDs)
        transactionIDs.formUnion(other.transactionIDs)
    }
}

/// The rules of money. Pure: everything it knows comes from the state it is
/// given, and everything it decides is written back into that state.
public enum Ledger {
    /// Wallets and transactions a command needs. Commands that act on an
    /// earlier transaction only know their wallets once that transaction is
    /// loaded: a store calls this again after loading and locks the union.
    /// `houseSlotByAsset`: where the writer moved an asset's house side
    /// (see `LedgerState.houseSlotByAsset`).
    public static func footprint(
        of command: Command, known: [String: TransactionRecord], houseSlot: Int? = nil,
        houseSlotByAsset: [String: Int] = [:]
    ) -> Footprint {
        var footprint = Footprint(transactionIDs: [command.transactionID])
        func addWallet(_ id: String, asset: String) {
            guard !id.isEmpty else { return }
            footprint.walletIDs.insert(id)
            if !Reserved.isReserved(id) {
                footprint.walletIDs.insert(
                    Reserved.houseWalletID(asset: asset, forWallet: id, slot: houseSlotByAsset[asset] ?? houseSlot))
            }
        }
        func addTarget(_ id: String) {
            footprint.transactionIDs.insert(id)
            guard let target = known[id] else { return }
            addWallet(target.walletID, asset: target.asset)
            if !target.counterpartyWalletID.isEmpty { footprint.walletIDs.insert(target.counterpartyWalletID) }
            for entry in target.entries { footprint.walletIDs.insert(entry.walletID) }
        }
        // A replay answers with the balance of the wallet it first touched.
        if let existing = known[command.transactionID], existing.kind != .tombstone {
            addWallet(existing.walletID, asset: existing.asset)
        }
        switch command {
        case .credit(let c): addWallet(c.walletID, asset: c.asset)
        case .debit(let c): addWallet(c.walletID, asset: c.asset)
        case .authorize(let c): addWallet(c.walletID, asset: c.asset)
        case .transfer(let c):
            footprint.walletIDs.insert(c.fromWalletID)
            footprint.walletIDs.insert(c.toWalletID)
        case .settle(let c):
            addTarget(c.authorizationID)
            // Settling or rolling back an expired hold writes its expiry.
            footprint.transactionIDs.insert(Reserved.expireTransactionID(holdID: c.authorizationID))
            if !c.destinationWalletID.isEmpty { footprint.walletIDs.insert(c.destinationWalletID) }
        case .rollback(let c):
            addTarget(c.targetTransactionID)
            footprint.transactionIDs.insert(Reserved.expireTransactionID(holdID: c.targetTransactionID))
        case .reverse(let c): addTarget(c.originalTransactionID)
        case .expire(let holdID): addTarget(holdID)
        }
        return footprint
    }

    /// `footprint(of: command, known: known)`, given `base`, that command's
    /// footprint with nothing known: returned as it is when `known` holds
    /// none of the transactions it names, because the footprint reads
    /// `known` only for those (the command's own id, for a replay, and its
    /// target). A store that recomputes footprints as it loads rows skips
    /// rebuilding the same sets.
    public static func footprint(
        of command: Command, known: [String: TransactionRecord], houseSlot: Int? = nil,
        houseSlotByAsset: [String: Int] = [:], base: Footprint
    ) -> Footprint {
        guard !known.isEmpty, base.transactionIDs.contains(where: { known[$0] != nil }) else { return base }
        return footprint(of: command, known: known, houseSlot: houseSlot, houseSlotByAsset: houseSlotByAsset)
    }

    public static func apply(_ command: Command, to state: inout LedgerState, now: Timestamp)
        -> Result<OperationResult, LedgerError>
    {
        // Move the state in and out rather than copy it: a batch's state is
        // large and copy-on-write would duplicate it per command.
        var context = Context(state: LedgerState(), now: now)
        swap(&context.state, &state)
        defer { swap(&context.state, &state) }
        do throws(LedgerError) {
            return .success(try context.run(command))
        } catch {
            return .failure(error)
        }
    }
}

/// One command's application. Checks come before changes, so a command that
/// fails has changed nothing but what it pins (a rejection, an expiry).
private struct Context {
    var state: LedgerState
    let now: Timestamp

    init(state: LedgerState, now: Timestamp) {
        self.state = state
        self.now = now
    }

    mutating func run(_ command: Command) throws(LedgerError) -> OperationResult {
        switch command {
        case .credit(let c): return try credit(c)
        case .debit(let c): return try debit(c)
        case .authorize(let c): return try authorize(c)
        case .settle(let c): return try settle(c)
        case .rollback(let c): return try rollback(c)
        case .reverse(let c): return try reverse(c)
        case .transfer(let c): return try transfer(c)
        case .expire(let holdID): return try expire(holdID: holdID)
        }
    }

    // MARK: Idempotency

    /// Answers a transaction_id that already has an outcome: the same request
    /// gets that outcome again; another request is a mismatch. `base` is the
    /// new request as a record (id, kind, wallet, asset, amount, request).
    mutating func replay(_ base: TransactionRecord) throws(LedgerError) -> OperationResult? {
        let id = base.id
        guard let existing = state.transactions[id] else { return nil }
        if existing.kind == .tombstone {
            // The id was rolled back before it arrived: the late request is
            // refused, and the refusal becomes the id's pinned outcome.
            var rejected = base
            rejected.status = .rejected
            rejected.reason = RejectionReason.alreadyRolledBack.rawValue
            rejected.targetID = existing.targetID
            state.replace(rejected)
            throw LedgerError(
                .failedPrecondition, RejectionReason.alreadyRolledBack.rawValue,
                "transaction \(id) was rolled back (by \(existing.targetID)) before it arrived",
                metadata: balanceMetadata(of: rejected))
        }
        var differing = existing.request.differingFields(from: base.request)
        if existing.kind != base.kind { differing.insert("rpc", at: 0) }
        guard differing.isEmpty else {
            throw LedgerError(
                .alreadyExists, "IDEMPOTENCY_MISMATCH",
                "transaction \(id) was first sent with other values for: \(differing.joined(separator: ", "))",
                metadata: ["fields": differing.joined(separator: ",")])
        }
        if existing.status == .rejected {
            throw LedgerError(
                .failedPrecondition, existing.reason, "transaction \(id) was rejected: \(existing.reason) (replayed)",
                metadata: balanceMetadata(of: existing))
        }
        return OperationResult(
            transaction: existing, replayed: true, balance: balance(of: existing), targetFound: existing.targetFound)
    }

    func balance(of record: TransactionRecord) -> Balance? {
        guard !record.walletID.isEmpty, state.wallets[record.walletID] != nil else { return nil }
        return state.balance(walletID: record.walletID, asset: record.asset, now: now)
    }

    func balanceMetadata(of record: TransactionRecord) -> [String: String] {
        balance(of: record)?.errorMetadata ?? [:]
    }

    /// Pins a business rejection to its transaction_id and throws it.
    mutating func reject(_ reason: RejectionReason, _ record: TransactionRecord, _ message: String) -> LedgerError {
        var rejected = record
        rejected.status = .rejected
        rejected.reason = reason.rawValue
        rejected.entries = []
        rejected.funding = []
        state.insert(rejected)
        return LedgerError(.failedPrecondition, reason.rawValue, message, metadata: balanceMetadata(of: rejected))
    }

    // MARK: Lookups that record nothing when they fail

    func requireWallet(_ id: String) throws(LedgerError) -> WalletRecord {
        guard let wallet = state.wallets[id] else { throw .walletNotFound(id) }
        return wallet
    }

    func requireAsset(_ code: String) throws(LedgerError) {
        guard state.assets[code] != nil else { throw .assetNotFound(code) }
    }

    func houseWallet(asset: String, forWallet walletID: String) throws(LedgerError) -> String {
        let id = state.houseWalletID(asset: asset, forWallet: walletID)
        guard state.wallets[id] != nil else {
            throw .internalError("house wallet for \(asset) is not loaded")
        }
        return id
    }

    // MARK: Money

    /// What a bucket can still give: available, plus the overdraft for cash.
    func capacity(_ key: BalanceKey, wallet: WalletRecord, ignoringHold: String? = nil) -> Int64 {
        // Int128: posted, held and the overdraft are each Int64, their
        // combination need not be.
        let available = Int128(state.posted(key)) - state.heldExactly(key, now: now, ignoringHold: ignoringHold)
        let floor = key.bucket == Bucket.cash ? Int128(wallet.overdraftLimit) : 0
        return Int64(clamping: Swift.max(0, available + floor))
    }

    /// Draws `amount` from buckets in funding order; nil when they cannot cover it.
    func draw(_ amount: Int64, from funding: [String], wallet: WalletRecord, asset: String) -> [BucketAmount]? {
        var remaining = amount
        var parts: [BucketAmount] = []
        for bucket in funding where remaining > 0 {
            let take = Swift.min(
                remaining, capacity(BalanceKey(walletID: wallet.id, asset: asset, bucket: bucket), wallet: wallet))
            if take > 0 {
                parts.append(BucketAmount(bucket: bucket, amount: take))
                remaining -= take
            }
        }
        return remaining == 0 ? parts : nil
    }

    /// The house's side of `entries`: every house entry of an asset moves
    /// to one slot with room for their sum, the slot the command chose when
    /// it has room, else the first slot the state holds that has, in slot
    /// order after the chosen one (wrapping). A slot is one Int64; the
    /// house is the sum of its slots, so a full slot refuses no one. When no
    /// slot at hand has room, `houseSlotsFull`: the store gives the state
    /// one and applies the command again (nothing was changed).
    func placeHouseSide(_ entries: inout [Entry]) throws(LedgerError) {
        var sums: [String: (chosen: String, sum: Int128)] = [:]
        for entry in entries where Reserved.isHouseWallet(entry.walletID) {
            let previous = sums[entry.asset]
            sums[entry.asset] = (previous?.chosen ?? entry.walletID, (previous?.sum ?? 0) + Int128(entry.amount))
        }
        for (asset, house) in sums {
            func hasRoom(_ walletID: String) -> Bool {
                let key = BalanceKey(walletID: walletID, asset: asset, bucket: Bucket.cash)
                return Int64(exactly: Int128(state.posted(key)) + house.sum) != nil
            }
            // Consolidated on one slot even when they already are (several
            // slots in one command happen only for a reversal of such).
            var slot = house.chosen
            if !hasRoom(slot) {
                let chosenNumber = Reserved.houseSlot(of: house.chosen, asset: asset) ?? -1
                let held = state.houseSlots(asset: asset)
                let order = held.filter { $0 > chosenNumber } + held.filter { $0 < chosenNumber }
                guard
                    let number = order.first(where: { hasRoom(Reserved.houseWalletID(asset: asset, slot: $0)) })
                else {
                    throw .houseSlotsFull(asset: asset)
                }
                slot = Reserved.houseWalletID(asset: asset, slot: number)
            }
            for index in entries.indices
            where entries[index].asset == asset && Reserved.isHouseWallet(entries[index].walletID) {
                entries[index].walletID = slot
            }
        }
    }

    /// Applies entries to posted balances, assigning each its place in its
    /// wallet's hash chain. Checks everything before changing anything. The
    /// house's side moves to a slot with room first (`placeHouseSide`), so
    /// a BALANCE_OVERFLOW is only ever a wallet's own: a bucket, or its
    /// total per asset, past Int64.
    mutating func post(_ entries: inout [Entry], transactionID: String, ignoringHold: String? = nil)
        throws(LedgerError) -> RejectionReason?
    {
        try placeHouseSide(&entries)
        var sums: [String: Int128] = [:]  // per asset: double entry
        // Each balance as the command leaves it, summed without a ceiling:
        // only where the command leaves a balance must it fit an Int64.
        var exact: [BalanceKey: Int128] = [:]
        for entry in entries {
            sums[entry.asset, default: 0] += Int128(entry.amount)
            exact[entry.key] = (exact[entry.key] ?? Int128(state.posted(entry.key))) + Int128(entry.amount)
        }
        precondition(sums.values.allSatisfy { $0 == 0 }, "entries of \(transactionID) do not balance")
        var next: [BalanceKey: Int64] = [:]
        for (key, value) in exact {
            guard let fits = Int64(exactly: value) else {
                precondition(!Reserved.isHouseWallet(key.walletID), "house slot \(key.walletID) placed without room")
                return .balanceOverflow
            }
            next[key] = fits
        }
        for (key, value) in next where !Reserved.isReserved(key.walletID) {
            guard let wallet = state.wallets[key.walletID] else {
                preconditionFailure("posting to unloaded wallet \(key.walletID)")
            }
            let before = state.posted(key)
            if value < before {
                let floor: Int128 = key.bucket == Bucket.cash ? -Int128(wallet.overdraftLimit) : 0
                let held = state.heldExactly(key, now: now, ignoringHold: ignoringHold)
                if Int128(value) - held < floor { return .insufficientFunds }
            }
            // A wallet's total per asset must stay representable too: its
            // buckets as they will be (this command's values where it
            // changes one), summed without a ceiling, then checked.
            var total: Int128 = 0
            let walletAsset = LedgerState.WalletAsset(walletID: key.walletID, asset: key.asset)
            for (bucket, amount) in state.postings[walletAsset] ?? [:]
            where next[BalanceKey(walletID: key.walletID, asset: key.asset, bucket: bucket)] == nil {
                total += Int128(amount)
            }
            for (other, otherValue) in next where other.walletID == key.walletID && other.asset == key.asset {
                total += Int128(otherValue)
            }
            if Int64(exactly: total) == nil { return .balanceOverflow }
        }
        for (key, value) in next { state.setPosted(value, for: key) }
        return nil
    }

    /// Gives entries their sequence and chain hash, in order.
    mutating func chain(_ entries: [Entry], transactionID: String) -> [Entry] {
        var chained: [Entry] = []
        chained.reserveCapacity(entries.count)
        for var entry in entries {
            guard let wallet = state.wallets[entry.walletID] else {
                preconditionFailure("chaining entry of unloaded wallet \(entry.walletID)")
            }
            entry.sequence = wallet.lastSequence + 1
            entry.hash = HashChain.hash(previous: wallet.lastHash, entry: entry, transactionID: transactionID)
            state.advanceChain(of: entry.walletID, sequence: entry.sequence, hash: entry.hash)
            chained.append(entry)
        }
        return chained
    }

    mutating func commit(_ record: TransactionRecord, targetFound: Bool = false) -> OperationResult {
        var record = record
        record.entries = chain(record.entries, transactionID: record.id)
        record.targetFound = targetFound
        state.insert(record)
        return OperationResult(
            transaction: record, replayed: false, balance: balance(of: record), targetFound: targetFound)
    }

    // MARK: Operations

    mutating func credit(_ c: Credit) throws(LedgerError) -> OperationResult {
        var record = TransactionRecord(
            id: c.transactionID, kind: .credit, status: .posted, walletID: c.walletID, asset: c.asset,
            amount: c.amount, createdAt: now, metadata: c.metadata, caller: c.caller, request: c.fingerprint)
        if let replayed = try replay(record) { return replayed }
        _ = try requireWallet(c.walletID)
        try requireAsset(c.asset)
        let house = try houseWallet(asset: c.asset, forWallet: c.walletID)
        record.entries = [
            Entry(walletID: c.walletID, asset: c.asset, bucket: c.bucket, amount: c.amount),
            Entry(walletID: house, asset: c.asset, bucket: Bucket.cash, amount: -c.amount),
        ]
        if let reason = try post(&record.entries, transactionID: record.id) {
            throw reject(reason, record, "crediting \(c.amount) would overflow the balance")
        }
        return commit(record)
    }

    mutating func debit(_ c: Debit) throws(LedgerError) -> OperationResult {
        var record = TransactionRecord(
            id: c.transactionID, kind: .debit, status: .posted, walletID: c.walletID, asset: c.asset,
            amount: c.amount, createdAt: now, metadata: c.metadata, caller: c.caller, request: c.fingerprint)
        if let replayed = try replay(record) { return replayed }
        let wallet = try requireWallet(c.walletID)
        try requireAsset(c.asset)
        let house = try houseWallet(asset: c.asset, forWallet: c.walletID)
        guard let parts = draw(c.amount, from: c.funding, wallet: wallet, asset: c.asset) else {
            throw reject(
                .insufficientFunds, record,
                "available funds in \(c.funding.joined(separator: ", ")) do not cover \(c.amount)")
        }
        record.funding = parts
        record.entries = parts.map {
            Entry(walletID: c.walletID, asset: c.asset, bucket: $0.bucket, amount: -$0.amount)
        }
        record.entries.append(Entry(walletID: house, asset: c.asset, bucket: Bucket.cash, amount: c.amount))
        if let reason = try post(&record.entries, transactionID: record.id) {
            throw reject(reason, record, "the debit cannot be posted: \(reason.rawValue)")
        }
        return commit(record)
    }

    mutating func authorize(_ c: Authorize) throws(LedgerError) -> OperationResult {
        var record = TransactionRecord(
            id: c.transactionID, kind: .authorize, status: .pending, walletID: c.walletID, asset: c.asset,
            amount: c.amount, createdAt: now, metadata: c.metadata,
            expiresAt: now + c.expiresInMilliseconds * 1000, caller: c.caller, request: c.fingerprint)
        if let replayed = try replay(record) { return replayed }
        let wallet = try requireWallet(c.walletID)
        try requireAsset(c.asset)
        guard let parts = draw(c.amount, from: c.funding, wallet: wallet, asset: c.asset) else {
            throw reject(
                .insufficientFunds, record,
                "available funds in \(c.funding.joined(separator: ", ")) do not cover \(c.amount)")
        }
        record.funding = parts
        return commit(record)
    }

    mutating func settle(_ c: Settle) throws(LedgerError) -> OperationResult {
        let request = c.fingerprint
        if let replayed = try replay(
            TransactionRecord(
                id: c.transactionID, kind: .settle, status: .posted, walletID: "", asset: "", amount: c.captureAmount,
                createdAt: now, metadata: c.metadata, targetID: c.authorizationID, caller: c.caller,
                request: request))
        {
            return replayed
        }
        guard let hold = state.transactions[c.authorizationID], hold.kind == .authorize else {
            throw LedgerError.transactionNotFound(c.authorizationID)
        }
        let wallet = try requireWallet(hold.walletID)
        if !c.destinationWalletID.isEmpty {
            _ = try requireWallet(c.destinationWalletID)
            guard c.destinationWalletID != hold.walletID else {
                throw .invalid("destination_wallet_id", "the destination must differ from the authorizing wallet")
            }
        }
        let house = try houseWallet(asset: hold.asset, forWallet: hold.walletID)
        let capture = c.captureAmount == 0 ? hold.amount : c.captureAmount
        var record = TransactionRecord(
            id: c.transactionID, kind: .settle, status: .posted, walletID: hold.walletID, asset: hold.asset,
            amount: capture, createdAt: now, metadata: c.metadata, targetID: hold.id,
            counterpartyWalletID: c.destinationWalletID, caller: c.caller, request: request)
        switch hold.status {
        case .settled: throw reject(.alreadySettled, record, "authorization \(hold.id) is already settled")
        case .rolledBack: throw reject(.alreadyRolledBack, record, "authorization \(hold.id) was rolled back")
        case .expired: throw reject(.holdExpired, record, "authorization \(hold.id) expired")
        case .pending where hold.expiresAt <= now:
            releaseExpired(hold)
            throw reject(.holdExpired, record, "authorization \(hold.id) expired")
        case .pending: break
        case .posted, .reversed, .rejected:
            throw LedgerError.transactionNotFound(c.authorizationID)
        }
        guard capture <= hold.amount else {
            throw reject(.amountExceedsHold, record, "capture \(capture) exceeds the held \(hold.amount)")
        }
        var remaining = capture
        for part in hold.funding where remaining > 0 {
            let take = Swift.min(part.amount, remaining)
            record.entries.append(Entry(walletID: wallet.id, asset: hold.asset, bucket: part.bucket, amount: -take))
            remaining -= take
        }
        let receiver = c.destinationWalletID.isEmpty ? house : c.destinationWalletID
        record.entries.append(Entry(walletID: receiver, asset: hold.asset, bucket: Bucket.cash, amount: capture))
        if c.payout > 0 {
            record.entries.append(
                Entry(walletID: wallet.id, asset: hold.asset, bucket: c.payoutBucket, amount: c.payout))
            record.entries.append(Entry(walletID: house, asset: hold.asset, bucket: Bucket.cash, amount: -c.payout))
        }
        if let reason = try post(&record.entries, transactionID: record.id, ignoringHold: hold.id) {
            throw reject(reason, record, "the settlement cannot be posted: \(reason.rawValue)")
        }
        state.setStatus(.settled, of: hold.id)
        return commit(record)
    }

    mutating func rollback(_ c: Rollback) throws(LedgerError) -> OperationResult {
        let request = c.fingerprint
        if let replayed = try replay(
            TransactionRecord(
                id: c.transactionID, kind: .rollback, status: .posted, walletID: "", asset: "", amount: 0,
                createdAt: now, metadata: c.metadata, targetID: c.targetTransactionID, caller: c.caller,
                request: request))
        {
            return replayed
        }
        var record = TransactionRecord(
            id: c.transactionID, kind: .rollback, status: .posted, walletID: "", asset: "", amount: 0,
            createdAt: now, metadata: c.metadata, targetID: c.targetTransactionID, caller: c.caller,
            request: request)
        guard let target = state.transactions[c.targetTransactionID], target.kind != .tombstone else {
            if state.transactions[c.targetTransactionID] == nil {
                // The bet has not arrived (networks reorder): leave a tombstone
                // so that it is refused when it does.
                state.insert(
                    TransactionRecord(
                        id: c.targetTransactionID, kind: .tombstone, status: .rolledBack, walletID: "", asset: "",
                        amount: 0, createdAt: now, targetID: c.transactionID, caller: c.caller))
            }
            return commit(record, targetFound: false)
        }
        record.walletID = target.walletID
        record.asset = target.asset
        _ = try requireWallet(target.walletID)
        switch (target.kind, target.status) {
        case (.debit, .posted):
            let house = try houseWallet(asset: target.asset, forWallet: target.walletID)
            record.amount = target.amount
            record.entries = target.funding.map {
                Entry(walletID: target.walletID, asset: target.asset, bucket: $0.bucket, amount: $0.amount)
            }
            record.entries.append(
                Entry(walletID: house, asset: target.asset, bucket: Bucket.cash, amount: -target.amount))
            if let reason = try post(&record.entries, transactionID: record.id) {
                throw reject(reason, record, "the rollback cannot be posted: \(reason.rawValue)")
            }
            state.setStatus(.rolledBack, of: target.id)
        case (.authorize, .pending) where target.expiresAt <= now:
            releaseExpired(target)
        case (.authorize, .pending):
            record.amount = target.amount
            state.setStatus(.rolledBack, of: target.id)
        case (.debit, .rolledBack), (.debit, .rejected), (.authorize, .rolledBack), (.authorize, .expired),
            (.authorize, .rejected):
            break  // nothing left to return: OK, and no money moves
        case (.authorize, .settled):
            throw reject(
                .alreadySettled, record, "authorization \(target.id) is settled; use Reverse on its settlement")
        case (.debit, .reversed):
            throw reject(.alreadyReversed, record, "debit \(target.id) was reversed")
        default:
            throw reject(.notRollbackable, record, "a \(target.kind.rawValue) cannot be rolled back; use Reverse")
        }
        return commit(record, targetFound: true)
    }

    mutating func reverse(_ c: Reverse) throws(LedgerError) -> OperationResult {
        let request = c.fingerprint
        if let replayed = try replay(
            TransactionRecord(
                id: c.transactionID, kind: .reverse, status: .posted, walletID: "", asset: "", amount: 0,
                createdAt: now, metadata: c.metadata, targetID: c.originalTransactionID, caller: c.caller,
                request: request))
        {
            return replayed
        }
        guard let original = state.transactions[c.originalTransactionID], original.kind != .tombstone else {
            throw LedgerError.transactionNotFound(c.originalTransactionID)
        }
        _ = try requireWallet(original.walletID)
        var record = TransactionRecord(
            id: c.transactionID, kind: .reverse, status: .posted, walletID: original.walletID, asset: original.asset,
            amount: original.amount, createdAt: now, metadata: c.metadata, targetID: original.id,
            reason: "", caller: c.caller, request: request)
        guard [.credit, .debit, .settle].contains(original.kind), original.status != .rejected else {
            throw reject(.notReversible, record, "only a posted Credit, Debit or Settle can be reversed")
        }
        switch original.status {
        case .reversed: throw reject(.alreadyReversed, record, "transaction \(original.id) was already reversed")
        case .rolledBack: throw reject(.alreadyRolledBack, record, "transaction \(original.id) was rolled back")
        default: break
        }
        // A posted Credit, Debit or Settle moved a positive amount, so it has
        // entries; none loaded means the store lost them, and a reversal that
        // posts nothing must not mark the original reversed.
        guard !original.entries.isEmpty else {
            throw LedgerError.internalError("transaction \(original.id) has no entries to reverse")
        }
        record.entries = original.entries.map {
            Entry(walletID: $0.walletID, asset: $0.asset, bucket: $0.bucket, amount: -$0.amount)
        }
        if let reason = try post(&record.entries, transactionID: record.id) {
            throw reject(reason, record, "the reversal cannot be posted: \(reason.rawValue)")
        }
        state.setStatus(.reversed, of: original.id)
        return commit(record)
    }

    mutating func transfer(_ c: Transfer) throws(LedgerError) -> OperationResult {
        var record = TransactionRecord(
            id: c.transactionID, kind: .transfer, status: .posted, walletID: c.fromWalletID, asset: c.asset,
            amount: c.amount, createdAt: now, metadata: c.metadata, counterpartyWalletID: c.toWalletID,
            caller: c.caller, request: c.fingerprint)
        if let replayed = try replay(record) { return replayed }
        let payer = try requireWallet(c.fromWalletID)
        _ = try requireWallet(c.toWalletID)
        try requireAsset(c.asset)
        record.entries = [
            Entry(walletID: c.fromWalletID, asset: c.asset, bucket: c.bucket, amount: -c.amount),
            Entry(walletID: c.toWalletID, asset: c.asset, bucket: c.bucket, amount: c.amount),
        ]
        let key = BalanceKey(walletID: payer.id, asset: c.asset, bucket: c.bucket)
        guard capacity(key, wallet: payer) >= c.amount else {
            throw reject(.insufficientFunds, record, "available funds in \(c.bucket) do not cover \(c.amount)")
        }
        if let reason = try post(&record.entries, transactionID: record.id) {
            throw reject(reason, record, "the transfer cannot be posted: \(reason.rawValue)")
        }
        return commit(record)
    }

    /// The sweeper's command. Not applicable (nothing recorded) unless the
    /// hold is open and past its expiry.
    mutating func expire(holdID: String) throws(LedgerError) -> OperationResult {
        let id = Reserved.expireTransactionID(holdID: holdID)
        if let existing = state.transactions[id] {
            precondition(existing.kind == .expire, "\(id) holds a \(existing.kind.rawValue), not an expiry")
            return OperationResult(transaction: existing, replayed: true, balance: balance(of: existing))
        }
        guard let hold = state.transactions[holdID], hold.isOpenHold, hold.expiresAt <= now else {
            throw LedgerError(.failedPrecondition, "NOT_EXPIRED", "hold \(holdID) is not an open, expired hold")
        }
        return releaseExpired(hold)
    }

    /// Writes the hold's EXPIRE transaction, exactly once (its id is derived
    /// from the hold's).
    @discardableResult
    mutating func releaseExpired(_ hold: TransactionRecord) -> OperationResult {
        state.setStatus(.expired, of: hold.id)
        let record = TransactionRecord(
            id: Reserved.expireTransactionID(holdID: hold.id), kind: .expire, status: .posted,
            walletID: hold.walletID, asset: hold.asset, amount: hold.amount, createdAt: now, targetID: hold.id)
        return commit(record)
    }
}
