import CLibPQ

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One libpq connection, used by one thread at a time.
///
/// Every libpq call blocks, so a connection lives on a thread its owner
/// dedicated to it, never on the cooperative pool. The class is deliberately
/// not Sendable: hand it to another thread by transferring it (`sending`),
/// not by sharing it.
///
/// Every statement goes through `consume(_:)`, the one place that turns a
/// PGresult into a `PostgresResult` or a `PostgresError` and clears it.
package final class PostgresConnection {
    /// Bound on how long libpq may wait for a TCP/socket connect, unless the
    /// connection string sets its own `connect_timeout`.
    package static let connectTimeoutSecondsDefault = 10
    /// libpq's protocol limit on parameters per statement.
    package static let parameterCountMax = 65_535
    /// Statements per `pipeline(_:)` call. The pipeline runs in blocking mode,
    /// which can deadlock if the server's replies fill the socket while we are
    /// still sending; statements with small replies stay far below that point.
    package static let pipelineStatementCountMax = 1_000

    /// Holds the password when there is one: only ever passed to libpq.
    private let connectionString: String
    /// The password, only to scrub it out of libpq's messages.
    private let password: String?
    /// host/port/dbname/user, for error descriptions.
    package let target: String
    private var handle: OpaquePointer?
    /// Statements registered with `prepare`, by name.
    private var registeredStatements: [String: String] = [:]
    /// Names prepared on the current server session; emptied on reconnect.
    private var preparedStatements: Set<String> = []
    /// libpq's `connect_timeout` unless the connection string sets one.
    private let connectTimeoutSeconds: Int

    /// Connects with a postgres:// URL or a key=value string.
    ///
    /// A string libpq cannot parse is refused before libpq sees it again:
    /// PQconnectdb's message would quote it, password and all.
    package init(url: String, connectTimeoutSeconds: Int = connectTimeoutSecondsDefault) throws(PostgresError) {
        // libpq treats 1 as 2; 0 would mean "wait forever".
        precondition(connectTimeoutSeconds >= 2, "connect timeout below libpq's minimum of 2 s")
        self.connectTimeoutSeconds = connectTimeoutSeconds
        let options: [(keyword: String, value: String)]
        switch ConnectionString.parse(url) {
        case .success(let parsed): options = parsed
        case .failure(let failure):
            throw PostgresError(kind: .invalidConnectionString, message: failure.description)
        }
        self.connectionString = url
        self.password = options.first { $0.keyword == "password" && !$0.value.isEmpty }?.value
        self.target = ConnectionString.redacted(url)
        try connect()
    }

    deinit {
        // Closing here rather than asserting a prior close(): a connection
        // dropped on an error path must still give its socket back.
        if let handle { PQfinish(handle) }
    }

    // MARK: Connection state

    package var isConnected: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// Whether a transaction is open (idle in one, or failed in one).
    package var isInTransaction: Bool {
        guard let handle else { return false }
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR
    }

    /// Drops the current session (and with it any open transaction, session
    /// locks and prepared statements) and connects again.
    package func reconnect() throws(PostgresError) {
        close()
        try connect()
    }

    package func close() {
        if let handle { PQfinish(handle) }
        handle = nil
        preparedStatements.removeAll()
    }

    private func connect() throws(PostgresError) {
        precondition(handle == nil, "connect() over a live connection")
        // connect_timeout comes first so that the same option in the
        // connection string (expanded from dbname) overrides it.
        let keywords = ["connect_timeout", "dbname"]
        let values = [String(connectTimeoutSeconds), connectionString]
        let newHandle = withCStringArray(keywords) { keywordPointers in
            withCStringArray(values) { valuePointers in
                PQconnectdbParams(keywordPointers, valuePointers, 1)
            }
        }
        guard let newHandle else {
            throw PostgresError(kind: .connection, message: "libpq could not allocate a connection", target: target)
        }
        guard PQstatus(newHandle) == CONNECTION_OK else {
            let message = connectionMessage(newHandle)
            PQfinish(newHandle)
            throw PostgresError(kind: .connection, message: message, target: target)
        }
        // Strings cross into Swift as UTF-8 whatever the server default is.
        guard PQsetClientEncoding(newHandle, "UTF8") == 0 else {
            let message = connectionMessage(newHandle)
            PQfinish(newHandle)
            throw PostgresError(kind: .connection, message: message, target: target)
        }
        PostgresNotices.install(on: newHandle)
        handle = newHandle
        preparedStatements.removeAll()
    }

    /// libpq's message for the connection, trimmed, with the password
    /// scrubbed in case a future libpq ever echoes it.
    private func connectionMessage(_ handle: OpaquePointer) -> String {
        var message = String(cString: PQerrorMessage(handle))
        while message.last?.isWhitespace == true { message.removeLast() }
        if message.isEmpty { message = "connection failed" }
        if let password {
            message = message.replacingAll(password, with: "***")
        }
        return message
    }

    /// The SCRAM-SHA-256 verifier of a password, for `ALTER ROLE … PASSWORD`.
    /// Computed here so that the plaintext never reaches the server, nor its
    /// log should the statement fail.
    package func scramVerifier(password: String, user: String) throws(PostgresError) -> String {
        let handle = try liveHandle()
        guard let verifier = PQencryptPasswordConn(handle, password, user, "scram-sha-256") else {
            throw PostgresError(kind: .unexpectedResult, message: connectionMessage(handle), target: target)
        }
        defer { PQfreemem(verifier) }
        return String(cString: verifier)
    }

    private func liveHandle() throws(PostgresError) -> OpaquePointer {
        guard let handle else {
            throw PostgresError(kind: .connection, message: "connection is closed", target: target)
        }
        return handle
    }

    // MARK: Statements

    /// Runs one statement with text parameters ($1, $2, …); nil is SQL NULL.
    @discardableResult
    package func execute(_ sql: String, _ parameters: [String?] = []) throws(PostgresError) -> PostgresResult {
        let handle = try liveHandle()
        let parameters = parameters.map(PostgresParameter.text)
        try check(parameters)
        let result = withParameters(parameters) { values, lengths, formats in
            PQexecParams(handle, sql, Int32(parameters.count), nil, values, lengths, formats, 0)
        }
        return try consume(result)
    }

    /// Runs a script of several statements separated by semicolons (simple
    /// query protocol, no parameters). Results are discarded.
    package func executeScript(_ sql: String) throws(PostgresError) {
        let handle = try liveHandle()
        _ = try consume(PQexec(handle, sql))
    }

    /// Runs `sql` (simple query protocol, no parameters) and waits at most
    /// `timeoutMilliseconds` for its answer: for a probe, which must notice
    /// a server that stopped answering (frozen, its host gone) instead of
    /// waiting for it. On a timeout the session is closed (its protocol
    /// state is unknown) and a connection error thrown.
    package func query(_ sql: String, timeoutMilliseconds: Int) throws(PostgresError) -> PostgresResult {
        let handle = try liveHandle()
        guard PQsendQuery(handle, sql) == 1 else {
            let error = failure(nil)
            close()
            throw error
        }
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let end = Int64(deadline.tv_sec) * 1000 + Int64(deadline.tv_nsec) / 1_000_000 + Int64(timeoutMilliseconds)
        var answer: PostgresResult?
        var firstError: PostgresError?
        while true {
            while PQisBusy(handle) == 1 {
                var now = timespec()
                clock_gettime(CLOCK_MONOTONIC, &now)
                let left = end - (Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000)
                guard left > 0 else {
                    close()
                    throw PostgresError(
                        kind: .connection, message: "no answer within \(timeoutMilliseconds) ms", target: target)
                }
                var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
                let ready = poll(&descriptor, 1, Int32(min(left, Int64(Int32.max))))
                if ready < 0, errno != EINTR {
                    close()
                    throw PostgresError(kind: .connection, message: "poll failed (errno \(errno))", target: target)
                }
                if ready > 0, PQconsumeInput(handle) != 1 {
                    let error = failure(nil)
                    close()
                    throw error
                }
            }
            guard let result = PQgetResult(handle) else { break }
            do {
                answer = try consume(result)
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
        guard let answer else {
            throw PostgresError(kind: .unexpectedResult, message: "no result", target: target)
        }
        return answer
    }

    /// Registers a statement to be prepared on first use on each session.
    package func prepare(_ name: String, _ sql: String) {
        precondition(!name.isEmpty, "the unnamed statement is not reusable; give it a name")
        if let existing = registeredStatements[name] {
            precondition(existing == sql, "statement \(name) registered twice with different SQL")
            return
        }
        registeredStatements[name] = sql
    }

    /// Every statement registered with `prepare`, by name: for checks that
    /// must cover each one (their plans), including statements added later.
    package var registeredStatementsByName: [String: String] { registeredStatements }

    /// Runs a statement registered with `prepare`, preparing it first if this
    /// session has not seen it.
    @discardableResult
    package func executePrepared(_ name: String, _ parameters: [String?]) throws(PostgresError) -> PostgresResult {
        let handle = try liveHandle()
        let parameters = parameters.map(PostgresParameter.text)
        try check(parameters)
        try ensurePrepared(name, handle)
        let result = withParameters(parameters) { values, lengths, formats in
            PQexecPrepared(handle, name, Int32(parameters.count), values, lengths, formats, 0)
        }
        return try consume(result)
    }

    private func ensurePrepared(_ name: String, _ handle: OpaquePointer) throws(PostgresError) {
        guard let sql = registeredStatements[name] else {
            preconditionFailure("statement \(name) was never registered with prepare(_:_:)")
        }
        if preparedStatements.contains(name) { return }
        _ = try consume(PQprepare(handle, name, sql, 0, nil))
        preparedStatements.insert(name)
    }

    private func check(_ parameters: [PostgresParameter]) throws(PostgresError) {
        precondition(parameters.count <= Self.parameterCountMax, "more than \(Self.parameterCountMax) parameters")
        // Binary values carry their length; only text ends at a NUL.
        for (position, parameter) in parameters.enumerated() {
            guard case .text(let text?) = parameter, text.utf8.contains(0) else { continue }
            throw PostgresError(
                kind: .invalidParameter,
                message: "parameter $\(position + 1) contains a NUL byte, which text parameters cannot carry",
                target: target
            )
        }
    }

    /// The one place a PGresult is inspected: copies it out or builds the
    /// error, and clears it either way.
    private func consume(_ result: OpaquePointer?) throws(PostgresError) -> PostgresResult {
        guard let result else {
            // libpq returns no result only when out of memory or when the
            // connection could not send the query.
            throw failure(nil)
        }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PostgresResult(copying: result)
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR, PGRES_BAD_RESPONSE:
            throw failure(result)
        default:
            let status = String(cString: PQresStatus(PQresultStatus(result)))
            throw PostgresError(kind: .unexpectedResult, message: "unexpected result status \(status)", target: target)
        }
    }

    /// Builds an error from a failed result, or from the connection when
    /// there is no result.
    private func failure(_ result: OpaquePointer?) -> PostgresError {
        func field(_ code: Int32) -> String? {
            guard let result, let value = PQresultErrorField(result, code) else { return nil }
            return String(cString: value)
        }
        let connectionBroken = handle.map { PQstatus($0) == CONNECTION_BAD } ?? true
        let sqlState = field(DiagnosticField.sqlState)
        var message = field(DiagnosticField.messagePrimary)
        if message == nil, let result {
            message = String(cString: PQresultErrorMessage(result))
        }
        if message?.isEmpty ?? true, let handle {
            message = connectionMessage(handle)
        }
        var text = message ?? "unknown error"
        while text.last?.isWhitespace == true { text.removeLast() }
        let kind: PostgresError.Kind =
            if sqlState != nil { .server } else if connectionBroken { .connection } else { .unexpectedResult }
        return PostgresError(
            kind: kind,
            sqlState: sqlState,
            message: text,
            detail: field(DiagnosticField.messageDetail),
            constraint: field(DiagnosticField.constraintName),
            target: target
        )
    }

    // MARK: Transactions

    package enum IsolationLevel: String, Sendable {
        case readCommitted = "READ COMMITTED"
        case repeatableRead = "REPEATABLE READ"
        case serializable = "SERIALIZABLE"
    }

    /// Runs `body` between BEGIN and COMMIT; rolls back and rethrows if
    /// `body` or COMMIT throws. Not reentrant.
    package func transaction<T>(
        isolation: IsolationLevel = .readCommitted,
        _ body: () throws -> T
    ) throws -> T {
        precondition(!isInTransaction, "transaction() inside an open transaction")
        try executeScript("BEGIN ISOLATION LEVEL \(isolation.rawValue)")
        let value: T
        do {
            value = try body()
            // A failed statement the body caught leaves the transaction
            // aborted; COMMIT would then quietly roll back and say so only in
            // its command tag. Refuse instead of reporting success.
            if let handle, PQtransactionStatus(handle) == PQTRANS_INERROR {
                throw PostgresError(
                    kind: .server,
                    sqlState: "25P02",
                    message: "transaction aborted by an earlier error; rolled back",
                    target: target
                )
            }
            let commit = try execute("COMMIT")
            if commit.commandTag == "ROLLBACK" {
                throw PostgresError(kind: .server, sqlState: "25P02", message: "COMMIT rolled back", target: target)
            }
        } catch {
            rollbackQuietly()
            throw error
        }
        return value
    }

    /// Rolls back an open transaction, if any (after a failure, so that the
    /// session is not left in one). Best effort: if the connection is gone
    /// the server has already rolled back, and the original error is the one
    /// worth reporting.
    package func rollbackQuietly() {
        guard isInTransaction else { return }
        _ = try? executeScript("ROLLBACK")
    }

    // MARK: Pipeline

    /// Sends prepared statements in one round trip and returns their results
    /// in order. Outside an explicit transaction they run as one implicit
    /// transaction: if one fails, none take effect and the first error is thrown.
    package func pipeline(_ statements: [(name: String, parameters: [String?])]) throws(PostgresError)
        -> [PostgresResult]
    {
        try pipeline(statements.map { (name: $0.name, parameters: $0.parameters.map { PostgresParameter.text($0) }) })
    }

    /// `pipeline` with parameters that may be in binary format.
    package func pipeline(_ statements: [(name: String, parameters: [PostgresParameter])]) throws(PostgresError)
        -> [PostgresResult]
    {
        precondition(statements.count <= Self.pipelineStatementCountMax, "pipeline longer than the limit")
        if statements.isEmpty { return [] }
        let handle = try liveHandle()
        for statement in statements {
            try check(statement.parameters)
            try ensurePrepared(statement.name, handle)
        }
        guard PQenterPipelineMode(handle) == 1 else {
            throw PostgresError(kind: .unexpectedResult, message: connectionMessage(handle), target: target)
        }
        var sendFailure: PostgresError? = nil
        var sentCount = 0
        for statement in statements {
            let sent = withParameters(statement.parameters) { values, lengths, formats in
                PQsendQueryPrepared(
                    handle, statement.name, Int32(statement.parameters.count), values, lengths, formats, 0)
            }
            guard sent == 1 else {
                sendFailure = failure(nil)
                break
            }
            sentCount += 1
        }
        if sendFailure == nil, PQpipelineSync(handle) != 1 { sendFailure = failure(nil) }
        if let sendFailure {
            // The session's protocol state is unknown; start a fresh one next time.
            close()
            throw sendFailure
        }

        var results: [PostgresResult] = []
        var firstError: PostgresError? = nil
        for _ in 0..<sentCount {
            // Each statement yields one result, then nil.
            var statementResult: OpaquePointer? = PQgetResult(handle)
            while let extra = PQgetResult(handle) { PQclear(extra) }
            if statementResult == nil || PQstatus(handle) == CONNECTION_BAD {
                if let statementResult { PQclear(statementResult) }
                let error = failure(nil)
                close()
                throw firstError ?? error
            }
            if PQresultStatus(statementResult) == PGRES_PIPELINE_ABORTED {
                PQclear(statementResult)
                statementResult = nil
                continue
            }
            do {
                results.append(try consume(statementResult))
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        let sync = PQgetResult(handle)
        let synced = sync.map { PQresultStatus($0) == PGRES_PIPELINE_SYNC } ?? false
        if let sync { PQclear(sync) }
        guard synced, PQexitPipelineMode(handle) == 1 else {
            close()
            throw firstError
                ?? PostgresError(kind: .unexpectedResult, message: "pipeline ended out of step", target: target)
        }
        if let firstError { throw firstError }
        return results
    }
}

// MARK: C strings

/// PG_DIAG_* codes from postgres_ext.h: character-literal macros, which
/// Swift does not import.
private enum DiagnosticField {
    static let sqlState = Int32(UInt8(ascii: "C"))
    static let messagePrimary = Int32(UInt8(ascii: "M"))
    static let messageDetail = Int32(UInt8(ascii: "D"))
    static let constraintName = Int32(UInt8(ascii: "n"))
}

/// Calls `body` with libpq's parameter arrays (values, lengths, formats) for
/// `parameters`: text as NUL-terminated copies (format 0), binary as copies
/// of their bytes with their lengths (format 1). The copies live until
/// `body` returns.
private func withParameters<Result>(
    _ parameters: [PostgresParameter],
    _ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> Result
) -> Result {
    if parameters.isEmpty { return body(nil, nil, nil) }
    var copies: [UnsafeMutablePointer<CChar>?] = []
    var lengths: [Int32] = []
    var formats: [Int32] = []
    copies.reserveCapacity(parameters.count)
    lengths.reserveCapacity(parameters.count)
    formats.reserveCapacity(parameters.count)
    for parameter in parameters {
        switch parameter {
        case .text(let text):
            copies.append(text.map { strdup($0) })
            lengths.append(0)
            formats.append(0)
        case .binary(let bytes):
            let copy = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, bytes.count))
            bytes.withUnsafeBytes { raw in
                if let base = raw.baseAddress {
                    UnsafeMutableRawPointer(copy).copyMemory(from: base, byteCount: bytes.count)
                }
            }
            copies.append(copy)
            lengths.append(Int32(bytes.count))
            formats.append(1)
        }
    }
    defer {
        for (copy, format) in zip(copies, formats) {
            if format == 0 { free(copy) } else { copy?.deallocate() }
        }
    }
    let pointers = copies.map { UnsafePointer($0) }
    return pointers.withUnsafeBufferPointer { values in
        lengths.withUnsafeBufferPointer { lengths in
            formats.withUnsafeBufferPointer { formats in
                body(values.baseAddress, lengths.baseAddress, formats.baseAddress)
            }
        }
    }
}

private func withCStringArray<Result>(
    _ strings: [String],
    _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> Result
) -> Result {
    // libpq's keyword/value arrays end with a null pointer.
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
    defer { for copy in copies { free(copy) } }
    let pointers = copies.map { UnsafePointer($0) }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

extension String {
    /// Plain substring replacement without Foundation.
    fileprivate func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var output = ""
        var remainder = self[...]
        while let range = remainder.firstRange(of: target) {
            output += remainder[..<range.lowerBound]
            output += replacement
            remainder = remainder[range.upperBound...]
        }
        return output + remainder
    }
}
