import Dispatch
import Foundation
import Synchronization
import Testing
import WalletGRPC
import WalletTestSupport

/// End-to-end tests of the transport: a real GRPCServer on a loopback port,
/// called by Python grpcio as a generic (raw bytes) client.
@Suite(.serialized)
struct TransportTests {
    static let methods = ["/x.Y/Echo", "/x.Y/Fail", "/x.Y/Deadline", "/x.Y/Hold", "/x.Y/Drop"]
    static let failureDetails: [UInt8] = [0x08, 0x09, 0x12, 0x08] + Array("no funds".utf8)

    /// Handlers for `methods`; held calls are parked in `held` for the test.
    static func makeServer(held: HeldCalls = HeldCalls()) throws -> GRPCServer {
        try GRPCServer(listen: "127.0.0.1:0", methods: methods) { methodIndex, request, call in
            switch methods[methodIndex] {
            case "/x.Y/Echo":
                call.respond(.ok(request))
            case "/x.Y/Fail":
                call.respond(
                    .failed(
                        RPCStatus(code: RPCStatus.failedPreconditionCode, message: "no funds", details: failureDetails))
                )
            case "/x.Y/Deadline":
                let answer =
                    if let deadline = call.deadline {
                        String(Int((deadline - .now) / .milliseconds(1)))
                    } else {
                        "none"
                    }
                call.respond(.ok(Array(answer.utf8)))
            case "/x.Y/Hold":
                held.append(call)
            default:
                break  // "/x.Y/Drop": the ServerCall dies unanswered.
            }
        }
    }

    @Test(arguments: [0, 3, 256 * 1024])
    func echoReturnsThePayload(payloadSize: Int) async throws {
        let payload = (0..<payloadSize).map { UInt8(truncatingIfNeeded: $0) }
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        let outcome = try await PythonClient.run([
            "op": "unary", "port": server.port, "method": "/x.Y/Echo", "request": hex(payload),
        ])

        #expect(outcome["code"] as? Int == 0)
        #expect(outcome["response"] as? String == hex(payload))
    }

    @Test func failureCarriesMessageAndStatusDetails() async throws {
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        let outcome = try await PythonClient.run([
            "op": "unary", "port": server.port, "method": "/x.Y/Fail", "request": "",
        ])

        #expect(outcome["code"] as? Int == Int(RPCStatus.failedPreconditionCode))
        #expect(outcome["message"] as? String == "no funds")
        #expect(outcome["details"] as? String == hex(Self.failureDetails))
    }

    @Test func unknownMethodIsUnimplemented() async throws {
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        let outcome = try await PythonClient.run([
            "op": "unary", "port": server.port, "method": "/x.Y/Nope", "request": "00",
        ])

        #expect(outcome["code"] as? Int == Int(RPCStatus.unimplementedCode))
        #expect((outcome["message"] as? String)?.contains("/x.Y/Nope") == true)
    }

    @Test func droppedCallAnswersInternal() async throws {
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        let outcome = try await PythonClient.run([
            "op": "unary", "port": server.port, "method": "/x.Y/Drop", "request": "",
        ])

        #expect(outcome["code"] as? Int == Int(RPCStatus.internalCode))
    }

    @Test func deadlineIsVisibleToTheHandler() async throws {
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        let withDeadline = try await PythonClient.run([
            "op": "unary", "port": server.port, "method": "/x.Y/Deadline", "request": "", "timeout": 5.0,
        ])
        let withoutDeadline = try await PythonClient.run([
            "op": "unary", "port": server.port, "method": "/x.Y/Deadline", "request": "",
        ])

        let remainingMilliseconds = (withDeadline["response"] as? String).flatMap { Int(utf8Hex: $0) }
        #expect(remainingMilliseconds.map { $0 > 3000 && $0 <= 5000 } == true, "\(withDeadline)")
        #expect(withoutDeadline["response"] as? String == hex(Array("none".utf8)))
    }

    @Test func clientCancelIsVisibleToTheHandler() async throws {
        let held = HeldCalls()
        let server = try Self.makeServer(held: held)
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        let client = try await PythonClient.start([
            "op": "cancel", "port": server.port, "method": "/x.Y/Hold", "request": "", "after": 0.3,
        ])
        let calls = try await held.wait(count: 1)
        #expect(!calls[0].isCancelled)
        #expect(calls[0].peer.contains("127.0.0.1"))

        #expect(await waitUntil { calls[0].isCancelled })
        calls[0].respond(.ok([1]))  // Too late; must be harmless.
        let outcome = try await client.finish()
        #expect(outcome["cancelled"] as? Bool == true)
    }

