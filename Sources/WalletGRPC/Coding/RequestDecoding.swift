import WalletDomain
import WalletProto

/// Parses request bytes with protobuf-c, hands the fields to `body` as Swift
/// values, and frees the C message. Malformed bytes are INVALID_ARGUMENT.
func decode<M, R>(
    _ bytes: [UInt8],
    _ unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<M>?,
    _ free: (UnsafeMutablePointer<M>?, UnsafeMutablePointer<ProtobufCAllocator>?) -> Void,
    _ body: (M) throws(LedgerError) -> R
) throws(LedgerError) -> R {
    let malformed = LedgerError(
        .invalidArgument, "INVALID_REQUEST", "the request is not a valid protobuf message of this method",
        metadata: ["field": "request"])
    let message: UnsafeMutablePointer<M>? = bytes.withUnsafeBufferPointer { unpack(nil, $0.count, $0.baseAddress) }
    guard let message else { throw malformed }
    defer { free(message, nil) }
    // Every protobuf-c message starts with its ProtobufCMessage header, whose
    // first member is the descriptor.
    let descriptor = UnsafeRawPointer(message).load(as: UnsafePointer<ProtobufCMessageDescriptor>.self)
    switch StringCheck(bytes[...], descriptor) {
    case .clean: break
    case .nul(let field): throw .invalid(field, "\(field) may not contain NUL characters")
    case .unreadable: throw malformed
    }
    return try body(message.pointee)
}

/// protobuf-c hands strings over as C strings, which end at the first NUL: a
/// transaction_id "bet-1\0x" would reach the domain as "bet-1", another id
/// than the caller sent. This walks the wire bytes protobuf-c has already
/// parsed, against the message's descriptor, into nested messages and map
/// entries. It fails closed: bytes it cannot walk (protobuf-c is more
/// lenient, e.g. with an overlong field-0 key) are `unreadable`, not clean.
enum StringCheck: Equatable {
    case clean
    /// The top-level field whose bytes put a NUL in a string.
    case nul(field: String)
    case unreadable

    init(_ bytes: ArraySlice<UInt8>, _ descriptor: UnsafePointer<ProtobufCMessageDescriptor>) {
        let fields = UnsafeBufferPointer(start: descriptor.pointee.fields, count: Int(descriptor.pointee.n_fields))
        var reader = WireReader(bytes)
        do {
            while let field = try reader.next() {
                guard case .bytes(let value) = field.value else { continue }
                guard let number = UInt32(exactly: field.number) else {
                    self = .unreadable
                    return
                }
                guard let described = fields.first(where: { $0.id == number }) else { continue }
                let nested: StringCheck
                switch described.type {
                case PROTOBUF_C_TYPE_STRING:
                    nested = value.contains(0) ? .nul(field: "") : .clean
                case PROTOBUF_C_TYPE_MESSAGE:
                    nested = StringCheck(
                        value, described.descriptor.assumingMemoryBound(to: ProtobufCMessageDescriptor.self))
                default:
                    nested = .clean
                }
                switch nested {
                case .clean: continue
                case .nul: self = .nul(field: String(cString: described.name))
                case .unreadable: self = .unreadable
                }
                return
            }
        } catch {
            self = .unreadable
            return
        }
        self = .clean
    }
}

/// Reads a protobuf-c string field; proto3 strings must be UTF-8.
func text(_ pointer: UnsafeMutablePointer<CChar>?, field: String) throws(LedgerError) -> String {
    guard let pointer else { return "" }
    guard let value = String(validatingCString: pointer) else {
        throw .invalid(field, "\(field) is not valid UTF-8")
    }
    return value
}

func texts(_ pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, count: Int, field: String)
    throws(LedgerError) -> [String]
{
    var values: [String] = []
    for index in 0..<count { values.append(try text(pointer?[index], field: field)) }
    return values
}

/// Reads a map<string,string> (protobuf-c: an array of key/value entries).
/// A key sent twice keeps its last value, as protobuf says. Two keys with
/// other bytes that Swift's String calls equal (canonically equivalent
/// Unicode: "é" as one scalar and as "e" plus an accent) would fold into one
/// entry and lose a value: INVALID_ARGUMENT instead.
func stringMap<E>(
    _ pointer: UnsafeMutablePointer<UnsafeMutablePointer<E>?>?, count: Int, field: String,
    key: (E) -> UnsafeMutablePointer<CChar>?, value: (E) -> UnsafeMutablePointer<CChar>?
) throws(LedgerError) -> [String: String] {
    guard count <= Limits.metadataEntriesMax else {
        throw .invalid(field, "\(field) may hold at most \(Limits.metadataEntriesMax) entries")
    }
    var map: [String: String] = [:]
    for index in 0..<count {
        guard let entry = pointer?[index]?.pointee else { continue }
        let k = try text(key(entry), field: field)
        let v = try text(value(entry), field: field)
        if let existing = map.index(forKey: k), !map[existing].key.utf8.elementsEqual(k.utf8) {
            throw .invalid(field, "\(field) has two keys that differ only in Unicode normalization")
        }
        map[k] = v
    }
    return map
}

