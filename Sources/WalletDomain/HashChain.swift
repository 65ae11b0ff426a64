/// Each wallet's entries form a chain: an entry's hash covers its canonical
/// content and the previous entry's hash, so rewriting stored history shows.
public enum HashChain {
    public static let genesis = [UInt8](repeating: 0, count: 32)

    /// The canonical content is a versioned, newline-separated text: stable,
    /// easy to reproduce in any language (docs/architecture.md shows it).
    public static func canonicalContent(entry: Entry, transactionID: String) -> [UInt8] {
        Array(
            "v1\n\(entry.walletID)\n\(entry.asset)\n\(entry.bucket)\n\(entry.amount)\n\(entry.sequence)\n\(transactionID)"
                .utf8)
    }

    public static func hash(previous: [UInt8], entry: Entry, transactionID: String) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(previous)
        hasher.update(canonicalContent(entry: entry, transactionID: transactionID))
        return hasher.finalize()
    }
}
