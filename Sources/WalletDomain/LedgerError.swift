/// The status classes the service answers with. Transport maps each to a
/// gRPC code in one place (WalletGRPC/StatusMapping.swift).
public enum ErrorCode: String, Sendable, Equatable {
    case invalidArgument
    case notFound
    case alreadyExists
    case failedPrecondition
    case unavailable
    case deadlineExceeded
    case resourceExhausted
    case `internal`
}

/// An expected failure, as a value: a reason the caller can act on.
public struct LedgerError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: ErrorCode
    /// Machine-readable, e.g. `INSUFFICIENT_FUNDS`, `INVALID_AMOUNT`.
    public var reason: String
    /// Human-readable; never SQL, a stack trace or a secret.
    public var message: String
    /// ErrorInfo metadata: `field`, `fields`, `posted`/`held`/`available`.
    public var metadata: [String: String]

    public init(_ code: ErrorCode, _ reason: String, _ message: String, metadata: [String: String] = [:]) {
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata
    }

    public var description: String { "\(code) \(reason): \(message)" }

    public static func invalid(_ field: String, _ message: String) -> LedgerError {
        LedgerError(.invalidArgument, "INVALID_\(field.uppercased())", message, metadata: ["field": field])
    }

    public static func walletNotFound(_ id: String) -> LedgerError {
        LedgerError(.notFound, "WALLET_NOT_FOUND", "wallet \(id) does not exist")
    }

    public static func assetNotFound(_ code: String) -> LedgerError {
        LedgerError(.notFound, "ASSET_NOT_FOUND", "asset \(code) is not defined")
    }

    public static func transactionNotFound(_ id: String) -> LedgerError {
        LedgerError(.notFound, "TRANSACTION_NOT_FOUND", "transaction \(id) does not exist")
    }

    public static func unavailable(_ message: String) -> LedgerError {
        LedgerError(.unavailable, "UNAVAILABLE", message)
    }

    public static func deadlineExceeded() -> LedgerError {
        LedgerError(
            .deadlineExceeded, "DEADLINE_EXCEEDED",
            "the deadline passed before the operation started; nothing was recorded")
    }

    /// No house slot of `asset` that the state holds has room for a
    /// command's amount: the store must give the state a slot with room (lock
    /// the others, or open a new one) and apply the command again. Never the
    /// caller's fault: should it reach a caller, it is UNAVAILABLE, nothing
    /// recorded, and a retry succeeds.
    public static func houseSlotsFull(asset: String) -> LedgerError {
        LedgerError(
            .unavailable, houseSlotsFullReason,
            "no house slot of \(asset) at hand has room for this amount; nothing was recorded, retry",
            metadata: ["asset": asset])
    }

    public static let houseSlotsFullReason = "HOUSE_SLOTS_FULL"

    /// The asset whose house needs a slot with room, when this is `houseSlotsFull`.
    public var houseSlotsFullAsset: String? {
        reason == Self.houseSlotsFullReason ? metadata["asset"] : nil
    }

    public static func internalError(_ message: String) -> LedgerError {
        LedgerError(.internal, "INTERNAL", message)
    }
}

/// Business rejections: final and pinned to their transaction_id.
public enum RejectionReason: String, Sendable, Equatable, CaseIterable {
    case insufficientFunds = "INSUFFICIENT_FUNDS"
    case walletClosed = "WALLET_CLOSED"
    case holdExpired = "HOLD_EXPIRED"
    case alreadySettled = "ALREADY_SETTLED"
    case alreadyRolledBack = "ALREADY_ROLLED_BACK"
    case alreadyReversed = "ALREADY_REVERSED"
    case amountExceedsHold = "AMOUNT_EXCEEDS_HOLD"
    case notRollbackable = "NOT_ROLLBACKABLE"
    case notReversible = "NOT_REVERSIBLE"
    case balanceOverflow = "BALANCE_OVERFLOW"
}
