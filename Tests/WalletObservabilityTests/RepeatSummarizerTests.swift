import Testing

@testable import WalletObservability

/// The summarizer against an injected clock: times are offsets from one
/// instant, so every interval boundary is exact.
@Suite struct RepeatSummarizerTests {
    typealias Summary = RepeatSummarizer<String>.Summary
    let start = ContinuousClock.now

    func at(_ seconds: Double) -> ContinuousClock.Instant {
        start + .milliseconds(Int64(seconds * 1_000))
    }

    @Test func theFirstOfAKindIsLoggedAndTheRestOfItsIntervalCounted() {
        var summarizer = RepeatSummarizer<String>(interval: .seconds(10))
        #expect(summarizer.record("debit UNAVAILABLE", at: at(0)) == .log(ended: nil))
        // An outage: 1,200 failures a second for ten seconds.
        var suppressed = 0
        for tick in 1..<12_000 {
            if summarizer.record("debit UNAVAILABLE", at: at(Double(tick) / 1_200)) == .suppress { suppressed += 1 }
        }
        #expect(suppressed == 11_999)
        #expect(summarizer.due(at: at(9.999)).isEmpty)
        #expect(
            summarizer.due(at: at(10)) == [Summary(kind: "debit UNAVAILABLE", count: 11_999, interval: .seconds(10))])
        // Summarized once; the kind starts afresh.
        #expect(summarizer.due(at: at(30)).isEmpty)
        #expect(summarizer.record("debit UNAVAILABLE", at: at(31)) == .log(ended: nil))
    }

    @Test func kindsAreSummarizedApart() {
        var summarizer = RepeatSummarizer<String>(interval: .seconds(10))
        #expect(summarizer.record("a", at: at(0)) == .log(ended: nil))
        #expect(summarizer.record("b", at: at(1)) == .log(ended: nil))
        #expect(summarizer.record("a", at: at(2)) == .suppress)
        #expect(summarizer.record("a", at: at(3)) == .suppress)
        #expect(summarizer.record("b", at: at(4)) == .suppress)
        #expect(summarizer.due(at: at(10)) == [Summary(kind: "a", count: 2, interval: .seconds(10))])
        #expect(summarizer.due(at: at(11)) == [Summary(kind: "b", count: 1, interval: .seconds(10))])
    }

    @Test func anIntervalWithoutRepeatsEndsWithoutASummary() {
        var summarizer = RepeatSummarizer<String>(interval: .seconds(10))
        #expect(summarizer.record("a", at: at(0)) == .log(ended: nil))
        #expect(summarizer.due(at: at(10)).isEmpty)
        #expect(summarizer.trackedKinds == 0)
    }

    @Test func anEventAfterItsIntervalEndedBringsTheSummaryFirst() {
        var summarizer = RepeatSummarizer<String>(interval: .seconds(10))
        #expect(summarizer.record("a", at: at(0)) == .log(ended: nil))
        #expect(summarizer.record("a", at: at(5)) == .suppress)
        // `due` has not run since the interval ended at 10 s.
        #expect(summarizer.record("a", at: at(12)) == .log(ended: Summary(kind: "a", count: 1, interval: .seconds(10))))
        // A new interval started at 12 s.
        #expect(summarizer.record("a", at: at(21.9)) == .suppress)
        #expect(summarizer.due(at: at(21.99)).isEmpty)
        #expect(summarizer.due(at: at(22)) == [Summary(kind: "a", count: 1, interval: .seconds(10))])
    }

    @Test func kindsBeyondTheLimitAreLoggedUntracked() {
        var summarizer = RepeatSummarizer<Int>(interval: .seconds(10), kindsMax: 2)
        #expect(summarizer.record(1, at: at(0)) == .log(ended: nil))
        #expect(summarizer.record(2, at: at(0)) == .log(ended: nil))
        #expect(summarizer.record(3, at: at(0)) == .log(ended: nil))
        #expect(summarizer.record(3, at: at(1)) == .log(ended: nil))
        #expect(summarizer.record(1, at: at(1)) == .suppress)
        #expect(summarizer.trackedKinds == 2)
    }
}
