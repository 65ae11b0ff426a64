import Synchronization
import WalletDomain

/// WatchEvents: each stream reads a page of events at a time from the
/// ledger's `EventSource` and sends them one message at a time, waiting for
/// gRPC to take each (HTTP/2 flow control): a consumer that stops reading
/// holds one page in this server's memory, never more.
package final class EventStreams: Sendable {
    /// Open WatchEvents streams at most; more are RESOURCE_EXHAUSTED.
    package static let streamsMax = 256
    /// Events a stream holds at most (one page; see `EventSource.next`).
    package static let pageEventsMax = 512

    private let source: any EventSource
    private let cursors: EventCursorCodec
    private let open = Mutex<(stopping: Bool, next: Int, enders: [Int: @Sendable () -> Void])>((false, 0, [:]))

    package init(source: any EventSource, cursors: EventCursorCodec) {
        self.source = source
        self.cursors = cursors
    }

    package var openStreams: Int { open.withLock { $0.enders.count } }

    /// Ends every open stream with UNAVAILABLE (their consumers resume
    /// elsewhere from their last cursor), and any opened from now on.
    package func stopServing() {
        let enders = open.withLock { open in
            open.stopping = true
            defer { open.enders = [:] }
            return Array(open.enders.values)
        }
        for end in enders { end() }
    }

    /// Serves one call, on a task of its own that the call's end cancels.
    package func start(_ context: CallContext, _ stream: any ServerStream) {
        let task = Task { await self.serve(stream) }
        stream.onClose { task.cancel() }
    }

    package func serve<Stream: ServerStream>(_ stream: Stream) async {
        let ending = StreamEnding(stream)
        guard let bytes = await stream.read() else {
            ending.finish(RPCStatus(code: RPCStatus.invalidArgumentCode, message: "WatchEvents expects one request"))
            return
        }
        let start: EventStart
        let walletID: String?
        do throws(LedgerError) {
            (start, walletID) = try Requests.watchEvents(bytes, cursors: cursors)
        } catch {
            ending.finish(StatusMapping.status(error))
            return
        }
        let shuttingDown = RPCStatus(code: RPCStatus.unavailableCode, message: "the server is shutting down")
        let (id, refusal): (Int?, RPCStatus?) = open.withLock { open in
            if open.stopping { return (nil, shuttingDown) }
            guard open.enders.count < Self.streamsMax else {
                return (
                    nil,
                    RPCStatus(
                        code: RPCStatus.resourceExhaustedCode,
                        message: "more than \(Self.streamsMax) WatchEvents streams are open")
                )
            }
            defer { open.next += 1 }
            open.enders[open.next] = { ending.finish(shuttingDown) }
            return (open.next, nil)
        }
        guard let id else {
            ending.finish(refusal)
            return
        }
        defer { _ = open.withLock { $0.enders.removeValue(forKey: id) } }

        do throws(LedgerError) {
            var state = try await source.begin(start)
            while !ending.hasEnded {
                guard let page = try await source.next(after: &state, walletID: walletID, limit: Self.pageEventsMax)
                else { break }
                // The whole page in one hand-over: the transport sends each
                // next message as the last one is taken (HTTP/2 flow control
                // still paces it), with no round trip through this task.
                let messages = page.map { Responses.event($0, cursor: cursors.encode($0.position)) }
                guard await stream.send(all: messages) == messages.count else {
                    ending.finish(nil)
                    return
                }
            }
            // The source stopped (shutdown) or the client went away.
            ending.finish(shuttingDown)
        } catch {
            ending.finish(StatusMapping.status(error))
        }
    }
}
