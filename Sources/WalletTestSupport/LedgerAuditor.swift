import WalletDomain

/// Checks the contract's invariants over a whole in-memory ledger. The
/// Postgres `verify` command checks the same list against the database.
public enum LedgerAuditor {
    public static func problems(in state: LedgerState, now: Timestamp) -> [String] {
        var problems: [String] = []
        // Int128: a house spread over many slots holds more than one Int64,
        // and a sum in any order may pass through more before it ends at 0.
        var sums: [BalanceKey: Int128] = [:]
        var perAsset: [String: Int128] = [:]
        var chains: [String: [(Entry, String)]] = [:]
        for record in state.transactions.values {
            if record.status == .rejected, !record.entries.isEmpty {
                problems.append("rejected transaction \(record.id) has entries")
            }
            for entry in record.entries {
                sums[entry.key, default: 0] += Int128(entry.amount)
                perAsset[entry.asset, default: 0] += Int128(entry.amount)
                chains[entry.walletID, default: []].append((entry, record.id))
            }
        }
        for (asset, sum) in perAsset where sum != 0 {
            problems.append("entries of asset \(asset) sum to \(sum), not 0")
        }
        for (key, sum) in sums where Int128(state.posted(key)) != sum {
            problems.append("posted \(state.posted(key)) != sum of entries \(sum) for \(key)")
        }
        for (walletAsset, buckets) in state.postings {
            for (bucket, posted) in buckets {
                let key = BalanceKey(walletID: walletAsset.walletID, asset: walletAsset.asset, bucket: bucket)
                if sums[key, default: 0] != Int128(posted) {
                    problems.append("posted \(posted) has no matching entries for \(key)")
                }
                guard let wallet = state.wallets[key.walletID], !wallet.isSystem else { continue }
                let held = state.held(key, now: now)
                let floor = bucket == Bucket.cash ? -wallet.overdraftLimit : 0
                if posted - held < floor {
                    problems.append("available \(posted - held) below \(floor) for \(key)")
                }
            }
        }
        for (walletID, entries) in chains {
            var previous = HashChain.genesis
            for (index, (entry, transactionID)) in entries.sorted(by: { $0.0.sequence < $1.0.sequence }).enumerated() {
                if entry.sequence != UInt64(index + 1) {
                    problems.append("wallet \(walletID) sequence gap at \(entry.sequence)")
                }
                if HashChain.hash(previous: previous, entry: entry, transactionID: transactionID) != entry.hash {
                    problems.append("wallet \(walletID) hash chain breaks at \(entry.sequence)")
                }
                previous = entry.hash
            }
        }
        return problems
    }
}
