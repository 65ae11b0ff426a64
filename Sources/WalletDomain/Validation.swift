/// Shape checks for caller-supplied values. They run before anything is
/// looked up, so a malformed request records nothing.
public enum Validate {
    public static func walletID(_ value: String, field: String = "wallet_id", allowReserved: Bool = false)
        throws(LedgerError)
    {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= Limits.walletIDBytesMax else {
            throw .invalid(field, "\(field) must be 1 to \(Limits.walletIDBytesMax) bytes")
        }
        for byte in bytes {
            let ok =
                isAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "@") || byte == UInt8(ascii: "-")
            guard ok else { throw .invalid(field, "\(field) may hold only [A-Za-z0-9._:@-]") }
        }
        if !allowReserved, Reserved.isReserved(value) {
            throw .invalid(
                field, "\(field) may not start with \(Reserved.prefix): system wallets are not operated by callers")
        }
    }

    public static func transactionID(_ value: String, field: String = "transaction_id") throws(LedgerError) {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= Limits.transactionIDBytesMax else {
            throw .invalid(field, "\(field) must be 1 to \(Limits.transactionIDBytesMax) bytes")
        }
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 <= 0x7e }) else {
            throw .invalid(field, "\(field) must be printable ASCII")
        }
        // Every id field: a caller must not name (and so tombstone or reverse)
        // the service's own transactions, such as a hold's expiry.
        if Reserved.isReserved(value) {
            throw .invalid(field, "\(field) may not start with \(Reserved.prefix)")
        }
    }

    public static func assetCode(_ value: String, field: String = "asset") throws(LedgerError) {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= Limits.assetCodeBytesMax,
            bytes.allSatisfy({ isUpper($0) || isDigit($0) || $0 == UInt8(ascii: "_") })
        else {
            throw .invalid(field, "\(field) must be 1 to \(Limits.assetCodeBytesMax) of A-Z 0-9 _")
        }
    }

    public static func bucketName(_ value: String, field: String = "bucket") throws(LedgerError) {
        let bytes = value.utf8
        guard !bytes.isEmpty, bytes.count <= Limits.bucketNameBytesMax,
            bytes.allSatisfy({ isLower($0) || isDigit($0) || $0 == UInt8(ascii: "_") })
        else {
            throw .invalid(field, "\(field) must be 1 to \(Limits.bucketNameBytesMax) of a-z 0-9 _")
        }
    }

    /// Empty means the default bucket.
    public static func bucketOrDefault(_ value: String, field: String = "bucket") throws(LedgerError) -> String {
        if value.isEmpty { return Bucket.cash }
        try bucketName(value, field: field)
        return value
    }

    public static func funding(_ values: [String]) throws(LedgerError) -> [String] {
        if values.isEmpty { return [Bucket.cash] }
        guard values.count <= Limits.fundingBucketsMax else {
            throw .invalid("funding", "funding may name at most \(Limits.fundingBucketsMax) buckets")
        }
        var seen = Set<String>()
        for value in values {
            try bucketName(value, field: "funding")
            guard seen.insert(value).inserted else {
                throw .invalid("funding", "funding names bucket \(value) twice")
            }
        }
        return values
    }

    public static func positiveAmount(_ value: Int64, field: String = "amount") throws(LedgerError) {
        guard value > 0 else { throw .invalid(field, "\(field) must be greater than zero") }
    }

    public static func stringMap(_ map: [String: String], field: String) throws(LedgerError) {
        guard map.count <= Limits.metadataEntriesMax else {
            throw .invalid(field, "\(field) may hold at most \(Limits.metadataEntriesMax) entries")
        }
        for (key, value) in map {
            guard !key.isEmpty, key.utf8.count <= Limits.metadataKeyBytesMax else {
                throw .invalid(field, "\(field) keys must be 1 to \(Limits.metadataKeyBytesMax) bytes")
            }
            guard value.utf8.count <= Limits.metadataValueBytesMax else {
                throw .invalid(field, "\(field) values must be at most \(Limits.metadataValueBytesMax) bytes")
            }
            guard !key.utf8.contains(0), !value.utf8.contains(0) else {
                throw .invalid(field, "\(field) may not contain NUL characters")
            }
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool { isUpper(byte) || isLower(byte) || isDigit(byte) }
    private static func isUpper(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") }
    private static func isLower(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}

public enum Bucket {
    public static let cash = "cash"
}
