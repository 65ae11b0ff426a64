import Foundation
import WalletDomain

/// How domain records map to rows. Text parameters throughout (libpq text
/// format); arrays for batched writes through `unnest`.
enum RowCoding {
    static let transactionColumns = """
        transaction_id, kind, status, wallet_id, asset, amount, created_at, metadata::text AS metadata, target_id,
        funding, expires_at, reason, counterparty_wallet_id, caller, target_found, request
        """

    static func transaction(_ result: PostgresResult, row: Int) -> TransactionRecord {
        TransactionRecord(
            id: result.string(row: row, column: "transaction_id") ?? "",
            kind: TransactionKind(rawValue: result.string(row: row, column: "kind") ?? "") ?? .tombstone,
            status: TransactionStatus(rawValue: result.string(row: row, column: "status") ?? "") ?? .rejected,
            walletID: result.string(row: row, column: "wallet_id") ?? "",
            asset: result.string(row: row, column: "asset") ?? "",
            amount: result.int64(row: row, column: "amount") ?? 0,
            createdAt: result.int64(row: row, column: "created_at") ?? 0,
            metadata: decodeMap(result.string(row: row, column: "metadata") ?? "{}"),
            targetID: result.string(row: row, column: "target_id") ?? "",
            funding: decodeFunding(result.string(row: row, column: "funding") ?? ""),
            expiresAt: result.int64(row: row, column: "expires_at") ?? 0,
            reason: result.string(row: row, column: "reason") ?? "",
            counterpartyWalletID: result.string(row: row, column: "counterparty_wallet_id") ?? "",
            caller: result.string(row: row, column: "caller") ?? "",
            request: RequestFingerprint(encoded: result.string(row: row, column: "request") ?? ""),
            targetFound: result.bool(row: row, column: "target_found") ?? false)
    }

    static func entry(_ result: PostgresResult, row: Int) -> (transactionID: String, index: Int, entry: Entry) {
        let entry = Entry(
            walletID: result.string(row: row, column: "wallet_id") ?? "",
            asset: result.string(row: row, column: "asset") ?? "",
            bucket: result.string(row: row, column: "bucket") ?? "",
            amount: result.int64(row: row, column: "amount") ?? 0,
            sequence: UInt64(result.int64(row: row, column: "sequence") ?? 0),
            hash: result.bytes(row: row, column: "hash") ?? [])
        return (
            result.string(row: row, column: "transaction_id") ?? "",
            Int(result.int64(row: row, column: "entry_index") ?? 0), entry
        )
    }

    static func wallet(_ result: PostgresResult, row: Int) -> WalletRecord {
        WalletRecord(
            id: result.string(row: row, column: "wallet_id") ?? "",
            overdraftLimit: result.int64(row: row, column: "overdraft_limit") ?? 0,
            labels: decodeMap(result.string(row: row, column: "labels") ?? "{}"),
            createdAt: result.int64(row: row, column: "created_at") ?? 0,
            lastSequence: UInt64(result.int64(row: row, column: "last_sequence") ?? 0),
            lastHash: result.bytes(row: row, column: "last_hash") ?? HashChain.genesis)
    }

    static func encodeFunding(_ parts: [BucketAmount]) -> String {
        parts.map { "\($0.bucket):\($0.amount)" }.joined(separator: ",")
    }

    static func decodeFunding(_ text: String) -> [BucketAmount] {
        guard !text.isEmpty else { return [] }
        return text.split(separator: ",").compactMap { part in
            let pieces = part.split(separator: ":")
            guard pieces.count == 2, let amount = Int64(pieces[1]) else { return nil }
            return BucketAmount(bucket: String(pieces[0]), amount: amount)
        }
    }

    /// A string map as a JSON object (keys sorted, so equal maps are equal text).
    static func encodeMap(_ map: [String: String]) -> String {
        "{" + map.keys.sorted().map { "\(jsonString($0)):\(jsonString(map[$0]!))" }.joined(separator: ",") + "}"
    }

    static func decodeMap(_ text: String) -> [String: String] {
        guard text != "{}", let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        var map: [String: String] = [:]
        for (key, value) in object {
            if let string = value as? String { map[key] = string }
        }
        return map
    }

    static func jsonString(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func microseconds(_ date: Date = Date()) -> Timestamp {
        Timestamp((date.timeIntervalSince1970 * 1_000_000).rounded())
    }
}
