import Foundation
import Synchronization
import Testing
import WalletGRPC
import WalletTestSupport

/// Streaming calls through the real transport: a GRPCServer on a loopback
/// port, called by Python grpcio with raw bytes.
@Suite(.serialized)
struct StreamingTransportTests {
    static let methods = ["/x.S/Echo", "/x.S/Count", "/x.S/FailAfterOne", "/x.S/Park", "/x.Y/Unary"]

    /// What the "/x.S/Park" handler saw, for the test to wait on.
    final class Parked: Sendable {
        let arrived = Atomic<Bool>(false)
        let closed = Atomic<Bool>(false)
        let readEnded = Atomic<Bool>(false)

        var hasArrived: Bool { arrived.load(ordering: .acquiring) }
        var isClosed: Bool { closed.load(ordering: .acquiring) }
        var hasReadEnded: Bool { readEnded.load(ordering: .acquiring) }
    }

    static func makeServer(parked: Parked = Parked()) throws -> GRPCServer {
        let streaming = Set(methods.filter { $0.hasPrefix("/x.S/") })
        return try GRPCServer(listen: "127.0.0.1:0", methods: methods, streamingMethods: streaming) {
            methodIndex, request, call in
            let method = methods[methodIndex]
            if method == "/x.Y/Unary" {
                call.respond(.ok(request))
                return
            }
            #expect(request.isEmpty, "a streaming handler gets its messages by reading")
            if method == "/x.S/Park" {
                // Registered before the handler returns: once `arrived` is
                // set, shutdown must deliver the close before it returns.
                call.onClose { parked.closed.store(true, ordering: .releasing) }
                parked.arrived.store(true, ordering: .releasing)
            }
            Task {
                switch method {
                case "/x.S/Echo":  // bidirectional: each message back, in order
                    while let message = await call.read() {
                        guard await call.send(message) else { break }
                    }
                    call.finish(nil)
                case "/x.S/Count":  // server streaming: N one-byte messages
                    let count = Int(await call.read()?.first ?? 0)
                    for index in 0..<count {
                        guard await call.send([UInt8(index)]) else { break }
                    }
                    call.finish(nil)
                case "/x.S/FailAfterOne":
                    _ = await call.read()
                    _ = await call.send([42])
                    call.finish(RPCStatus(code: RPCStatus.abortedCode, message: "stopped", details: [8, 10]))
                default:  // "/x.S/Park": wait until the call goes away
                    while await call.read() != nil {}
                    parked.readEnded.store(true, ordering: .releasing)
                    call.finish(nil)
                }
            }
        }
    }

    @Test func bidirectionalEchoAnswersEachMessageInOrder() async throws {
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }
        // The empty message must arrive as a message, not as the end.
        let messages = ["01", "", "0203", String(repeating: "ab", count: 100_000)]

        let outcome = try await StreamClient.run([
            "op": "bidi", "port": server.port, "method": "/x.S/Echo", "messages": messages,
        ])

