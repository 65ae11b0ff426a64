import WalletPostgres

/// Checks the run against the database: the service's own verifier, then
/// every booked answer. Blocking (libpq): run it on a thread you own.
enum LedgerAudit {
    /// Problems listed per kind; the rest are counted.
    static let problemsListedMax = 10

    struct Report: Sendable {
        var problems: [String] = []
        var acknowledgedChecked = 0
        var walletsChecked = 0
        var walletsSkipped = 0
        var ok: Bool { problems.isEmpty }
    }

    static func run(databaseURL: String, workload: Workload) throws -> Report {
        var report = Report()
        report.problems += try LedgerVerifier.verify(databaseURL: databaseURL).map { "verify: \($0)" }

        let plan = workload.plan
        let books = workload.bookkeeping()
        let connection = try PostgresConnection(url: databaseURL)
        defer { connection.close() }
        try connection.executeScript("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        defer { _ = try? connection.executeScript("ROLLBACK") }

        // transaction_id is the primary key, so "at most once" is the
        // schema's; "at least once" and the status are checked here.
        let rows = try connection.execute(
            "SELECT transaction_id, status FROM transactions WHERE transaction_id LIKE $1", [plan.transactionIDPattern])
        var recorded: [Int: String] = [:]
        recorded.reserveCapacity(rows.rowCount)
        var foreign = Problems(title: "recorded under this run's prefix but never sent")
        for row in 0..<rows.rowCount {
            let id = rows.string(row: row, column: 0) ?? ""
            guard let number = plan.transactionNumber(id), number >= 1, number <= workload.numbersIssued else {
                foreign.add(id)
                continue
            }
            recorded[number] = rows.string(row: row, column: 1) ?? ""
        }

        var missing = Problems(title: "acknowledged but not in transactions")
        var wrongStatus = Problems(title: "acknowledged with another outcome (id expected found)")
        for (number, expected) in books.expectedStatuses.sorted(by: { $0.key < $1.key }) {
            report.acknowledgedChecked += 1
            let id = plan.transactionID(number)
            guard let status = recorded[number] else {
                missing.add(id)
                continue
            }
            // A later operation in doubt (a settle or rollback) may or may
            // not have moved this one on.
            if status != expected.rawValue && !books.inDoubt.contains(number) {
                wrongStatus.add("\(id) \(expected.rawValue) \(status)")
            }
        }
        var halfApplied = Problems(title: "answered as not recorded but recorded")
        for number in books.answeredNotRecorded where recorded[number] != nil {
            halfApplied.add(plan.transactionID(number))
        }
        var neverAnswered = Problems(title: "recorded but no answer was booked")
        for number in recorded.keys.sorted()
        where books.expectedStatuses[number] == nil && !books.inDoubt.contains(number)
            && !books.answeredNotRecorded.contains(number)
        {
            neverAnswered.add(plan.transactionID(number))
        }

        // Posted balance = funding + every acknowledged movement, for each
        // wallet no doubtful answer touched.
        let balances = try connection.execute(
            """
            SELECT wallet_id, sum(amount)::bigint FROM entries
            WHERE wallet_id LIKE $1 AND asset = $2 GROUP BY wallet_id
            """, [plan.walletIDPattern, plan.asset])
        var posted: [String: Int64] = [:]
        for row in 0..<balances.rowCount {
            posted[balances.string(row: row, column: 0) ?? ""] = balances.int64(row: row, column: 1) ?? 0
        }
        var wrongBalance = Problems(
            title: "posted balance differs from the acknowledged operations (wallet expected found)")
        for wallet in 0..<plan.totalWalletCount {
            if books.walletsInDoubt.contains(wallet) {
                report.walletsSkipped += 1
                continue
            }
            report.walletsChecked += 1
            let id = plan.walletID(wallet)
            let found = posted[id] ?? 0
            if found != books.expectedPosted[wallet] {
                wrongBalance.add("\(id) \(books.expectedPosted[wallet]) \(found)")
            }
        }

        for problems in [foreign, missing, wrongStatus, halfApplied, neverAnswered, wrongBalance] {
            report.problems += problems.lines
        }
        return report
    }

    /// Up to `problemsListedMax` examples of one kind of problem, then a count.
    private struct Problems {
        let title: String
        var examples: [String] = []
        var count = 0

        mutating func add(_ example: String) {
            count += 1
            if examples.count < LedgerAudit.problemsListedMax { examples.append(example) }
        }

        var lines: [String] {
            guard count > 0 else { return [] }
            return ["\(title): \(count): " + examples.joined(separator: ", ") + (count > examples.count ? ", ..." : "")]
        }
    }
}
