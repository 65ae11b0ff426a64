import Synchronization

/// A stream's end, for a stream that more than one party may end (its
/// handler, or the server shutting down): the first `finish` ends it, the
/// others do nothing.
package final class StreamEnding<Stream: ServerStream>: Sendable {
    private let stream: Stream
    private let ended = Atomic<Bool>(false)

    package init(_ stream: Stream) { self.stream = stream }

    package var hasEnded: Bool { ended.load(ordering: .acquiring) }

    package func finish(_ status: RPCStatus?) {
        guard ended.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return }
        stream.finish(status)
    }
}