        #expect(outcome["code"] as? Int == 0)
        #expect(outcome["responses"] as? [String] == messages)
    }

    @Test(arguments: [0, 1, 200])
    func serverStreamSendsEveryMessageThenOK(count: Int) async throws {
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        let outcome = try await StreamClient.run([
            "op": "server", "port": server.port, "method": "/x.S/Count", "request": String(format: "%02x", count),
        ])

        #expect(outcome["code"] as? Int == 0)
        #expect(outcome["responses"] as? [String] == (0..<count).map { String(format: "%02x", $0) })
    }

    @Test func failureAfterAMessageCarriesStatusAndDetails() async throws {
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        let outcome = try await StreamClient.run([
            "op": "server", "port": server.port, "method": "/x.S/FailAfterOne", "request": "",
        ])

        #expect(outcome["responses"] as? [String] == ["2a"])
        #expect(outcome["code"] as? Int == Int(RPCStatus.abortedCode))
        #expect(outcome["message"] as? String == "stopped")
        #expect(outcome["details"] as? String == "080a")
    }

    @Test func clientCancelEndsTheReadAndRunsOnClose() async throws {
        let parked = Parked()
        let server = try Self.makeServer(parked: parked)
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        let outcome = try await StreamClient.run([
            "op": "cancel", "port": server.port, "method": "/x.S/Park", "after": 0.3,
        ])

        #expect(outcome["cancelled"] as? Bool == true)
        #expect(await waitUntil { parked.isClosed })
        #expect(await waitUntil { parked.hasReadEnded })
    }

    @Test func shutdownWaitsForAnOpenStreamThenCancelsIt() async throws {
        let parked = Parked()
        let server = try Self.makeServer(parked: parked)
        let client = try await StreamClient.start(["op": "open", "port": server.port, "method": "/x.S/Park"])
        // The client's stream is open once the server's handler has it.
        #expect(await waitUntil { parked.hasArrived })

        let shutdownDuration = try await onOwnThread {
            ContinuousClock().measure { server.shutdown(drainTimeoutMilliseconds: 300) }
        }

        #expect(shutdownDuration >= .milliseconds(250) && shutdownDuration < .seconds(5))
        #expect(parked.isClosed)
        #expect(await waitUntil { parked.hasReadEnded })
        let code = try await client.finish()["code"] as? Int
        #expect(
            code == Int(RPCStatus.cancelledCode) || code == Int(RPCStatus.unavailableCode),
            "\(String(describing: code))")
    }

    @Test func unaryAndStreamingMethodsShareAServer() async throws {
        let server = try Self.makeServer()
        defer { server.shutdown(drainTimeoutMilliseconds: 1000) }

        let unary = try await StreamClient.run([
            "op": "unary", "port": server.port, "method": "/x.Y/Unary", "request": "0708",
        ])
        let repeated = try await StreamClient.run([
            "op": "repeat", "port": server.port, "method": "/x.S/Echo", "count": 300,
        ])

        #expect(unary["responses"] as? [String] == ["0708"])
        #expect(repeated["ok"] as? Int == 300)
    }
}

/// A generic streaming gRPC client in Python grpcio: hex in, JSON out.
enum StreamClient: PythonClientScript {
    static let script = #"""
        import json, sys, time, grpc
        spec = json.loads(sys.stdin.read())
        channel = grpc.insecure_channel("127.0.0.1:%d" % spec["port"])
        op, method = spec["op"], spec["method"]

        def finished(responses, error=None):
            if error is None:
                return {"code": 0, "responses": responses}
            trailers = dict(error.trailing_metadata() or [])
            return {"code": error.code().value[0], "message": error.details() or "", "responses": responses,
                    "details": trailers.get("grpc-status-details-bin", b"").hex()}

        def collect(call):
            responses = []
            try:
                for response in call:
                    responses.append(response.hex())
                return finished(responses)
            except grpc.RpcError as error:
                return finished(responses, error)

        if op == "bidi":
            call = channel.stream_stream(method)(iter(bytes.fromhex(m) for m in spec["messages"]), timeout=10)
            outcome = collect(call)
        elif op == "server":
            outcome = collect(channel.unary_stream(method)(bytes.fromhex(spec["request"]), timeout=10))
        elif op == "unary":
            outcome = {"responses": [channel.unary_unary(method)(bytes.fromhex(spec["request"]), timeout=10).hex()]}
        elif op == "cancel":
            def silent():
                time.sleep(15)
                yield b""
            call = channel.stream_stream(method)(silent())
            time.sleep(spec["after"])
            outcome = {"cancelled": call.cancel()}
        elif op == "open":
            def silent():
                time.sleep(15)
                yield b""
            outcome = collect(channel.stream_stream(method)(silent(), timeout=30))
        elif op == "repeat":
            echo = channel.stream_stream(method)
            ok = 0
            for i in range(spec["count"]):
                payload = [i.to_bytes(4, "big"), b"x"]
                if list(echo(iter(payload), timeout=10)) == payload:
                    ok += 1
            outcome = {"ok": ok}
        print(json.dumps(outcome))
        sys.stdout.flush()
        """#
}
