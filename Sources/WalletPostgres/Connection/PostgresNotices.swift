import CLibPQ
import Synchronization

/// The server's NOTICE and WARNING messages ("relation … already exists,
/// skipping"). libpq prints them to standard error by default, as plain
/// text beside the application's JSON lines; every connection hands them
/// here instead, and the application decides (the server logs them at
/// debug). Nothing set: they are dropped.
public enum PostgresNotices {
    private static let handler = Mutex<(@Sendable (String) -> Void)?>(nil)

    /// Where notices go from now on, for every connection.
    public static func route(to handler: @escaping @Sendable (String) -> Void) {
        Self.handler.withLock { $0 = handler }
    }

    /// Installs the forwarding on a new libpq connection.
    static func install(on connection: OpaquePointer) {
        PQsetNoticeProcessor(
            connection,
            { _, message in
                guard let message, let handler = PostgresNotices.handler.withLock({ $0 }) else { return }
                var text = String(cString: message)
                while text.last?.isWhitespace == true { text.removeLast() }
                handler(text)
            }, nil)
    }
}
