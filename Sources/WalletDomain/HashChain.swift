/// Each wallet's entries form a chain: an entry's hash covers its canonical
/// content and the previous entry's hash, so rewriting stored history shows.
public enum HashChain {
    public static let genesis = [UInt8](repeating: 0, count: 32)

    /// The canonical content is a versioned, newline-separated text: stable,
    /// easy to reproduce in any language (docs/architecture.md shows it):
    /// `v1`, wallet, asset, bucket, amount, sequence, transaction id.
    public static func canonicalContent(entry: Entry, transactionID: String) -> [UInt8] {
        var bytes: [UInt8] = []
        appendCanonicalContent(entry: entry, transactionID: transactionID, to: &bytes)
        return bytes
    }

    public static func hash(previous: [UInt8], entry: Entry, transactionID: String) -> [UInt8] {
        // One buffer, hashed in one pass: this runs for every entry, on the
        // lane thread that is a hot wallet's serial part.
        var message: [UInt8] = []
        message.reserveCapacity(
            previous.count + 48 + entry.walletID.utf8.count + entry.asset.utf8.count + entry.bucket.utf8.count
                + transactionID.utf8.count)
        message.append(contentsOf: previous)
        appendCanonicalContent(entry: entry, transactionID: transactionID, to: &message)
        var hasher = SHA256()
        message.withUnsafeBytes { hasher.update($0) }
        return hasher.finalize()
    }

    private static func appendCanonicalContent(entry: Entry, transactionID: String, to bytes: inout [UInt8]) {
        let newline = UInt8(ascii: "\n")
        bytes.append(UInt8(ascii: "v"))
        bytes.append(UInt8(ascii: "1"))
        bytes.append(newline)
        bytes.append(contentsOf: entry.walletID.utf8)
        bytes.append(newline)
        bytes.append(contentsOf: entry.asset.utf8)
        bytes.append(newline)
        bytes.append(contentsOf: entry.bucket.utf8)
        bytes.append(newline)
        appendDecimal(entry.amount, to: &bytes)
        bytes.append(newline)
        appendDecimal(entry.sequence, to: &bytes)
        bytes.append(newline)
        bytes.append(contentsOf: transactionID.utf8)
    }

    /// The same digits as `"\(value)"`, without making a String.
    static func appendDecimal(_ value: Int64, to bytes: inout [UInt8]) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        appendDecimal(value.magnitude, to: &bytes)
    }

    static func appendDecimal(_ value: UInt64, to bytes: inout [UInt8]) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: UInt64.max has 20 digits
        withUnsafeMutableBytes(of: &digits) { buffer in
            var rest = value
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest > 0
            bytes.append(contentsOf: buffer[start...])
        }
    }
}
