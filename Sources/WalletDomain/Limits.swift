/// Every bound the service enforces, in one place, with its unit in the name.
public enum Limits {
    public static let walletIDBytesMax = 128
    public static let transactionIDBytesMax = 128
    public static let assetCodeBytesMax = 16
    public static let bucketNameBytesMax = 32
    public static let fundingBucketsMax = 16
    public static let metadataEntriesMax = 32
    public static let metadataKeyBytesMax = 64
    public static let metadataValueBytesMax = 512
    public static let reasonBytesMax = 512
    public static let decimalPlacesMax: UInt32 = 18
    public static let holdExpiryDefaultMilliseconds: Int64 = 15 * 60 * 1000
    public static let holdExpiryMaxMilliseconds: Int64 = 7 * 24 * 60 * 60 * 1000
    public static let pageSizeDefault = 50
    public static let pageSizeMax = 1000
    /// House wallets are spread over this many slot wallets per asset, so no
    /// single row serializes every player's transactions.
    public static let houseSlotCount = 16
    /// Slot numbers a house may grow to per asset. A slot holds one Int64
    /// (9.22 units of an asset with 18 decimal places); a slot that has no
    /// room for an amount is passed over for one that has, and when none has
    /// a new one is opened, so the house's total (the sum of its slots) may
    /// exceed Int64. This bounds the search, not any realistic house.
    public static let houseSlotsMax = 1 << 20
}

/// Identifiers the service itself uses start with this prefix; callers may
/// not create wallets or transactions whose ids start with it.
public enum Reserved {
    public static let prefix = "sys:"

    /// The house wallet that takes the other side of `walletID`'s entries:
    /// the given slot, or by default the wallet's own stable slot. A store
    /// may pin the slot per writer (its worker) so that writers never share
    /// a house row; any slot is correct, the house is the sum of its slots.
    public static func houseWalletID(asset: String, forWallet walletID: String, slot: Int? = nil) -> String {
        houseWalletID(asset: asset, slot: slot ?? houseSlot(forWallet: walletID))
    }

    public static func houseWalletID(asset: String, slot: Int) -> String {
        "\(housePrefix(asset: asset))\(slot)"
    }

    /// Every house slot wallet of `asset` starts with this.
    public static func housePrefix(asset: String) -> String {
        "sys:house:\(asset):"
    }

    public static func isHouseWallet(_ id: String) -> Bool { id.hasPrefix("sys:house:") }

    /// The slot number of a house wallet of `asset`, or nil when `id` is not one.
    public static func houseSlot(of id: String, asset: String) -> Int? {
        let prefix = housePrefix(asset: asset)
        guard id.hasPrefix(prefix) else { return nil }
        return Int(id.dropFirst(prefix.count))
    }

    /// A stable slot per player wallet (FNV-1a over the id's bytes).
    public static func houseSlot(forWallet walletID: String) -> Int {
        Int(StableHash.fnv1a(walletID) % UInt64(Limits.houseSlotCount))
    }

    public static func expireTransactionID(holdID: String) -> String {
        "sys:expire:\(holdID)"
    }

    public static func isReserved(_ id: String) -> Bool { id.hasPrefix(prefix) }
}
