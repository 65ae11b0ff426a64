/// Validated requests. Each initializer checks shape only (no lookups), so a
/// command that exists is well-formed; what it means is decided by `Ledger`.
public enum Command: Sendable {
    case credit(Credit)
    case debit(Debit)
    case authorize(Authorize)
    case settle(Settle)
    case rollback(Rollback)
    case reverse(Reverse)
    case transfer(Transfer)
    /// Internal: release an expired hold (the sweeper's command).
    case expire(holdID: String)

    public var transactionID: String {
        switch self {
        case .credit(let c): c.transactionID
        case .debit(let c): c.transactionID
        case .authorize(let c): c.transactionID
        case .settle(let c): c.transactionID
        case .rollback(let c): c.transactionID
        case .reverse(let c): c.transactionID
        case .transfer(let c): c.transactionID
        case .expire(let holdID): Reserved.expireTransactionID(holdID: holdID)
        }
    }

    /// The request as idempotency compares it; nil for the internal Expire.
    public var fingerprint: RequestFingerprint? {
        switch self {
        case .credit(let c): c.fingerprint
        case .debit(let c): c.fingerprint
        case .authorize(let c): c.fingerprint
        case .settle(let c): c.fingerprint
        case .rollback(let c): c.fingerprint
        case .reverse(let c): c.fingerprint
        case .transfer(let c): c.fingerprint
        case .expire: nil
        }
    }

    /// The caller's metadata; empty for the internal Expire.
    public var metadata: [String: String] {
        switch self {
        case .credit(let c): c.metadata
        case .debit(let c): c.metadata
        case .authorize(let c): c.metadata
        case .settle(let c): c.metadata
        case .rollback(let c): c.metadata
        case .reverse(let c): c.metadata
        case .transfer(let c): c.metadata
        case .expire: [:]
        }
    }

    /// The identity that sent the command (see `Credit.caller`); always
    /// empty for the internal Expire, on which setting it does nothing.
    public var caller: String {
        get {
            switch self {
            case .credit(let c): c.caller
            case .debit(let c): c.caller
            case .authorize(let c): c.caller
            case .settle(let c): c.caller
            case .rollback(let c): c.caller
            case .reverse(let c): c.caller
            case .transfer(let c): c.caller
            case .expire: ""
            }
        }
        set {
            switch self {
            case .credit(var c):
                c.caller = newValue
                self = .credit(c)
            case .debit(var c):
                c.caller = newValue
                self = .debit(c)
            case .authorize(var c):
                c.caller = newValue
                self = .authorize(c)
            case .settle(var c):
                c.caller = newValue
                self = .settle(c)
            case .rollback(var c):
                c.caller = newValue
                self = .rollback(c)
            case .reverse(var c):
                c.caller = newValue
                self = .reverse(c)
            case .transfer(var c):
                c.caller = newValue
                self = .transfer(c)
            case .expire: break
            }
        }
    }

    /// The wallet a command is queued behind: the one whose order matters.
    /// Nil when it is only known after a lookup (Settle, Rollback, Reverse, Expire).
    public var primaryWalletID: String? {
        switch self {
        case .credit(let c): c.walletID
        case .debit(let c): c.walletID
        case .authorize(let c): c.walletID
        case .transfer(let c): c.fromWalletID
        case .settle, .rollback, .reverse, .expire: nil
        }
    }
}

public struct Credit: Sendable {
    public var transactionID: String
    public var walletID: String
    public var asset: String
    public var amount: Int64
    public var bucket: String
    public var metadata: [String: String]
    /// The identity that sent it (its client certificate's), set by the
    /// transport; empty when the call carried none. Recorded on the
    /// transaction it writes, never compared by idempotency.
    public var caller = ""

    public init(
        transactionID: String, walletID: String, asset: String, amount: Int64, bucket: String,
        metadata: [String: String]
    ) throws(LedgerError) {
        try Validate.transactionID(transactionID)
        try Validate.walletID(walletID)
        try Validate.assetCode(asset)
        try Validate.positiveAmount(amount)
        self.bucket = try Validate.bucketOrDefault(bucket)
        try Validate.stringMap(metadata, field: "metadata")
        self.transactionID = transactionID
        self.walletID = walletID
        self.asset = asset
        self.amount = amount
        self.metadata = metadata
    }

    var fingerprint: RequestFingerprint {
        RequestFingerprint([
            ("wallet_id", walletID), ("asset", asset), ("amount", String(amount)), ("bucket", bucket),
            ("metadata", RequestFingerprint.mapValue(metadata)),
        ])
    }
}

public struct Debit: Sendable {
    public var transactionID: String
    public var walletID: String
    public var asset: String
    public var amount: Int64
    public var funding: [String]
    public var metadata: [String: String]
    /// The identity that sent it (its client certificate's), set by the
    /// transport; empty when the call carried none. Recorded on the
    /// transaction it writes, never compared by idempotency.
    public var caller = ""