enum Requests {
    static func credit(_ bytes: [UInt8]) throws(LedgerError) -> Command {
        try decode(bytes, wallet__v1__credit_request__unpack, wallet__v1__credit_request__free_unpacked) {
            m throws(LedgerError) in
            .credit(
                try Credit(
                    transactionID: try text(m.transaction_id, field: "transaction_id"),
                    walletID: try text(m.wallet_id, field: "wallet_id"),
                    asset: try text(m.asset, field: "asset"), amount: m.amount,
                    bucket: try text(m.bucket, field: "bucket"),
                    metadata: try stringMap(
                        m.metadata, count: m.n_metadata, field: "metadata", key: { $0.key }, value: { $0.value })))
        }
    }

    static func debit(_ bytes: [UInt8]) throws(LedgerError) -> Command {
        try decode(bytes, wallet__v1__debit_request__unpack, wallet__v1__debit_request__free_unpacked) {
            m throws(LedgerError) in
            .debit(
                try Debit(
                    transactionID: try text(m.transaction_id, field: "transaction_id"),
                    walletID: try text(m.wallet_id, field: "wallet_id"),
                    asset: try text(m.asset, field: "asset"), amount: m.amount,
                    funding: try texts(m.funding, count: m.n_funding, field: "funding"),
                    metadata: try stringMap(
                        m.metadata, count: m.n_metadata, field: "metadata", key: { $0.key }, value: { $0.value })))
        }
    }

    static func authorize(_ bytes: [UInt8]) throws(LedgerError) -> Command {
        try decode(bytes, wallet__v1__authorize_request__unpack, wallet__v1__authorize_request__free_unpacked) {
            m throws(LedgerError) in
            .authorize(
                try Authorize(
                    transactionID: try text(m.transaction_id, field: "transaction_id"),
                    walletID: try text(m.wallet_id, field: "wallet_id"),
                    asset: try text(m.asset, field: "asset"), amount: m.amount,
                    funding: try texts(m.funding, count: m.n_funding, field: "funding"),
                    metadata: try stringMap(
                        m.metadata, count: m.n_metadata, field: "metadata", key: { $0.key }, value: { $0.value }),
                    expiresInMilliseconds: m.expires_in_ms))
        }
    }

    static func settle(_ bytes: [UInt8]) throws(LedgerError) -> Command {
        try decode(bytes, wallet__v1__settle_request__unpack, wallet__v1__settle_request__free_unpacked) {
            m throws(LedgerError) in
            .settle(
                try Settle(
                    transactionID: try text(m.transaction_id, field: "transaction_id"),
                    authorizationID: try text(m.authorization_id, field: "authorization_id"),
                    captureAmount: m.capture_amount, payout: m.payout,
                    payoutBucket: try text(m.payout_bucket, field: "payout_bucket"),
                    destinationWalletID: try text(m.destination_wallet_id, field: "destination_wallet_id"),
                    metadata: try stringMap(
                        m.metadata, count: m.n_metadata, field: "metadata", key: { $0.key }, value: { $0.value })))
        }
    }

    static func rollback(_ bytes: [UInt8]) throws(LedgerError) -> Command {
        try decode(bytes, wallet__v1__rollback_request__unpack, wallet__v1__rollback_request__free_unpacked) {
            m throws(LedgerError) in
            .rollback(
                try Rollback(
                    transactionID: try text(m.transaction_id, field: "transaction_id"),
                    targetTransactionID: try text(m.target_transaction_id, field: "target_transaction_id"),
                    metadata: try stringMap(
                        m.metadata, count: m.n_metadata, field: "metadata", key: { $0.key }, value: { $0.value })))
        }
    }

    static func reverse(_ bytes: [UInt8]) throws(LedgerError) -> Command {
        try decode(bytes, wallet__v1__reverse_request__unpack, wallet__v1__reverse_request__free_unpacked) {
            m throws(LedgerError) in
            .reverse(
                try Reverse(
                    transactionID: try text(m.transaction_id, field: "transaction_id"),
                    originalTransactionID: try text(m.original_transaction_id, field: "original_transaction_id"),
                    reason: try text(m.reason, field: "reason"),
                    metadata: try stringMap(
                        m.metadata, count: m.n_metadata, field: "metadata", key: { $0.key }, value: { $0.value })))
        }
    }

