/// The scenarios the bench knows. `echo` calls the health check only.
enum Scenario: String, CaseIterable, Sendable {
    case hot, pot, uniform, zipf, mixed, echo
}

/// Names and sizes of one run: wallet and transaction ids carry a random run
/// id, so runs against the same database never collide and the audit can
/// find exactly this run's rows.
struct WorkloadPlan: Sendable {
    /// Every wallet starts with this much (minor units): far more than any
    /// run can spend, so scenarios never hit INSUFFICIENT_FUNDS.
    static let fundingPerWallet: Int64 = 1_000_000_000_000
    static let amountMax: Int64 = 100
    /// Holds outlive any run, so none expires mid-benchmark.
    static let holdExpiryMilliseconds: Int64 = 3_600_000
    static let runIDLength = 6

    let runID: String
    let scenario: Scenario
    /// Players (pot) or wallets (the other scenarios).
    let walletCount: Int
    let asset = "CHIPS"
    let assetDecimalPlaces: UInt32 = 0

    init(scenario: Scenario, walletCount: Int, runID: String = WorkloadPlan.randomRunID()) {
        precondition(walletCount > 0, "a plan needs at least one wallet")
        self.scenario = scenario
        self.walletCount = walletCount
        self.runID = runID
    }

    /// The pot scenario's table pot, after the players.
    var potIndex: Int? { scenario == .pot ? walletCount : nil }
    /// Players, plus the pot when there is one.
    var totalWalletCount: Int { walletCount + (potIndex == nil ? 0 : 1) }

    func walletID(_ index: Int) -> String {
        index == potIndex ? "\(runID).pot" : "\(runID).w\(index)"
    }

    /// Short (at most 15 bytes for runs under 36^8 operations), so Swift
    /// keeps it inline without a heap allocation.
    func transactionID(_ number: Int) -> String {
        "\(runID)-\(String(number, radix: 36))"
    }

    /// The number inside one of this run's transaction ids.
    func transactionNumber(_ transactionID: String) -> Int? {
        let prefix = "\(runID)-"
        guard transactionID.hasPrefix(prefix) else { return nil }
        return Int(transactionID.dropFirst(prefix.count), radix: 36)
    }

    /// SQL LIKE patterns for this run's rows (the run id is [a-z0-9]).
    var transactionIDPattern: String { "\(runID)-%" }
    var walletIDPattern: String { "\(runID).%" }

    static func randomRunID() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<runIDLength).map { _ in alphabet.randomElement(using: &generator)! })
    }
}