    public init(
        transactionID: String, walletID: String, asset: String, amount: Int64, funding: [String],
        metadata: [String: String]
    ) throws(LedgerError) {
        try Validate.transactionID(transactionID)
        try Validate.walletID(walletID)
        try Validate.assetCode(asset)
        try Validate.positiveAmount(amount)
        self.funding = try Validate.funding(funding)
        try Validate.stringMap(metadata, field: "metadata")
        self.transactionID = transactionID
        self.walletID = walletID
        self.asset = asset
        self.amount = amount
        self.metadata = metadata
    }

    var fingerprint: RequestFingerprint {
        RequestFingerprint([
            ("wallet_id", walletID), ("asset", asset), ("amount", String(amount)),
            ("funding", funding.joined(separator: ",")), ("metadata", RequestFingerprint.mapValue(metadata)),
        ])
    }
}

public struct Authorize: Sendable {
    public var transactionID: String
    public var walletID: String
    public var asset: String
    public var amount: Int64
    public var funding: [String]
    public var metadata: [String: String]
    /// The identity that sent it (its client certificate's), set by the
    /// transport; empty when the call carried none. Recorded on the
    /// transaction it writes, never compared by idempotency.
    public var caller = ""
    public var expiresInMilliseconds: Int64

    public init(
        transactionID: String, walletID: String, asset: String, amount: Int64, funding: [String],
        metadata: [String: String], expiresInMilliseconds: Int64
    ) throws(LedgerError) {
        try Validate.transactionID(transactionID)
        try Validate.walletID(walletID)
        try Validate.assetCode(asset)
        try Validate.positiveAmount(amount)
        self.funding = try Validate.funding(funding)
        try Validate.stringMap(metadata, field: "metadata")
        guard expiresInMilliseconds >= 0, expiresInMilliseconds <= Limits.holdExpiryMaxMilliseconds else {
            throw .invalid(
                "expires_in_ms",
                "expires_in_ms must be 0 (default 15 minutes) to \(Limits.holdExpiryMaxMilliseconds) (7 days)")
        }
        self.transactionID = transactionID
        self.walletID = walletID
        self.asset = asset
        self.amount = amount
        self.metadata = metadata
        self.expiresInMilliseconds =
            expiresInMilliseconds == 0 ? Limits.holdExpiryDefaultMilliseconds : expiresInMilliseconds
    }

    var fingerprint: RequestFingerprint {
        RequestFingerprint([
            ("wallet_id", walletID), ("asset", asset), ("amount", String(amount)),
            ("funding", funding.joined(separator: ",")), ("metadata", RequestFingerprint.mapValue(metadata)),
            ("expires_in_ms", String(expiresInMilliseconds)),
        ])
    }
}

public struct Settle: Sendable {
    public var transactionID: String
    public var authorizationID: String
    /// Zero captures the whole hold.
    public var captureAmount: Int64
    public var payout: Int64
    public var payoutBucket: String
    /// Empty: the house.
    public var destinationWalletID: String
    public var metadata: [String: String]
    /// The identity that sent it (its client certificate's), set by the
    /// transport; empty when the call carried none. Recorded on the
    /// transaction it writes, never compared by idempotency.
    public var caller = ""

    public init(
        transactionID: String, authorizationID: String, captureAmount: Int64, payout: Int64,
        payoutBucket: String, destinationWalletID: String, metadata: [String: String]
    ) throws(LedgerError) {
        try Validate.transactionID(transactionID)
        try Validate.transactionID(authorizationID, field: "authorization_id")
        guard captureAmount >= 0 else {
            throw .invalid("capture_amount", "capture_amount must be 0 (the whole hold) or positive")
        }
        guard payout >= 0 else { throw .invalid("payout", "payout must be 0 (none) or positive") }
        self.payoutBucket = try Validate.bucketOrDefault(payoutBucket, field: "payout_bucket")
        if !destinationWalletID.isEmpty {
            try Validate.walletID(destinationWalletID, field: "destination_wallet_id")
        }
        try Validate.stringMap(metadata, field: "metadata")
        self.transactionID = transactionID
        self.authorizationID = authorizationID
        self.captureAmount = captureAmount
        self.payout = payout
        self.destinationWalletID = destinationWalletID
        self.metadata = metadata
    }

    var fingerprint: RequestFingerprint {
        RequestFingerprint([
            ("authorization_id", authorizationID), ("capture_amount", String(captureAmount)),
            ("payout", String(payout)), ("payout_bucket", payoutBucket),
            ("destination_wallet_id", destinationWalletID), ("metadata", RequestFingerprint.mapValue(metadata)),
        ])
    }
}

public struct Rollback: Sendable {
    public var transactionID: String
    public var targetTransactionID: String
    public var metadata: [String: String]
    /// The identity that sent it (its client certificate's), set by the
    /// transport; empty when the call carried none. Recorded on the
    /// transaction it writes, never compared by idempotency.
    public var caller = ""

