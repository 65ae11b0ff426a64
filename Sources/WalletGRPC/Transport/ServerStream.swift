/// What a streaming handler sees of its call: messages in, messages out, one
/// final status. Implemented by `ServerCall` over the shim and by in-process
/// fakes in tests, so handlers never see the transport.
package protocol ServerStream: Sendable {
    /// The client's next message; nil once it half-closed or the call ended.
    /// At most one read in flight.
    func read() async -> [UInt8]?

    /// Sends one message; false when the call ended first (then stop
    /// sending). At most one send in flight.
    func send(_ message: [UInt8]) async -> Bool

    /// Sends the messages in order and returns how many went out (fewer
    /// when the call ended first). Counts as the one send in flight.
    func send(all messages: [[UInt8]]) async -> Int

    /// Ends the call with OK (`status` nil) or a failure. Exactly once; a
    /// status behind a send still in flight follows it.
    func finish(_ status: RPCStatus?)

    /// Runs `body` once when the call is over for the transport (finished,
    /// cancelled, deadline passed, connection lost, server shut down); at
    /// once when it already is. At most one registration per call.
    func onClose(_ body: @escaping @Sendable () -> Void)
}

extension ServerStream {
    /// One message at a time (a transport may do better: `ServerCall` hands
    /// the lot to the shim, which sends each next one as the last completes).
    package func send(all messages: [[UInt8]]) async -> Int {
        var sent = 0
        for message in messages {
            guard await send(message) else { break }
            sent += 1
        }
        return sent
    }
}
