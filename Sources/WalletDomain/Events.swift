/// One change of the ledger as consumers see it: a transaction record
/// written (with the status it was written with) or a record's status
/// changed (with the new status).
public struct LedgerEvent: Sendable, Equatable {
    public var transactionID: String
    public var status: TransactionStatus

    public init(transactionID: String, status: TransactionStatus) {
        self.transactionID = transactionID
        self.status = status
    }
}

/// Where an event sits in the one total order of all events: the position
/// of the batch that committed it, then its index within that batch.
/// Ordered; `origin` is before every event.
public struct EventPosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var batch: Int64
    public var index: Int32

    public init(batch: Int64, index: Int32) {
        self.batch = batch
        self.index = index
    }

    /// Before the first event of the ledger.
    public static let origin = EventPosition(batch: 0, index: -1)

    public static func < (lhs: EventPosition, rhs: EventPosition) -> Bool {
        (lhs.batch, lhs.index) < (rhs.batch, rhs.index)
    }

    public var description: String { "\(batch).\(index)" }
}

/// One event ready to send: its position and the transaction as
/// GetTransaction returned it at that commit (the record with the event's
/// status).
public struct PositionedEvent: Sendable, Equatable {
    public var position: EventPosition
    public var transaction: TransactionRecord

    public init(position: EventPosition, transaction: TransactionRecord) {
        self.position = position
        self.transaction = transaction
    }
}

/// Cursors are positions signed with a server secret shared by every
/// instance of one database, so a cursor the service did not issue (or one
/// of another database) is refused rather than read as a position.
public struct EventCursorCodec: Sendable {
    private let secret: [UInt8]

    public init(secret: [UInt8]) {
        precondition(!secret.isEmpty, "cursor secret must not be empty")
        self.secret = secret
    }

    public func encode(_ position: EventPosition) -> String {
        "\(position.batch).\(position.index).\(hexString(signature(position)))"
    }

    public func decode(_ cursor: String) throws(LedgerError) -> EventPosition {
        let parts = cursor.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count <= 19, parts[1].count <= 10, let batch = Int64(parts[0]),
            let index = Int32(parts[1]), batch >= 0, index >= -1
        else { throw Self.invalid }
        let position = EventPosition(batch: batch, index: index)
        guard String(parts[2]) == hexString(signature(position)) else { throw Self.invalid }
        return position
    }

    private static let invalid = LedgerError(
        .invalidArgument, "INVALID_CURSOR", "after_cursor was not issued by this service",
        metadata: ["field": "after_cursor"])

    /// A keyed hash of the fixed-size position (8 + 4 bytes after the
    /// secret, one SHA-256 block for a 32-byte secret): every event carries
    /// a cursor, so this runs once per event sent. Fixed-size messages make
    /// the secret-prefix construction safe from length extension.
    private func signature(_ position: EventPosition) -> [UInt8] {
        var message = secret
        message.reserveCapacity(secret.count + 13)
        message.append(0x65)  // "e": not a page token's message
        withUnsafeBytes(of: position.batch.bigEndian) { message.append(contentsOf: $0) }
        withUnsafeBytes(of: position.index.bigEndian) { message.append(contentsOf: $0) }
        return Array(SHA256.hash(message).prefix(12))
    }
}

/// Where a WatchEvents stream starts.
public enum EventStart: Sendable, Equatable {
    /// After this position (the origin: every event of the ledger).
    case after(EventPosition)
    /// Only events committed after the call starts.
    case now
}

/// The events of a ledger, in order, for streams that follow it.
public protocol EventSource: Sendable {
    /// Where a stream that asked for `start` begins reading: resolves `.now`
    /// to a starting point (which may carry positions to skip, see
    /// `EventReadState`).
    func begin(_ start: EventStart) async throws(LedgerError) -> EventReadState

    /// The next events after `state` (at most `limit`, only those touching
    /// `walletID` when given), waiting until there are some; nil once the
    /// source is shutting down. Advances `state`.
    func next(after state: inout EventReadState, walletID: String?, limit: Int) async throws(LedgerError)
        -> [PositionedEvent]?
}

/// A stream's place in the order, plus (for `from_now`) the batches that had
/// committed before the call started and are to be skipped though they lie
/// after the starting position.
public struct EventReadState: Sendable, Equatable {
    public var position: EventPosition
    public var skippedBatches: Set<Int64>

    public init(position: EventPosition, skippedBatches: Set<Int64> = []) {
        self.position = position
        self.skippedBatches = skippedBatches
    }
}
