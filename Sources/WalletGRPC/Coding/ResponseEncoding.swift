import WalletDomain
import WalletProto

/// Domain values to protobuf-c messages, packed to bytes. Each function
/// builds its message in an arena that frees it once packed.
enum Responses {
    static func operation(_ result: OperationResult, method: WalletMethod) -> [UInt8] {
        let arena = CArena()
        let transaction = transactionMessage(result.transaction, arena)
        let balance = result.balance.map { balanceMessage($0, arena) }
        let replayed: protobuf_c_boolean = result.replayed ? 1 : 0
        switch method {
        case .credit:
            let m = arena.allocate(Wallet__V1__CreditResponse.self)
            wallet__v1__credit_response__init(m)
            m.pointee.transaction = transaction
            m.pointee.replayed = replayed
            m.pointee.balance = balance
            return pack(m)
        case .debit:
            let m = arena.allocate(Wallet__V1__DebitResponse.self)
            wallet__v1__debit_response__init(m)
            m.pointee.transaction = transaction
            m.pointee.replayed = replayed
            m.pointee.balance = balance
            return pack(m)
        case .authorize:
            let m = arena.allocate(Wallet__V1__AuthorizeResponse.self)
            wallet__v1__authorize_response__init(m)
            m.pointee.transaction = transaction
            m.pointee.replayed = replayed
            m.pointee.balance = balance
            return pack(m)
        case .settle:
            let m = arena.allocate(Wallet__V1__SettleResponse.self)
            wallet__v1__settle_response__init(m)
            m.pointee.transaction = transaction
            m.pointee.replayed = replayed
            m.pointee.balance = balance
            return pack(m)
        case .rollback:
            let m = arena.allocate(Wallet__V1__RollbackResponse.self)
            wallet__v1__rollback_response__init(m)
            m.pointee.transaction = transaction
            m.pointee.replayed = replayed
            m.pointee.balance = balance
            m.pointee.target_found = result.targetFound ? 1 : 0
            return pack(m)
        case .reverse:
            let m = arena.allocate(Wallet__V1__ReverseResponse.self)
            wallet__v1__reverse_response__init(m)
            m.pointee.transaction = transaction
            m.pointee.replayed = replayed
            m.pointee.balance = balance
            return pack(m)
        case .transfer:
            let m = arena.allocate(Wallet__V1__TransferResponse.self)
            wallet__v1__transfer_response__init(m)
            m.pointee.transaction = transaction
            m.pointee.replayed = replayed
            m.pointee.balance = balance
            return pack(m)
        default:
            preconditionFailure("\(method) does not return an operation result")
        }
    }

    static func createWallet(_ wallet: WalletRecord, created: Bool) -> [UInt8] {
        let arena = CArena()
        let info = arena.allocate(Wallet__V1__WalletInfo.self)
        wallet__v1__wallet_info__init(info)
        info.pointee.wallet_id = arena.string(wallet.id)
        info.pointee.overdraft_limit = wallet.overdraftLimit
        info.pointee.created_at = wallet.createdAt
        let labels = wallet.labels.keys.sorted().map { key in
            let entry = arena.allocate(Wallet__V1__WalletInfo__LabelsEntry.self)
            wallet__v1__wallet_info__labels_entry__init(entry)
            entry.pointee.key = arena.string(key)
            entry.pointee.value = arena.string(wallet.labels[key]!)
            return entry
        }
        info.pointee.n_labels = labels.count
        info.pointee.labels = arena.array(labels)
        let m = arena.allocate(Wallet__V1__CreateWalletResponse.self)
        wallet__v1__create_wallet_response__init(m)
        m.pointee.wallet = info
        m.pointee.created = created ? 1 : 0
        return pack(m)
    }

    static func defineAsset(_ asset: Asset, created: Bool) -> [UInt8] {
        let arena = CArena()
        let m = arena.allocate(Wallet__V1__DefineAssetResponse.self)
        wallet__v1__define_asset_response__init(m)
        m.pointee.asset = arena.string(asset.code)
        m.pointee.decimal_places = asset.decimalPlaces
        m.pointee.created = created ? 1 : 0
        return pack(m)
    }

    static func balances(_ balances: [Balance]) -> [UInt8] {
        let arena = CArena()
        let m = arena.allocate(Wallet__V1__GetBalanceResponse.self)
        wallet__v1__get_balance_response__init(m)
        let items = balances.map { balanceMessage($0, arena) }
        m.pointee.n_balances = items.count
        m.pointee.balances = arena.array(items)
        return pack(m)
    }

    static func transaction(_ record: TransactionRecord) -> [UInt8] {
        let arena = CArena()
        let m = arena.allocate(Wallet__V1__GetTransactionResponse.self)
        wallet__v1__get_transaction_response__init(m)
        m.pointee.transaction = transactionMessage(record, arena)
        return pack(m)
    }

    /// One WatchEvents message.
    static func event(_ event: PositionedEvent, cursor: String) -> [UInt8] {
        let arena = CArena()
        let m = arena.allocate(Wallet__V1__Event.self)
        wallet__v1__event__init(m)
        m.pointee.cursor = arena.string(cursor)
        m.pointee.transaction = transactionMessage(event.transaction, arena)
        return pack(m)
    }

    static func history(_ records: [TransactionRecord], nextPageToken: String) -> [UInt8] {
        let arena = CArena()
        let m = arena.allocate(Wallet__V1__ListTransactionsResponse.self)
        wallet__v1__list_transactions_response__init(m)
        let items = records.map { transactionMessage($0, arena) }
        m.pointee.n_transactions = items.count
        m.pointee.transactions = arena.array(items)
        m.pointee.next_page_token = arena.string(nextPageToken)
        return pack(m)
    }

