/// The schema, as numbered forward-only migrations applied in order at start
/// and by `wallet-server migrate`.
package enum Migrations {
    package static let all: [Migration] = [
        m0001Ledger, m0002EntriesWithoutForeignKey, m0003RefuseTruncate, m0004EntryKeysOnTransactions,
        m0005CallerOnTransactions, m0006HouseSlots, m0007EventBatches,
    ]
}
