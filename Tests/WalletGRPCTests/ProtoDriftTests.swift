import Foundation
import Testing
import WalletTestSupport

/// The committed protoc-c output must be exactly what scripts/regen-protos
/// produces from Protos/.
@Test func generatedProtobufCodeMatchesProtos() async throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [root.appendingPathComponent("scripts/regen-protos").path, "--check"]
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let (status, text) = try await onOwnThread {
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }
    #expect(status == 0, "generated code drifted:\n\(text)")
}
