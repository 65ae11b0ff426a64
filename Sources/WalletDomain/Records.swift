/// Unix time in microseconds: the one clock type of the ledger.
public typealias Timestamp = Int64

public struct Asset: Sendable, Equatable {
    public var code: String
    public var decimalPlaces: UInt32

    public init(code: String, decimalPlaces: UInt32) {
        self.code = code
        self.decimalPlaces = decimalPlaces
    }
}

public struct WalletRecord: Sendable, Equatable {
    public var id: String
    public var overdraftLimit: Int64
    public var labels: [String: String]
    public var createdAt: Timestamp
    /// Head of the wallet's entry hash chain.
    public var lastSequence: UInt64
    public var lastHash: [UInt8]

    public var isSystem: Bool { Reserved.isReserved(id) }

    public init(
        id: String, overdraftLimit: Int64 = 0, labels: [String: String] = [:], createdAt: Timestamp,
        lastSequence: UInt64 = 0, lastHash: [UInt8] = HashChain.genesis
    ) {
        self.id = id
        self.overdraftLimit = overdraftLimit
        self.labels = labels
        self.createdAt = createdAt
        self.lastSequence = lastSequence
        self.lastHash = lastHash
    }
}

public enum TransactionKind: String, Sendable, Equatable, CaseIterable {
    case credit = "CREDIT"
    case debit = "DEBIT"
    case authorize = "AUTHORIZE"
    case settle = "SETTLE"
    case rollback = "ROLLBACK"
    case reverse = "REVERSE"
    case transfer = "TRANSFER"
    case expire = "EXPIRE"
    /// Internal: a Rollback's mark on a transaction_id that had not arrived
    /// yet. Never returned to callers.
    case tombstone = "TOMBSTONE"
}

public enum TransactionStatus: String, Sendable, Equatable, CaseIterable {
    case posted = "POSTED"
    case pending = "PENDING"
    case settled = "SETTLED"
    case rolledBack = "ROLLED_BACK"
    case expired = "EXPIRED"
    case reversed = "REVERSED"
    case rejected = "REJECTED"
}

public struct BalanceKey: Hashable, Sendable {
    public var walletID: String
    public var asset: String
    public var bucket: String

    public init(walletID: String, asset: String, bucket: String) {
        self.walletID = walletID
        self.asset = asset
        self.bucket = bucket
    }
}

public struct Entry: Sendable, Equatable {
    public var walletID: String
    public var asset: String
    public var bucket: String
    /// Signed: positive adds to the bucket's posted balance.
    public var amount: Int64
    public var sequence: UInt64
    public var hash: [UInt8]

    public init(
        walletID: String, asset: String, bucket: String, amount: Int64, sequence: UInt64 = 0, hash: [UInt8] = []
    ) {
        self.walletID = walletID
        self.asset = asset
        self.bucket = bucket
        self.amount = amount
        self.sequence = sequence
        self.hash = hash
    }

    public var key: BalanceKey { BalanceKey(walletID: walletID, asset: asset, bucket: bucket) }
}

public struct BucketAmount: Sendable, Equatable {
    public var bucket: String
    public var amount: Int64

    public init(bucket: String, amount: Int64) {
        self.bucket = bucket
        self.amount = amount
    }
}

/// One outcome of one transaction_id, success or pinned rejection.
public struct TransactionRecord: Sendable, Equatable {
    public var id: String
    public var kind: TransactionKind
    public var status: TransactionStatus
    public var walletID: String
    public var asset: String
    public var amount: Int64
    public var entries: [Entry]
    public var createdAt: Timestamp
    public var metadata: [String: String]
    /// Settle: the authorization; Rollback, Reverse: the target.
    public var targetID: String
    /// Debit and Authorize: what each bucket gave, in draw order.
    public var funding: [BucketAmount]
    /// Authorize: when the hold stops counting.
    public var expiresAt: Timestamp
    /// REJECTED: the pinned reason.
    public var reason: String
    /// Transfer: the payee; Settle: the destination, empty for the house.
    public var counterpartyWalletID: String
    /// The identity whose call wrote this record (its client certificate's);
    /// empty when the call carried none, and for expiries (the sweeper's). A
    /// status change keeps it: the record is still the one that call wrote.
    public var caller: String
    /// The request's fields as canonical text, for idempotency comparison.
    public var request: RequestFingerprint
    /// Rollback: whether its target existed when it was applied.
    public var targetFound: Bool

    public init(
        id: String, kind: TransactionKind, status: TransactionStatus, walletID: String, asset: String,
        amount: Int64, entries: [Entry] = [], createdAt: Timestamp, metadata: [String: String] = [:],
        targetID: String = "", funding: [BucketAmount] = [], expiresAt: Timestamp = 0, reason: String = "",
        counterpartyWalletID: String = "", caller: String = "", request: RequestFingerprint = RequestFingerprint([]),
        targetFound: Bool = false
    ) {
        self.targetFound = targetFound
        self.id = id
        self.kind = kind
        self.status = status
        self.walletID = walletID
        self.asset = asset
        self.amount = amount
        self.entries = entries
        self.createdAt = createdAt
        self.metadata = metadata
        self.targetID = targetID
        self.funding = funding
        self.expiresAt = expiresAt
        self.reason = reason
        self.counterpartyWalletID = counterpartyWalletID
        self.caller = caller
        self.request = request
    }

    public var isOpenHold: Bool { kind == .authorize && status == .pending }

    /// Every wallet this transaction touches, for a wallet's history.
    public var walletIDs: [String] {
        var ids: [String] = []
        func add(_ id: String) { if !id.isEmpty, !ids.contains(id) { ids.append(id) } }
        add(walletID)
        add(counterpartyWalletID)
        for entry in entries { add(entry.walletID) }
        return ids
    }
}