    static func transfer(_ bytes: [UInt8]) throws(LedgerError) -> Command {
        try decode(bytes, wallet__v1__transfer_request__unpack, wallet__v1__transfer_request__free_unpacked) {
            m throws(LedgerError) in
            .transfer(
                try Transfer(
                    transactionID: try text(m.transaction_id, field: "transaction_id"),
                    fromWalletID: try text(m.from_wallet_id, field: "from_wallet_id"),
                    toWalletID: try text(m.to_wallet_id, field: "to_wallet_id"),
                    asset: try text(m.asset, field: "asset"), amount: m.amount,
                    bucket: try text(m.bucket, field: "bucket"),
                    metadata: try stringMap(
                        m.metadata, count: m.n_metadata, field: "metadata", key: { $0.key }, value: { $0.value })))
        }
    }

    static func createWallet(_ bytes: [UInt8]) throws(LedgerError) -> CreateWallet {
        try decode(bytes, wallet__v1__create_wallet_request__unpack, wallet__v1__create_wallet_request__free_unpacked) {
            m throws(LedgerError) in
            try CreateWallet(
                walletID: try text(m.wallet_id, field: "wallet_id"), overdraftLimit: m.overdraft_limit,
                labels: try stringMap(
                    m.labels, count: m.n_labels, field: "labels", key: { $0.key }, value: { $0.value }))
        }
    }

    static func defineAsset(_ bytes: [UInt8]) throws(LedgerError) -> DefineAsset {
        try decode(bytes, wallet__v1__define_asset_request__unpack, wallet__v1__define_asset_request__free_unpacked) {
            m throws(LedgerError) in
            try DefineAsset(code: try text(m.asset, field: "asset"), decimalPlaces: m.decimal_places)
        }
    }

    static func getBalance(_ bytes: [UInt8]) throws(LedgerError) -> (walletID: String, asset: String) {
        try decode(bytes, wallet__v1__get_balance_request__unpack, wallet__v1__get_balance_request__free_unpacked) {
            m throws(LedgerError) in
            let walletID = try text(m.wallet_id, field: "wallet_id")
            try Validate.walletID(walletID, allowReserved: true)
            let asset = try text(m.asset, field: "asset")
            if !asset.isEmpty { try Validate.assetCode(asset) }
            return (walletID, asset)
        }
    }

    static func getTransaction(_ bytes: [UInt8]) throws(LedgerError) -> String {
        try decode(
            bytes, wallet__v1__get_transaction_request__unpack, wallet__v1__get_transaction_request__free_unpacked
        ) { m throws(LedgerError) in
            let id = try text(m.transaction_id, field: "transaction_id")
            try Validate.transactionID(id, field: "transaction_id")
            return id
        }
    }

    static func listTransactions(_ bytes: [UInt8]) throws(LedgerError) -> (
        walletID: String, pageSize: Int, pageToken: String
    ) {
        try decode(
            bytes, wallet__v1__list_transactions_request__unpack, wallet__v1__list_transactions_request__free_unpacked
        ) { m throws(LedgerError) in
            let walletID = try text(m.wallet_id, field: "wallet_id")
            try Validate.walletID(walletID, allowReserved: true)
            guard m.page_size <= UInt32(Limits.pageSizeMax) else {
                throw LedgerError(
                    .invalidArgument, "INVALID_PAGE_SIZE", "page_size must be at most \(Limits.pageSizeMax)",
                    metadata: ["field": "page_size"])
            }
            let pageSize = m.page_size == 0 ? Limits.pageSizeDefault : Int(m.page_size)
            return (walletID, pageSize, try text(m.page_token, field: "page_token"))
        }
    }

    /// WatchEvents: where to start (a cursor, or now) and which wallet.
    static func watchEvents(_ bytes: [UInt8], cursors: EventCursorCodec) throws(LedgerError) -> (
        start: EventStart, walletID: String?
    ) {
        try decode(
            bytes, wallet__v1__watch_events_request__unpack, wallet__v1__watch_events_request__free_unpacked
        ) { m throws(LedgerError) in
            let cursor = try text(m.after_cursor, field: "after_cursor")
            let walletID = try text(m.wallet_id, field: "wallet_id")
            if !walletID.isEmpty { try Validate.walletID(walletID, allowReserved: true) }
            let fromNow = m.from_now != 0
            if fromNow && !cursor.isEmpty {
                throw LedgerError(
                    .invalidArgument, "INVALID_FROM_NOW", "from_now and after_cursor cannot be given together",
                    metadata: ["field": "from_now"])
            }
            let start: EventStart =
                fromNow ? .now : .after(cursor.isEmpty ? .origin : try cursors.decode(cursor))
            return (start, walletID.isEmpty ? nil : walletID)
        }
    }

    static func healthCheck(_ bytes: [UInt8]) throws(LedgerError) -> String {
        try decode(
            bytes, grpc__health__v1__health_check_request__unpack, grpc__health__v1__health_check_request__free_unpacked
        ) { m throws(LedgerError) in
            try text(m.service, field: "service")
        }
    }
}
