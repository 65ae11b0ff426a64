/// The slice of the ledger one unit of work sees and changes: the wallets it
/// locked, their balances and open holds, and the transactions it looked up.
/// The Postgres store loads one per database transaction (for a batch of
/// commands); the in-memory store keeps one for everything. `Ledger` applies
/// commands to it; the changes it records are what a store must persist.
public struct LedgerState: Sendable {
    public struct WalletAsset: Hashable, Sendable {
        public var walletID: String
        public var asset: String

        public init(walletID: String, asset: String) {
            self.walletID = walletID
            self.asset = asset
        }
    }

    public var assets: [String: Asset] = [:]
    /// The house slot this state's writer uses; nil = each wallet's own slot.
    public var houseSlot: Int?
    /// Per asset, the slot the writer moved to when its own had no room
    /// (overrides `houseSlot` for that asset).
    public var houseSlotByAsset: [String: Int] = [:]
    public private(set) var wallets: [String: WalletRecord] = [:]
    /// Posted balance per bucket, per (wallet, asset). A missing bucket is 0.
    public private(set) var postings: [WalletAsset: [String: Int64]] = [:]
    public private(set) var transactions: [String: TransactionRecord] = [:]
    /// Open (PENDING) authorizations per wallet.
    public private(set) var openHolds: [String: Set<String>] = [:]
    /// The balances a store loaded, that is, the ones it has a row for. A
    /// touched balance among them is an update, any other a new row.
    public private(set) var loadedBalances: Set<BalanceKey> = []

    // What changed since the last `resetChanges()`, for the store to write.
    public private(set) var insertedTransactionIDs: [String] = []
    /// Existing transactions whose status changed, or (tombstones) whose
    /// whole row was replaced by a pinned rejection.
    public private(set) var updatedTransactionIDs: Set<String> = []
    public private(set) var replacedTransactionIDs: Set<String> = []
    public private(set) var touchedBalances: Set<BalanceKey> = []
    public private(set) var touchedWalletIDs: Set<String> = []
    /// Every transaction record written and every status change, in the
    /// order the rules made them: the events the store publishes with the
    /// commit (tombstones are internal and make none).
    public private(set) var events: [LedgerEvent] = []

    public init() {}

    // MARK: Loading (stores only)

    public mutating func load(wallet: WalletRecord) {
        wallets[wallet.id] = wallet
    }

    public mutating func load(posted: Int64, for key: BalanceKey) {
        postings[WalletAsset(walletID: key.walletID, asset: key.asset), default: [:]][key.bucket] = posted
        loadedBalances.insert(key)
    }

    public mutating func load(transaction: TransactionRecord) {
        transactions[transaction.id] = transaction
        if transaction.isOpenHold {
            openHolds[transaction.walletID, default: []].insert(transaction.id)
        }
    }

    public mutating func resetChanges() {
        // What was written has a row now.
        loadedBalances.formUnion(touchedBalances)
        insertedTransactionIDs.removeAll(keepingCapacity: true)
        updatedTransactionIDs.removeAll(keepingCapacity: true)
        replacedTransactionIDs.removeAll(keepingCapacity: true)
        touchedBalances.removeAll(keepingCapacity: true)
        touchedWalletIDs.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
    }

    public var hasChanges: Bool { !insertedTransactionIDs.isEmpty || !updatedTransactionIDs.isEmpty }

    // MARK: Reading

    public func posted(_ key: BalanceKey) -> Int64 {
        postings[WalletAsset(walletID: key.walletID, asset: key.asset)]?[key.bucket] ?? 0
    }

    /// What open, unexpired holds reserve in one bucket. An expired hold stops
    /// counting at its expiry instant, whether or not it was released yet.
    public func held(_ key: BalanceKey, now: Timestamp, ignoringHold ignored: String? = nil) -> Int64 {
        Int64(clamping: heldExactly(key, now: now, ignoringHold: ignored))
    }

    /// The same sum without a ceiling: many large holds on a wallet with a
    /// large overdraft may add up past Int64.
    public func heldExactly(_ key: BalanceKey, now: Timestamp, ignoringHold ignored: String? = nil) -> Int128 {
        var total: Int128 = 0
        for holdID in openHolds[key.walletID] ?? [] where holdID != ignored {
            guard let hold = transactions[holdID], hold.asset == key.asset, hold.expiresAt > now else { continue }
            for part in hold.funding where part.bucket == key.bucket {
                total += Int128(part.amount)
            }
        }
        return total
    }

