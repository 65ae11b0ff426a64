import Foundation
import Logging
import Testing

@testable import WalletObservability

@Suite struct JSONLinesLogHandlerTests {
    static let fixedTime = LogTimestamp(seconds: 1_733_443_200, microseconds: 123_456)

    func logger(_ sink: CapturedLines, level: Logger.Level = .info, label: String = "test") -> Logger {
        Logger(label: label) { label in
            JSONLinesLogHandler(label: label, level: level, sink: sink, clock: { Self.fixedTime })
        }
    }

    @Test func aLineHasTimeLevelMessageThenSortedMetadataAndTheLoggerLabel() throws {
        let sink = CapturedLines()
        var log = logger(sink, label: "wallet-calls")
        log[metadataKey: "caller"] = "spiffe://casino/game-service"
        log.info("call failed", metadata: ["method": "/wallet.v1.Wallet/Debit", "code": "FAILED_PRECONDITION"])
        #expect(
            sink.texts == [
                #"{"time":"2024-12-06T00:00:00.123456Z","level":"info","message":"call failed","#
                    + #""caller":"spiffe://casino/game-service","code":"FAILED_PRECONDITION","logger":"wallet-calls","#
                    + #""method":"/wallet.v1.Wallet/Debit"}"# + "\n"
            ])
    }

    @Test func levelsBelowTheLoggersAreNotWritten() {
        let sink = CapturedLines()
        let log = logger(sink, level: .warning)
        log.info("quiet")
        log.debug("quieter")
        log.error("loud")
        #expect(sink.texts.count == 1)
        #expect(sink.texts[0].contains(#""level":"error","message":"loud""#))
    }

    /// Every character a caller could put in a header or id stays inside its
    /// string: one object per line, whatever the text.
    @Test(arguments: [
        "plain", "quote \" inside", "back\\slash", "new\nline", "carriage\rreturn", "tab\there",
        "bell\u{07} nul\u{00} esc\u{1B} del\u{7F}", "unicode é ü 漢字 🎰", "\u{2028}line separator",
        #"{"forged":"line"}"# + "\n" + #"{"level":"critical"}"#,
    ])
    func stringsAreEscapedSoTheLineStaysOneJSONObject(text: String) throws {
        let sink = CapturedLines()
        logger(sink).info("\(text)", metadata: ["request_id": "\(text)"])
        let objects = try sink.objects
        #expect(objects.count == 1)
        #expect(objects[0]["message"] as? String == text)
        #expect(objects[0]["request_id"] as? String == text)
    }

    @Test func controlCharactersUseTheirShortOrUnicodeEscapes() {
        var bytes: [UInt8] = []
        JSONLine.appendString("a\n\t\u{01}\u{1F}\"\\", to: &bytes)
        #expect(String(decoding: bytes, as: UTF8.self) == #""a\n\t\u0001\u001f\"\\""#)
    }

    @Test func numbersAndBooleansAreLiteralsAndNestedValuesAreJSON() throws {
        let sink = CapturedLines()
        logger(sink).info(
            "m",
            metadata: [
                "count": .stringConvertible(1_200), "elapsed_ms": .stringConvertible(1.5),
                "streaming": .stringConvertible(true), "list": .array(["a", .stringConvertible(2)]),
                "map": .dictionary(["z": "1", "a": .stringConvertible(false)]),
                "not_finite": .stringConvertible(Double.infinity),
            ])
        let text = sink.texts[0]
        #expect(text.contains(#""count":1200"#))
        #expect(text.contains(#""elapsed_ms":1.5"#))
        #expect(text.contains(#""streaming":true"#))
        #expect(text.contains(#""list":["a",2]"#))
        #expect(text.contains(#""map":{"a":false,"z":"1"}"#))
        #expect(text.contains(#""not_finite":"inf""#))
        #expect(try sink.objects.count == 1)
    }

    @Test func metadataCannotOverwriteTheFixedFields() throws {
        let sink = CapturedLines()
        logger(sink).warning("real", metadata: ["message": "forged", "level": "debug", "time": "never"])
        let object = try #require(try sink.objects.first)
        #expect(object["message"] as? String == "real")
        #expect(object["level"] as? String == "warning")
        #expect(object["time"] as? String == "2024-12-06T00:00:00.123456Z")
    }

    @Test func anErrorIsWrittenAsItsDescription() throws {
        struct Broken: Error, CustomStringConvertible {
            var description: String { "it broke" }
        }
        let sink = CapturedLines()
        logger(sink).log(level: .error, "failed", error: Broken())
        #expect(try sink.objects.first?["error"] as? String == "it broke")
    }

    @Test(arguments: [
        (0, 0, "1970-01-01T00:00:00.000000Z"),
        (1_733_443_200, 123_456, "2024-12-06T00:00:00.123456Z"),
        (951_782_399, 999_999, "2000-02-28T23:59:59.999999Z"),
        (951_868_800, 1, "2000-03-01T00:00:00.000001Z"),
        (4_102_444_800, 0, "2100-01-01T00:00:00.000000Z"),
    ])
    func timestampsAreRFC3339InUTCWithMicroseconds(seconds: Int, microseconds: Int, text: String) {
        #expect(LogTimestamp(seconds: seconds, microseconds: microseconds).text == text)
    }
}