    @Test func shutdownDrainsAnsweredCallsAndCancelsTheRest() async throws {
        let held = HeldCalls()
        let server = try Self.makeServer(held: held)
        let callCount = 4

        let client = try await PythonClient.start([
            "op": "concurrent", "port": server.port, "method": "/x.Y/Hold", "request": "2a", "count": callCount,
            "timeout": 20.0,
        ])
        let calls = try await held.wait(count: callCount)
        // One call is answered while the server drains; the others never are.
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(100)) {
            calls[0].respond(.ok([7]))
        }
        let shutdownDuration = try await onOwnThread {
            ContinuousClock().measure { server.shutdown(drainTimeoutMilliseconds: 500) }
        }

        #expect(shutdownDuration >= .milliseconds(400) && shutdownDuration < .seconds(5))
        for call in calls.dropFirst() {
            #expect(call.isCancelled)
            call.respond(.ok([1]))  // After shutdown: a no-op, not a crash.
        }
        let codes = try await client.finish()["codes"] as? [Int] ?? []
        #expect(
            codes.sorted() == [0] + Array(repeating: Int(RPCStatus.cancelledCode), count: callCount - 1)
                || codes.sorted() == [0] + Array(repeating: Int(RPCStatus.unavailableCode), count: callCount - 1),
            "\(codes)")
    }

    @Test func serverShutsDownWithNoCalls() throws {
        let server = try Self.makeServer()
        server.shutdown(drainTimeoutMilliseconds: 1000)
        server.shutdown(drainTimeoutMilliseconds: 1000)  // Second call returns at once.
    }

    @Test func busyPortIsAnError() throws {
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        #expect(throws: GRPCServerError.self) {
            let second = try GRPCServer(listen: "127.0.0.1:\(server.port)", methods: []) { _, _, _ in }
            second.shutdown(drainTimeoutMilliseconds: 0)
        }
    }

    /// Also the workload for leak checks (see the transport's notes).
    @Test func repeatedCallsAllSucceed() async throws {
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }
        let callCount = Int(ProcessInfo.processInfo.environment["TRANSPORT_REPEAT_CALLS"] ?? "") ?? 2000

        let outcome = try await PythonClient.run([
            "op": "repeat", "port": server.port, "method": "/x.Y/Echo", "count": callCount,
        ])

        #expect(outcome["ok"] as? Int == callCount)
    }
}

/// Calls parked by the "/x.Y/Hold" handler.
final class HeldCalls: Sendable {
    private let calls = Mutex<[ServerCall]>([])

    func append(_ call: ServerCall) {
        calls.withLock { $0.append(call) }
    }

    struct NotArrived: Error {
        var arrived: Int
        var expected: Int
    }

    func wait(count: Int) async throws -> [ServerCall] {
        var snapshot: [ServerCall] = []
        let arrived = await waitUntil {
            snapshot = calls.withLock { $0 }
            return snapshot.count >= count
        }
        guard arrived else { throw NotArrived(arrived: snapshot.count, expected: count) }
        return snapshot
    }
}

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

extension Int {
    /// Parses a decimal number sent as hex-encoded UTF-8.
    fileprivate init?(utf8Hex: String) {
        var bytes: [UInt8] = []
        var index = utf8Hex.startIndex
        while index < utf8Hex.endIndex {
            let next = utf8Hex.index(index, offsetBy: 2)
            guard let byte = UInt8(utf8Hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        self.init(String(decoding: bytes, as: UTF8.self))
    }
}

/// A generic gRPC client in Python grpcio: raw bytes in, JSON outcome out.
enum PythonClient: PythonClientScript {
    static let script = #"""
        import json, sys, time, grpc
        spec = json.loads(sys.stdin.read())
        channel = grpc.insecure_channel("127.0.0.1:%d" % spec["port"])
        method = channel.unary_unary(spec["method"], request_serializer=None, response_deserializer=None)
        request = bytes.fromhex(spec.get("request", ""))
        timeout = spec.get("timeout")

        def failure(error):
            trailers = dict(error.trailing_metadata() or [])
            return {"code": error.code().value[0], "message": error.details() or "",
                    "details": trailers.get("grpc-status-details-bin", b"").hex()}

        op = spec["op"]
        if op == "unary":
            try:
                response = method(request, timeout=timeout)
                outcome = {"code": 0, "response": response.hex()}
            except grpc.RpcError as error:
                outcome = failure(error)
        elif op == "cancel":
            future = method.future(request)
            time.sleep(spec["after"])
            outcome = {"cancelled": future.cancel()}
        elif op == "concurrent":
            futures = [method.future(request, timeout=timeout) for _ in range(spec["count"])]
            codes = []
            for future in futures:
                try:
                    future.result()
                    codes.append(0)
                except grpc.RpcError as error:
                    codes.append(error.code().value[0])
            outcome = {"codes": codes}
        elif op == "repeat":
            ok = 0
            for i in range(spec["count"]):
                payload = i.to_bytes(4, "big")
                if method(payload, timeout=10) == payload:
                    ok += 1
            outcome = {"ok": ok}
        print(json.dumps(outcome))
        """#
}
