import WalletDomain

/// What a worker does after a batch attempt failed with a database error.
/// Pure: decided from the error's class (`FailureClass`) and the attempt's
/// history, so every case is tested without a server. The batch was one
/// database transaction and was rolled back whole, so unless the connection
/// broke around its COMMIT, nothing of it was recorded.
enum BatchRecovery: Equatable {
    /// Run the same commands again at once (a conflict, or a lost
    /// connection: the retry reconnects, and answers UNAVAILABLE at once if
    /// the database is still away).
    case retry
    /// Run each command alone: one command the database refuses must not
    /// fail its neighbours.
    case split
    /// Answer every command of the batch with this.
    case fail(LedgerError)

    /// Attempts of one batch before it gives up (conflicts, lost connections).
    static let attemptsMax = 8

    /// - Parameters:
    ///   - outcomeUnknown: this attempt lost its connection while its COMMIT
    ///     was on its way.
    ///   - possiblyCommitted: an earlier attempt did: from then on every
    ///     caller's answer must come from the ledger (a retry answers it as a
    ///     replay), or be "retry with the same transaction_id", never
    ///     "nothing was recorded".
    ///   - attempts: attempts made so far, this one included.
    static func after(
        _ error: PostgresError, outcomeUnknown: Bool, possiblyCommitted: Bool, attempts: Int, batchSize: Int
    ) -> BatchRecovery {
        let failureClass = error.failureClass
        if outcomeUnknown || possiblyCommitted {
            if attempts <= attemptsMax, failureClass == .conflict || failureClass == .connectionLost {
                return .retry
            }
            return .fail(.storageFailure(error, outcomeUnknown: true))
        }
        switch failureClass {
        case .conflict:
            if attempts <= attemptsMax { return .retry }
            return batchSize > 1 ? .split : .fail(.storageFailure(error))
        case .connectionLost:
            return attempts <= attemptsMax ? .retry : .fail(.storageFailure(error))
        case .unavailable:
            // Every command would meet the same refusal (read-only, disk
            // full): no split, no retry that would only add load.
            return .fail(.storageFailure(error))
        case .permanent:
            return batchSize > 1 ? .split : .fail(.storageFailure(error))
        }
    }
}
