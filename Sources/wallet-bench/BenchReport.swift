/// The numbers of one run, printed for people and, last, as one JSON line.
struct BenchReport: Sendable {
    let options: BenchOptions
    let runID: String?
    let walletCount: Int
    let result: LoadRunner.Result
    let bookkeeping: WorkloadBookkeeping?
    let audit: LedgerAudit.Report?

    var throughput: Double { Double(result.totals.succeeded) / max(result.elapsedSeconds, 1e-9) }
    var errorCount: Int { result.totals.failed }
    var verifyOK: Bool? { audit?.ok }
    var ok: Bool {
        errorCount == 0 && result.totals.unexpected == 0 && result.unsent == 0 && result.totals.succeeded > 0
            && verifyOK != false
    }

    private func milliseconds(_ quantile: Double) -> Double {
        Double(result.totals.histogram.value(atQuantile: quantile)) / 1e6
    }

    var text: String {
        let totals = result.totals
        let histogram = totals.histogram
        let loop =
            options.rate.map { "open loop at \(format($0, 0)) calls/s, at most \(options.concurrency) in flight" }
            ?? "closed loop, \(options.concurrency) callers"
        var lines = [
            "wallet-bench: scenario \(options.scenario.rawValue), \(loop), \(options.connections) connections, "
                + "\(format(options.durationSeconds, 1)) s"
                + (runID.map { ", run \($0), \(walletCount) wallets" } ?? ""),
            "calls: \(totals.succeeded) ok, \(totals.failed) failed in \(format(result.elapsedSeconds, 2)) s: "
                + "\(format(throughput, 1)) ops/s",
            "latency ms (ok calls): p50 \(format(milliseconds(0.5), 3))  p90 \(format(milliseconds(0.9), 3))  "
                + "p99 \(format(milliseconds(0.99), 3))  p99.9 \(format(milliseconds(0.999), 3))  "
                + "max \(format(Double(histogram.maximumNanoseconds) / 1e6, 3))  mean \(format(histogram.meanNanoseconds / 1e6, 3))",
        ]
        if options.timeline {
            let pacer = result.pacerLateness
            lines.append(
                "timeline (completions per 0.25 s, slowest call of each slice"
                    + (pacer.isEmpty && result.pacerBehind.isEmpty
                        ? "" : ", the open-loop pacer's worst late wake-up and worst send delay") + "):")
            for slice in (totals.slices.keys.min() ?? 0)...(totals.slices.keys.max() ?? 0) {
                let (count, slowest) = totals.slices[slice] ?? (0, 0)
                let from = Double(slice) * Double(LoadRecorder.sliceNanoseconds) / 1e9
                var late = pacer[slice].map { ", pacer late \(format(Double($0) / 1e6, 1)) ms" } ?? ""
                if let behind = result.pacerBehind[slice] {
                    late += ", sent up to \(format(Double(behind) / 1e6, 1)) ms behind"
                }
                lines.append(
                    "  \(format(from, 2)) s: \(count) calls, slowest \(format(Double(slowest) / 1e6, 1)) ms\(late)")
            }
        }
        if totals.errors.isEmpty {
            lines.append("errors: none")
        } else {
            lines.append("errors:")
            for (key, count) in totals.errors.sorted(by: { $0.value > $1.value }) { lines.append("  \(key): \(count)") }
        }
        if result.unsent > 0 { lines.append("unsent (no idle caller before the end): \(result.unsent)") }
        if let books = bookkeeping, options.scenario == .mixed {
            lines.append(
                "retries: \(books.retriesMatched) answered as the original, \(books.retriesMismatched) not, "
                    + "\(books.retriesInDoubt) in doubt")
        }
        if let books = bookkeeping, !books.inDoubt.isEmpty {
            lines.append(
                "in doubt (lost answers): \(books.inDoubt.count) transactions, \(books.walletsInDoubt.count) wallets")
        }
        if let audit {
            if audit.ok {
                lines.append(
                    "audit: ok (verify clean, \(audit.acknowledgedChecked) acknowledged transactions found as answered, "
                        + "\(audit.walletsChecked) wallet balances match, \(audit.walletsSkipped) skipped)")
            } else {
                lines.append("audit: FAILED")
                for problem in audit.problems { lines.append("  \(problem)") }
            }
        } else if options.scenario != .echo {
            lines.append("audit: skipped (no --database-url)")
        }
        lines.append(ok ? "result: ok" : "result: FAILED")
        return lines.joined(separator: "\n")
    }

    var json: String {
        let totals = result.totals
        var fields: [(String, String)] = [
            ("scenario", quoted(options.scenario.rawValue)),
            ("mode", quoted(options.rate == nil ? "closed" : "open")),
            ("concurrency", "\(options.concurrency)"),
            ("connections", "\(options.connections)"),
            ("duration_s", format(options.durationSeconds, 3)),
            ("rate", options.rate.map { format($0, 1) } ?? "null"),
            ("wallets", "\(walletCount)"),
            ("run_id", runID.map(quoted) ?? "null"),
            ("calls", "\(totals.succeeded + totals.failed)"),
            ("elapsed_s", format(result.elapsedSeconds, 3)),
            ("throughput", format(throughput, 1)),
            ("p50_ms", format(milliseconds(0.5), 3)),
            ("p90_ms", format(milliseconds(0.9), 3)),
            ("p99_ms", format(milliseconds(0.99), 3)),
            ("p999_ms", format(milliseconds(0.999), 3)),
            ("max_ms", format(Double(totals.histogram.maximumNanoseconds) / 1e6, 3)),
            ("mean_ms", format(totals.histogram.meanNanoseconds / 1e6, 3)),
            ("errors", "\(totals.failed)"),
            (
                "errors_by_code",
                "{"
                    + totals.errors.sorted { $0.key < $1.key }.map { "\(quoted($0.key)):\($0.value)" }.joined(
                        separator: ",")
                    + "}"
            ),
            ("unexpected", "\(totals.unexpected)"),
            ("unsent", "\(result.unsent)"),
        ]
        if let books = bookkeeping {
            fields += [
                ("retries_matched", "\(books.retriesMatched)"), ("retries_mismatched", "\(books.retriesMismatched)"),
                ("in_doubt", "\(books.inDoubt.count)"),
            ]
        }
        fields += [
            ("verify_ok", verifyOK.map { $0 ? "true" : "false" } ?? "null"),
            ("verify_problems", audit.map { "\($0.problems.count)" } ?? "null"),
            ("ok", ok ? "true" : "false"),
        ]
        return "{" + fields.map { "\(quoted($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }
}

/// Fixed-point text without Foundation; JSON-safe (no NaN or infinity).
func format(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return "0" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    guard scaled < 9e15 else { return "\(value)" }
    let whole = Int64(scaled) / Int64(scale)
    let fraction = Int64(scaled) % Int64(scale)
    var text = "\(value < 0 && scaled > 0 ? "-" : "")\(whole)"
    if decimals > 0 {
        let digits = String(fraction)
        text += "." + String(repeating: "0", count: decimals - digits.count) + digits
    }
    return text
}

/// A JSON string literal.
func quoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}