    static func health(_ status: HealthService.ServingStatus) -> [UInt8] {
        let arena = CArena()
        let m = arena.allocate(Grpc__Health__V1__HealthCheckResponse.self)
        grpc__health__v1__health_check_response__init(m)
        m.pointee.status =
            switch status {
            case .serving: GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
            case .notServing: GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
            case .serviceUnknown: GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
            }
        return pack(m)
    }

    // MARK: Shared messages

    static func transactionMessage(_ record: TransactionRecord, _ arena: CArena)
        -> UnsafeMutablePointer<Wallet__V1__Transaction>
    {
        let m = arena.allocate(Wallet__V1__Transaction.self)
        wallet__v1__transaction__init(m)
        m.pointee.transaction_id = arena.string(record.id)
        m.pointee.kind = kind(record.kind)
        m.pointee.status = status(record.status)
        m.pointee.wallet_id = arena.string(record.walletID)
        m.pointee.asset = arena.string(record.asset)
        m.pointee.amount = record.amount
        m.pointee.created_at = record.createdAt
        m.pointee.target_transaction_id = arena.string(record.targetID)
        m.pointee.expires_at = record.expiresAt
        m.pointee.reason = arena.string(record.reason)
        m.pointee.counterparty_wallet_id = arena.string(record.counterpartyWalletID)
        m.pointee.caller = arena.string(record.caller)
        let entries = record.entries.map { entry in
            let e = arena.allocate(Wallet__V1__Entry.self)
            wallet__v1__entry__init(e)
            e.pointee.wallet_id = arena.string(entry.walletID)
            e.pointee.asset = arena.string(entry.asset)
            e.pointee.bucket = arena.string(entry.bucket)
            e.pointee.amount = entry.amount
            e.pointee.sequence = entry.sequence
            e.pointee.hash = arena.binary(entry.hash)
            return e
        }
        m.pointee.n_entries = entries.count
        m.pointee.entries = arena.array(entries)
        let funding = record.funding.map { part in
            let f = arena.allocate(Wallet__V1__BucketAmount.self)
            wallet__v1__bucket_amount__init(f)
            f.pointee.bucket = arena.string(part.bucket)
            f.pointee.amount = part.amount
            return f
        }
        m.pointee.n_funding = funding.count
        m.pointee.funding = arena.array(funding)
        let metadata = record.metadata.keys.sorted().map { key in
            let entry = arena.allocate(Wallet__V1__Transaction__MetadataEntry.self)
            wallet__v1__transaction__metadata_entry__init(entry)
            entry.pointee.key = arena.string(key)
            entry.pointee.value = arena.string(record.metadata[key]!)
            return entry
        }
        m.pointee.n_metadata = metadata.count
        m.pointee.metadata = arena.array(metadata)
        return m
    }

    static func balanceMessage(_ balance: Balance, _ arena: CArena) -> UnsafeMutablePointer<Wallet__V1__Balance> {
        let m = arena.allocate(Wallet__V1__Balance.self)
        wallet__v1__balance__init(m)
        m.pointee.wallet_id = arena.string(balance.walletID)
        m.pointee.asset = arena.string(balance.asset)
        m.pointee.posted = balance.posted
        m.pointee.held = balance.held
        m.pointee.available = balance.available
        let buckets = balance.buckets.map { bucket in
            let b = arena.allocate(Wallet__V1__BucketBalance.self)
            wallet__v1__bucket_balance__init(b)
            b.pointee.bucket = arena.string(bucket.bucket)
            b.pointee.posted = bucket.posted
            b.pointee.held = bucket.held
            b.pointee.available = bucket.available
            return b
        }
        m.pointee.n_buckets = buckets.count
        m.pointee.buckets = arena.array(buckets)
        return m
    }

    static func kind(_ kind: TransactionKind) -> Wallet__V1__TransactionKind {
        switch kind {
        case .credit: WALLET__V1__TRANSACTION_KIND__CREDIT
        case .debit: WALLET__V1__TRANSACTION_KIND__DEBIT
        case .authorize: WALLET__V1__TRANSACTION_KIND__AUTHORIZE
        case .settle: WALLET__V1__TRANSACTION_KIND__SETTLE
        case .rollback: WALLET__V1__TRANSACTION_KIND__ROLLBACK
        case .reverse: WALLET__V1__TRANSACTION_KIND__REVERSE
        case .transfer: WALLET__V1__TRANSACTION_KIND__TRANSFER
        case .expire: WALLET__V1__TRANSACTION_KIND__EXPIRE
        case .tombstone: WALLET__V1__TRANSACTION_KIND__KIND_UNSPECIFIED
        }
    }

    static func status(_ status: TransactionStatus) -> Wallet__V1__TransactionStatus {
        switch status {
        case .posted: WALLET__V1__TRANSACTION_STATUS__POSTED
        case .pending: WALLET__V1__TRANSACTION_STATUS__PENDING
        case .settled: WALLET__V1__TRANSACTION_STATUS__SETTLED
        case .rolledBack: WALLET__V1__TRANSACTION_STATUS__ROLLED_BACK
        case .expired: WALLET__V1__TRANSACTION_STATUS__EXPIRED
        case .reversed: WALLET__V1__TRANSACTION_STATUS__REVERSED
        case .rejected: WALLET__V1__TRANSACTION_STATUS__REJECTED
        }
    }
}