/// A request reduced to (field name, canonical value) pairs, sorted by name.
/// Two requests with the same transaction_id are "the same" when their
/// fingerprints are equal; otherwise the differing names are reported.
public struct RequestFingerprint: Sendable, Equatable {
    public private(set) var fields: [(name: String, value: String)]

    public init(_ fields: [(String, String)]) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }.sorted { $0.name < $1.name }
    }

    /// Byte for byte: Swift's String `==` treats canonically equivalent
    /// text as equal ("é" as one scalar or as "e" plus a combining accent),
    /// but a request that sends other bytes is another request.
    public static func == (lhs: RequestFingerprint, rhs: RequestFingerprint) -> Bool {
        lhs.fields.elementsEqual(rhs.fields) { sameBytes($0.name, $1.name) && sameBytes($0.value, $1.value) }
    }

    /// Names of the fields whose values differ, byte for byte (a field
    /// missing on one side counts as differing). Field names are ASCII.
    public func differingFields(from other: RequestFingerprint) -> [String] {
        var mine: [String: String] = [:]
        for field in fields { mine[field.name] = field.value }
        var theirs: [String: String] = [:]
        for field in other.fields { theirs[field.name] = field.value }
        let names = Set(mine.keys).union(theirs.keys)
        return names.filter { name in
            guard let value = mine[name], let otherValue = theirs[name] else { return true }
            return !Self.sameBytes(value, otherValue)
        }.sorted()
    }

    public static func sameBytes(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.elementsEqual(rhs.utf8)
    }

    /// Two string maps with the same keys and values, byte for byte. A
    /// dictionary holds at most one key of each canonical-equivalence class,
    /// so looking a key up finds the one candidate, whose bytes are then
    /// compared: no copies (this runs per written row on the lane thread).
    public static func sameBytes(_ lhs: [String: String], _ rhs: [String: String]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for (key, value) in lhs {
            guard let index = rhs.index(forKey: key) else { return false }
            let other = rhs[index]
            guard sameBytes(key, other.key), sameBytes(value, other.value) else { return false }
        }
        return true
    }

    /// One line per field: `name=value` with `\`, newline escaped.
    public var encoded: String {
        fields.map { "\($0.name)=\(Self.escape($0.value))" }.joined(separator: "\n")
    }

    public init(encoded: String) {
        if encoded.isEmpty {
            self.init([])
            return
        }
        // Split on bytes, not Characters: a value may begin with a combining
        // mark, which would fuse with a separator into one grapheme.
        let bytes = Array(encoded.utf8)
        let pairs: [(String, String)] = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map
        {
            line in
            guard let equals = line.firstIndex(of: UInt8(ascii: "=")) else {
                return (String(decoding: line, as: UTF8.self), "")
            }
            return (
                String(decoding: line[..<equals], as: UTF8.self),
                Self.unescape(String(decoding: line[(equals + 1)...], as: UTF8.self))
            )
        }
        self.init(pairs)
    }

    static func escape(_ value: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case UInt8(ascii: "\n"): out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case UInt8(ascii: "\r"): out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            default: out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func unescape(_ value: String) -> String {
        var out: [UInt8] = []
        var escaping = false
        for byte in value.utf8 {
            if escaping {
                switch byte {
                case UInt8(ascii: "n"): out.append(UInt8(ascii: "\n"))
                case UInt8(ascii: "r"): out.append(UInt8(ascii: "\r"))
                default: out.append(byte)
                }
                escaping = false
            } else if byte == UInt8(ascii: "\\") {
                escaping = true
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A map as one canonical value: sorted `key=value` joined by `;`, with
    /// `\`, `=` and `;` escaped in keys and values, so that two different maps
    /// never share a value.
    public static func mapValue(_ map: [String: String]) -> String {
        func escaped(_ text: String) -> String {
            var out: [UInt8] = []
            for byte in text.utf8 {
                if byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "=") || byte == UInt8(ascii: ";") {
                    out.append(UInt8(ascii: "\\"))
                }
                out.append(byte)
            }
            return String(decoding: out, as: UTF8.self)
        }
        return map.keys.sorted().map { "\(escaped($0))=\(escaped(map[$0]!))" }.joined(separator: ";")
    }
}

public struct BucketBalance: Sendable, Equatable {
    public var bucket: String
    public var posted: Int64
    public var held: Int64
    public var available: Int64

    public init(bucket: String, posted: Int64, held: Int64, available: Int64) {
        self.bucket = bucket
        self.posted = posted
        self.held = held
        self.available = available
    }
}

public struct Balance: Sendable, Equatable {
    public var walletID: String
    public var asset: String
    public var posted: Int64
    public var held: Int64
    public var available: Int64
    public var buckets: [BucketBalance]

    public init(walletID: String, asset: String, buckets: [BucketBalance]) {
        self.walletID = walletID
        self.asset = asset
        self.buckets = buckets.sorted { $0.bucket < $1.bucket }
        // Totals clamp rather than trap: each bucket is overflow-checked on
        // every posting, and the total is a report. Summed without a ceiling
        // first, so the bucket order (a Set's) cannot change the answer.
        var posted: Int128 = 0
        var held: Int128 = 0
        for bucket in buckets {
            posted += Int128(bucket.posted)
            held += Int128(bucket.held)
        }
        self.posted = Int64(clamping: posted)
        self.held = Int64(clamping: held)
        self.available = Int64(clamping: posted - held)
    }

    /// The ErrorInfo metadata a business rejection carries.
    public var errorMetadata: [String: String] {
        ["posted": String(posted), "held": String(held), "available": String(available)]
    }
}
