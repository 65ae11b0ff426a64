import Logging
import Testing

@testable import WalletObservability

@Suite struct RepeatedMessageLogTests {
    @Test func exactRepeatsAreSummarizedPerLevelAndMessage() throws {
        let sink = CapturedLines()
        let clock = CallLoggingTests.TestClock()
        let logger = Logger(label: "wallet-store") { JSONLinesLogHandler(label: $0, level: .info, sink: sink) }
        let log = RepeatedMessageLog(logger: logger, level: .warning, summaryInterval: .seconds(10), now: { clock.now })
        for _ in 0..<100 { log.log("wallet-db-0: database unreachable: connection refused") }
        log.log("wallet-db-1: database unreachable: connection refused")
        log.log("wallet-db-0: database unreachable: connection refused", level: .error, metadata: ["n": "1"])
        log.log("ignored below the logger's level", level: .debug)
        #expect(try sink.objects.count == 3)
        clock.advance(.seconds(10))
        log.flushSummaries()
        let lines = try sink.objects
        #expect(lines.count == 4)
        let summary = try #require(lines.last)
        #expect(summary["level"] as? String == "warning")
        #expect(summary["repeated"] as? String == "wallet-db-0: database unreachable: connection refused")
        #expect(summary["count"] as? Int == 99)
        #expect(lines[2]["level"] as? String == "error" && lines[2]["n"] as? String == "1")
    }
}