    public init(transactionID: String, targetTransactionID: String, metadata: [String: String]) throws(LedgerError) {
        try Validate.transactionID(transactionID)
        try Validate.transactionID(targetTransactionID, field: "target_transaction_id")
        guard targetTransactionID != transactionID else {
            throw .invalid("target_transaction_id", "a rollback cannot target itself")
        }
        try Validate.stringMap(metadata, field: "metadata")
        self.transactionID = transactionID
        self.targetTransactionID = targetTransactionID
        self.metadata = metadata
    }

    var fingerprint: RequestFingerprint {
        RequestFingerprint([
            ("target_transaction_id", targetTransactionID), ("metadata", RequestFingerprint.mapValue(metadata)),
        ])
    }
}

public struct Reverse: Sendable {
    public var transactionID: String
    public var originalTransactionID: String
    public var reason: String
    public var metadata: [String: String]
    /// The identity that sent it (its client certificate's), set by the
    /// transport; empty when the call carried none. Recorded on the
    /// transaction it writes, never compared by idempotency.
    public var caller = ""

    public init(transactionID: String, originalTransactionID: String, reason: String, metadata: [String: String])
        throws(LedgerError)
    {
        try Validate.transactionID(transactionID)
        try Validate.transactionID(originalTransactionID, field: "original_transaction_id")
        guard originalTransactionID != transactionID else {
            throw .invalid("original_transaction_id", "a reversal cannot target itself")
        }
        guard reason.utf8.count <= Limits.reasonBytesMax, !reason.utf8.contains(0) else {
            throw .invalid("reason", "reason must be at most \(Limits.reasonBytesMax) bytes, without NUL")
        }
        try Validate.stringMap(metadata, field: "metadata")
        self.transactionID = transactionID
        self.originalTransactionID = originalTransactionID
        self.reason = reason
        self.metadata = metadata
    }

    var fingerprint: RequestFingerprint {
        RequestFingerprint([
            ("original_transaction_id", originalTransactionID), ("reason", reason),
            ("metadata", RequestFingerprint.mapValue(metadata)),
        ])
    }
}

public struct Transfer: Sendable {
    public var transactionID: String
    public var fromWalletID: String
    public var toWalletID: String
    public var asset: String
    public var amount: Int64
    public var bucket: String
    public var metadata: [String: String]
    /// The identity that sent it (its client certificate's), set by the
    /// transport; empty when the call carried none. Recorded on the
    /// transaction it writes, never compared by idempotency.
    public var caller = ""

    public init(
        transactionID: String, fromWalletID: String, toWalletID: String, asset: String, amount: Int64,
        bucket: String, metadata: [String: String]
    ) throws(LedgerError) {
        try Validate.transactionID(transactionID)
        try Validate.walletID(fromWalletID, field: "from_wallet_id")
        try Validate.walletID(toWalletID, field: "to_wallet_id")
        guard fromWalletID != toWalletID else {
            throw .invalid("to_wallet_id", "to_wallet_id must differ from from_wallet_id")
        }
        try Validate.assetCode(asset)
        try Validate.positiveAmount(amount)
        self.bucket = try Validate.bucketOrDefault(bucket)
        try Validate.stringMap(metadata, field: "metadata")
        self.transactionID = transactionID
        self.fromWalletID = fromWalletID
        self.toWalletID = toWalletID
        self.asset = asset
        self.amount = amount
        self.metadata = metadata
    }

    var fingerprint: RequestFingerprint {
        RequestFingerprint([
            ("from_wallet_id", fromWalletID), ("to_wallet_id", toWalletID), ("asset", asset),
            ("amount", String(amount)), ("bucket", bucket), ("metadata", RequestFingerprint.mapValue(metadata)),
        ])
    }
}

/// CreateWallet and DefineAsset, validated.
public struct CreateWallet: Sendable {
    public var walletID: String
    public var overdraftLimit: Int64
    public var labels: [String: String]

    public init(walletID: String, overdraftLimit: Int64, labels: [String: String]) throws(LedgerError) {
        try Validate.walletID(walletID)
        guard overdraftLimit >= 0 else {
            throw .invalid("overdraft_limit", "overdraft_limit must be 0 (none) or positive")
        }
        try Validate.stringMap(labels, field: "labels")
        self.walletID = walletID
        self.overdraftLimit = overdraftLimit
        self.labels = labels
    }
}

public struct DefineAsset: Sendable {
    public var code: String
    public var decimalPlaces: UInt32

    public init(code: String, decimalPlaces: UInt32) throws(LedgerError) {
        try Validate.assetCode(code)
        guard decimalPlaces <= Limits.decimalPlacesMax else {
            throw .invalid("decimal_places", "decimal_places must be 0 to \(Limits.decimalPlacesMax)")
        }
        self.code = code
        self.decimalPlaces = decimalPlaces
    }
}
