import Foundation
import WalletTestSupport

/// A Python script run as a client: a JSON spec on stdin (a large request
/// would not fit in argv), one JSON object on stdout.
struct PythonScript: @unchecked Sendable {
    // @unchecked: Process and Pipe are used from one thread at a time: the
    // test's, then the waiting thread in `finish`.
    let process: Process
    let output: Pipe

    /// Starts the script and writes `spec` to its stdin, off the test pool
    /// (a large spec waits for Python to start reading).
    static func start(_ script: String, spec: [String: Any]) async throws -> PythonScript {
        let input = try JSONSerialization.data(withJSONObject: spec)
        return try await onOwnThread {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", script]
            let stdin = Pipe()
            let output = Pipe()
            process.standardInput = stdin
            process.standardOutput = output
            try process.run()
            stdin.fileHandleForWriting.write(input)
            try stdin.fileHandleForWriting.close()
            return PythonScript(process: process, output: output)
        }
    }

    /// Waits for the script to exit and returns the object it printed, or an
    /// empty one when it printed nothing.
    func finish() async throws -> [String: Any] {
        let data = try await onOwnThread {
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return data
        }
        let object = try JSONSerialization.jsonObject(with: data.isEmpty ? Data("{}".utf8) : data)
        return object as? [String: Any] ?? [:]
    }
}

/// A test's Python client: its script, started with a spec.
protocol PythonClientScript {
    static var script: String { get }
}

extension PythonClientScript {
    static func start(_ spec: [String: Any]) async throws -> PythonScript {
        try await PythonScript.start(script, spec: spec)
    }

    /// Starts the client and waits for its outcome.
    static func run(_ spec: [String: Any]) async throws -> [String: Any] {
        try await start(spec).finish()
    }
}