    public func balance(walletID: String, asset: String, now: Timestamp) -> Balance {
        var buckets = Set((postings[WalletAsset(walletID: walletID, asset: asset)] ?? [:]).keys)
        for holdID in openHolds[walletID] ?? [] {
            guard let hold = transactions[holdID], hold.asset == asset else { continue }
            for part in hold.funding { buckets.insert(part.bucket) }
        }
        let rows = buckets.map { bucket in
            let key = BalanceKey(walletID: walletID, asset: asset, bucket: bucket)
            let posted = posted(key)
            let held = heldExactly(key, now: now)
            return BucketBalance(
                bucket: bucket, posted: posted, held: Int64(clamping: held),
                available: Int64(clamping: Int128(posted) - held))
        }
        return Balance(walletID: walletID, asset: asset, buckets: rows)
    }

    /// Assets in which a wallet has a balance row or an open hold.
    public func assets(ofWallet walletID: String) -> [String] {
        var codes = Set(postings.keys.filter { $0.walletID == walletID }.map(\.asset))
        for holdID in openHolds[walletID] ?? [] {
            if let hold = transactions[holdID] { codes.insert(hold.asset) }
        }
        return codes.sorted()
    }

    public func openHoldIDs(ofWallet walletID: String) -> Set<String> { openHolds[walletID] ?? [] }

    /// The house wallet this state's writer posts `asset` to first, for
    /// `walletID`'s entries.
    public func houseWalletID(asset: String, forWallet walletID: String) -> String {
        Reserved.houseWalletID(asset: asset, forWallet: walletID, slot: houseSlotByAsset[asset] ?? houseSlot)
    }

    /// The slot numbers of `asset`'s house wallets this state holds, in order.
    public func houseSlots(asset: String) -> [Int] {
        wallets.keys.compactMap { Reserved.houseSlot(of: $0, asset: asset) }.sorted()
    }

    // MARK: Changing (Ledger only)

    mutating func insert(_ record: TransactionRecord) {
        precondition(transactions[record.id] == nil, "transaction \(record.id) recorded twice")
        transactions[record.id] = record
        insertedTransactionIDs.append(record.id)
        if record.kind != .tombstone {
            events.append(LedgerEvent(transactionID: record.id, status: record.status))
        }
        if record.isOpenHold {
            openHolds[record.walletID, default: []].insert(record.id)
        }
    }

    mutating func setStatus(_ status: TransactionStatus, of transactionID: String) {
        guard var record = transactions[transactionID] else {
            preconditionFailure("status change of unknown transaction \(transactionID)")
        }
        record.status = status
        transactions[transactionID] = record
        if record.kind != .tombstone {
            events.append(LedgerEvent(transactionID: transactionID, status: status))
        }
        if !record.isOpenHold {
            openHolds[record.walletID]?.remove(transactionID)
        }
        if !insertedTransactionIDs.contains(transactionID) {
            updatedTransactionIDs.insert(transactionID)
        }
    }

    /// Replaces a stored row whole (a tombstone becoming the pinned rejection
    /// of the late bet that carries its id).
    mutating func replace(_ record: TransactionRecord) {
        precondition(transactions[record.id] != nil, "replacing unknown transaction \(record.id)")
        transactions[record.id] = record
        if record.kind != .tombstone {
            events.append(LedgerEvent(transactionID: record.id, status: record.status))
        }
        if !insertedTransactionIDs.contains(record.id) {
            updatedTransactionIDs.insert(record.id)
            replacedTransactionIDs.insert(record.id)
        }
    }

    mutating func setPosted(_ value: Int64, for key: BalanceKey) {
        postings[WalletAsset(walletID: key.walletID, asset: key.asset), default: [:]][key.bucket] = value
        touchedBalances.insert(key)
    }

    mutating func advanceChain(of walletID: String, sequence: UInt64, hash: [UInt8]) {
        wallets[walletID]?.advanceChain(sequence: sequence, hash: hash)
        touchedWalletIDs.insert(walletID)
    }

    /// Create a wallet outside of any command (CreateWallet, DefineAsset's house slots).
    public mutating func create(wallet: WalletRecord) {
        wallets[wallet.id] = wallet
    }
}

extension WalletRecord {
    /// One dictionary access for both fields (`wallets[id]?.advanceChain`).
    fileprivate mutating func advanceChain(sequence: UInt64, hash: [UInt8]) {
        lastSequence = sequence
        lastHash = hash
    }
}
