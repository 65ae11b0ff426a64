import Foundation
import Synchronization
import Testing
import WalletPostgres
import WalletTestSupport

// MARK: - Without a server

@Suite("Connection plumbing without a server")
struct ConnectionEncodingTests {
    @Test(arguments: [
        [UInt8](),
        [0x00],
        [0xde, 0xad, 0xbe, 0xef],
        Array(0...255),
    ])
    func byteaLiteralRoundTrips(bytes: [UInt8]) {
        let literal = PostgresText.byteaLiteral(bytes)
        #expect(literal.hasPrefix("\\x"))
        #expect(PostgresText.bytes(fromByteaText: literal) == bytes)
    }

    @Test func byteaLiteralIsLowercaseHex() {
        #expect(PostgresText.byteaLiteral([0x0a, 0xff]) == "\\x0aff")
        #expect(PostgresText.bytes(fromByteaText: "\\x0AFF") == [0x0a, 0xff])
    }

    @Test(arguments: ["", "0aff", "\\x0", "\\xzz", "\\\\x00"])
    func malformedByteaTextIsRejected(text: String) {
        #expect(PostgresText.bytes(fromByteaText: text) == nil)
    }

    @Test func textArrayLiteralQuotesEverything() {
        #expect(PostgresText.arrayLiteral(["a", nil, "b\"c", "d\\e", ""]) == #"{"a",NULL,"b\"c","d\\e",""}"#)
        #expect(PostgresText.arrayLiteral([String?]()) == "{}")
        #expect(PostgresText.arrayLiteral([Int64.min, 0, Int64.max]) == "{-9223372036854775808,0,9223372036854775807}")
    }

    static let awkwardStrings: [String?] = [
        "plain", "", " leading and trailing ", "comma,inside", "{braces}", "quote\"inside",
        "back\\slash", "\\\"", "NULL", "null", nil, "new\nline", "tab\there", "ünïcødé €", "'single'",
    ]

    @Test func textArrayRoundTripsThroughOwnParser() {
        let literal = PostgresText.arrayLiteral(Self.awkwardStrings)
        #expect(PostgresText.parseArray(literal) == Self.awkwardStrings)
    }

    @Test(arguments: [
        ("{}", [String?]()),
        ("{a,b}", ["a", "b"]),
        ("{NULL,\"NULL\"}", [nil, "NULL"]),
        ("{ a , b }", ["a", "b"]),
        ("{\"a b\",c\\,d}", ["a b", "c,d"]),
        ("{1,-2,3}", ["1", "-2", "3"]),
    ])
    func parsesArrayOutput(text: String, expected: [String?]) {
        #expect(PostgresText.parseArray(text) == expected)
    }

    @Test(arguments: ["", "a,b", "{a,b", "{{1,2},{3,4}}", "[0:1]={a,b}", "{a,}", "{\"a}", "{a}x"])
    func rejectsWhatItCannotParse(text: String) {
        #expect(PostgresText.parseArray(text) == nil)
    }

    @Test(arguments: [
        (
            "postgresql://alice:hunter2secret@db.example.com:6543/wallet?sslmode=require",
            "host=db.example.com port=6543 dbname=wallet user=alice"
        ),
        (
            "host=db.example.com port=6543 dbname=wallet user=alice password=hunter2secret",
            "host=db.example.com port=6543 dbname=wallet user=alice"
        ),
        ("host=/tmp/sock dbname='my db' password='hunter2secret'", "host=/tmp/sock dbname=my db"),
        ("postgresql://alice:hunter2secret@", "user=alice"),
    ])
    func redactionKeepsOnlyWhereNotHow(url: String, expected: String) {
        let redacted = PostgresError.redacted(url: url)
        #expect(redacted == expected)
        #expect(!redacted.contains("hunter2secret"))
    }

    @Test func unparseableConnectionStringIsNotEchoed() {
        let redacted = PostgresError.redacted(url: "host=x password='hunter2secret")
        #expect(!redacted.contains("hunter2secret"))
    }

    /// Strings libpq cannot parse, the pieces of them that must never be
    /// shown, and the reason that is shown instead. libpq's own message
    /// quotes the token or the whole URL (`invalid percent-encoded token:
    /// "s3cr3t%zzPW"`), and a string that does not parse cannot say where
    /// its password is to scrub it.
    static let unparseable: [(url: String, secrets: [String], reason: String)] = [
        ("postgresql://u:s3cr3t%zzPW@127.0.0.1:5432/w", ["s3cr3t"], "invalid percent-encoded token"),
        (
            "postgresql://u:s3cr3tPW@[::1:5432/w", ["s3cr3t"],
            #"end of string reached when looking for matching "]" in IPv6 host address in URI"#
        ),
        ("postgresql://u:s3cr3tPW@[::1]x:5432/w", ["s3cr3t"], "unexpected character …"),
        ("postgresql://u:s3cr3t%00PW@h/w", ["s3cr3t"], "forbidden value %00 in percent-encoded value"),
        ("postgresql://u@h/w?password=%zzs3cr3t", ["s3cr3t"], "invalid percent-encoded token"),
        ("postgresql://u:s3cr3t@h/w?s3cr3tkey", ["s3cr3t"], #"missing key/value separator "=" in URI query parameter"#),
        ("host=x password='s3cr3t", ["s3cr3t"], "unterminated quoted string in connection info string"),
        ("host=x password=s3cr3t zqxtail", ["s3cr3t", "zqxtail"], #"missing "=" after …"#),
        ("host=x password=s3cr3t zqxtail=1", ["s3cr3t", "zqxtail"], "invalid connection option …"),
        // libpq parses these, but reads part of the password as host or port.
        (
            "postgresql://u:s3cr3t@zqxtail@127.0.0.1:1/w", ["s3cr3t", "zqxtail"],
            #"an "@" outside the user name and password (percent-encode "@" as %40 and "/" as %2F in them)"#
        ),
        (
            "postgresql://u:s3cr3t/zqxtail@127.0.0.1:1/w", ["s3cr3t", "zqxtail"],
            #"an "@" outside the user name and password (percent-encode "@" as %40 and "/" as %2F in them)"#
        ),
    ]

    @Test(arguments: [
        "postgresql://u:p%40ss@h/w", "postgresql://h/w?user=a@b", "postgres://u@[::1]:5/w", "host=h password=p@ss/x",
    ])
    func atSignsLibpqReadsRightAreAccepted(url: String) {
        #expect(ConnectionString.options(url) != nil)
    }

    @Test(arguments: unparseable)
    func unparseableConnectionStringIsRefusedWithoutItsText(url: String, secrets: [String], reason: String) {
        let error = #expect(throws: PostgresError.self) { _ = try PostgresConnection(url: url) }
        #expect(error?.kind == .invalidConnectionString)
        #expect(error?.isRetryable == false)
        #expect(error?.message.hasPrefix("cannot parse the database URL: \(reason)") == true)
        let redacted = ConnectionString.redacted(url)
        #expect(redacted == "<unparseable connection string: \(reason)>")
        for secret in secrets {
            #expect(error.map { !"\($0)".contains(secret) } == true)
            #expect(!redacted.contains(secret))
        }
    }

    @Test(arguments: [
        // A translation with other quotation marks is cut at them too.
        (#"jeton invalide : « s3cr3t%zzPW »"#, "jeton invalide", true),
        (#"manque "=" après ‘s3cr3t’"#, #"manque "=" après …"#, true),
        // One without quotation marks that repeats the string shows nothing.
        ("jeton invalide s3cr3t%zzPW", "", true),
        (
            "unterminated quoted string in connection info string",
            "unterminated quoted string in connection info string", false
        ),
    ])
    func parseFailureReasonNeverRepeatsTheString(message: String, reason: String, isWithheld: Bool) {
        let failure = ConnectionString.failure(
            libpqMessage: message, connectionString: "postgresql://u:s3cr3t%zzPW@h/w")
        #expect(failure.reason == reason)
        #expect(failure.isWithheld == isWithheld)
        #expect(!failure.description.contains("s3cr3t"))
    }

    @Test func replacingDatabaseKeepsOtherSettings() throws {
        let rewritten = try #require(
            ConnectionString.replacingDatabase(in: "postgresql://bob:pw@localhost:5433/first", with: "it's")
        )
        let options = try #require(ConnectionString.options(rewritten))
        let byKey = Dictionary(options.map { ($0.keyword, $0.value) }, uniquingKeysWith: { $1 })
        #expect(byKey["dbname"] == "it's")
        #expect(byKey["host"] == "localhost")
        #expect(byKey["port"] == "5433")
        #expect(byKey["user"] == "bob")
        #expect(byKey["password"] == "pw")
    }

    @Test(arguments: [
        ("40001", true, false, false),
        ("40P01", true, false, false),
        ("55P03", true, false, false),
        ("08006", true, true, false),
        ("57P01", true, true, false),
        ("23505", false, false, true),
        ("23503", false, false, false),
        ("42P01", false, false, false),
    ])
    func classifiesSQLStates(sqlState: String, retryable: Bool, connectionFailure: Bool, uniqueViolation: Bool) {
        let error = PostgresError(kind: .server, sqlState: sqlState, message: "x")
        #expect(error.isRetryable == retryable)
        #expect(error.isConnectionFailure == connectionFailure)
        #expect(error.isUniqueViolation == uniqueViolation)
    }

    @Test func longDataDirectoriesGetAShortSocketDirectory() throws {
        let short = try LocalPostgres.socketDirectory(dataDirectory: "/tmp/pg")
        #expect(short == "/tmp/pg/socket")
        let longPath = "/tmp/" + String(repeating: "d", count: 120)
        let hashed = try LocalPostgres.socketDirectory(dataDirectory: longPath)
        #expect(hashed.hasPrefix("/tmp/wallet-pg-"))
        #expect((hashed + "/.s.PGSQL.65535").utf8.count <= 107)
        #expect(try LocalPostgres.socketDirectory(dataDirectory: longPath) == hashed)
    }
}

// MARK: - Against a real server

@Suite("Connection against Postgres")
struct ConnectionTests {
    @Test func executeBindsParametersAndNulls() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        let result = try connection.execute(
            "SELECT $1::text AS name, $2::bigint AS amount, $3::text AS missing, $4::boolean AS flag",
            ["alice", "-9223372036854775808", nil, "true"]
        )
        #expect(result.rowCount == 1)
        #expect(result.columnNames == ["name", "amount", "missing", "flag"])
        #expect(result.string(row: 0, column: "name") == "alice")
        #expect(result.int64(row: 0, column: "amount") == Int64.min)
        #expect(result.isNull(row: 0, column: "missing"))
        #expect(result.string(row: 0, column: 2) == nil)
        #expect(result.bool(row: 0, column: "flag") == true)
        #expect(result.column(named: "absent") == nil)
    }

    @Test func commandTagsReportAffectedRows() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        try connection.executeScript("CREATE TABLE t (id bigint PRIMARY KEY); CREATE TABLE u (id int)")
        let insert = try connection.execute("INSERT INTO t SELECT generate_series(1, 3)")
        #expect(insert.rowsAffected == 3)
        #expect(insert.commandTag == "INSERT 0 3")
        #expect(try connection.execute("DELETE FROM t WHERE id > $1", ["1"]).rowsAffected == 2)
    }

    @Test func byteaRoundTrips() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        let bytes: [UInt8] = Array(0...255) + [0, 0, 0xff]
        let result = try connection.execute(
            "SELECT $1::bytea AS payload, length($1::bytea) AS size", [PostgresText.byteaLiteral(bytes)]
        )
        #expect(result.bytes(row: 0, column: "payload") == bytes)
        #expect(result.int64(row: 0, column: "size") == Int64(bytes.count))
        let empty = try connection.execute("SELECT ''::bytea AS payload")
        #expect(empty.bytes(row: 0, column: "payload") == [])
    }

    @Test func textAndBigintArraysRoundTripThroughUnnest() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        let strings = ConnectionEncodingTests.awkwardStrings
        let numbers: [Int64] = (0..<Int64(strings.count)).map { $0 * 1_000_000_007 - 5 }
        let rows = try connection.execute(
            "SELECT s, n FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS x(s, n, position) ORDER BY position",
            [PostgresText.arrayLiteral(strings), PostgresText.arrayLiteral(numbers)]
        )
        #expect(rows.rowCount == strings.count)
        for row in 0..<rows.rowCount {
            #expect(rows.string(row: row, column: "s") == strings[row])
            #expect(rows.int64(row: row, column: "n") == numbers[row])
        }
        // And back: the server's own array output parses to the same elements.
        let echoed = try connection.execute("SELECT $1::text[] AS a", [PostgresText.arrayLiteral(strings)])
        let text = try #require(echoed.string(row: 0, column: "a"))
        #expect(PostgresText.parseArray(text) == strings)
    }

    /// The binary array parameters the batch writes send: every element type
    /// the store uses, NULLs, empty arrays and extremes come back from
    /// Postgres as sent.
    @Test func binaryArraysRoundTripThroughUnnest() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        connection.prepare(
            "binary_arrays",
            """
            SELECT s, n, i, b, h FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::boolean[], $5::bytea[])
                WITH ORDINALITY AS x(s, n, i, b, h, position) ORDER BY position
            """)
        connection.prepare("binary_empty", "SELECT cardinality($1::text[]) AS c, cardinality($2::bigint[]) AS d")
        let strings = ConnectionEncodingTests.awkwardStrings
        let count = strings.count
        let numbers: [Int64] = (0..<count).map { [Int64.min, Int64.max, 0, -1][$0 % 4] &+ Int64($0 % 3) }
        let integers: [Int32] = (0..<count).map { [Int32.min, Int32.max, 0, -7][$0 % 4] }
        let flags: [Bool] = (0..<count).map { $0 % 3 == 0 }
        let blobs: [[UInt8]] = (0..<count).map { Array(repeating: UInt8(truncatingIfNeeded: $0 * 37), count: $0) }
        let results = try connection.pipeline([
            (
                "binary_arrays",
                [
                    PostgresBinaryArray.text(strings), PostgresBinaryArray.int64(numbers),
                    PostgresBinaryArray.int32(integers), PostgresBinaryArray.bool(flags),
                    PostgresBinaryArray.bytea(blobs),
                ]
            ),
            ("binary_empty", [PostgresBinaryArray.text([String]()), PostgresBinaryArray.int64([])]),
        ])
        let rows = results[0]
        #expect(rows.rowCount == count)
        for row in 0..<rows.rowCount {
            #expect(rows.string(row: row, column: "s") == strings[row])
            #expect(rows.int64(row: row, column: "n") == numbers[row])
            #expect(rows.int64(row: row, column: "i") == Int64(integers[row]))
            #expect(rows.bool(row: row, column: "b") == flags[row])
            #expect(rows.bytes(row: row, column: "h") == blobs[row])
        }
        #expect(results[1].int64(row: 0, column: "c") == 0)
        #expect(results[1].int64(row: 0, column: "d") == 0)
        // An element type the statement does not declare is refused, not converted.
        #expect(throws: PostgresError.self) {
            _ = try connection.pipeline([
                ("binary_empty", [PostgresBinaryArray.int64([1]), PostgresBinaryArray.int64([])])
            ])
        }
    }

    @Test func uniqueViolationIsRecognised() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        try connection.executeScript("CREATE TABLE keys (key text CONSTRAINT keys_pkey PRIMARY KEY)")
        try connection.execute("INSERT INTO keys VALUES ($1)", ["k1"])
        let error = try #require(throws: PostgresError.self) {
            try connection.execute("INSERT INTO keys VALUES ($1)", ["k1"])
        }
        #expect(error.isUniqueViolation)
        #expect(error.sqlState == "23505")
        #expect(error.constraint == "keys_pkey")
        #expect(!error.isRetryable)
        #expect(!error.isConnectionFailure)
        // The connection is still usable after a statement error.
        #expect(try connection.execute("SELECT count(*) FROM keys").int64(row: 0, column: 0) == 1)
    }

    @Test func connectionFailureDescriptionHidesThePassword() throws {
        let password = "s3cret-Passw0rd-xyzzy"
        let url = "postgresql://walletuser:\(password)@127.0.0.1:1/walletdb?connect_timeout=2"
        let error = try #require(throws: PostgresError.self) {
            _ = try PostgresConnection(url: url)
        }
        #expect(error.isConnectionFailure)
        #expect(error.isRetryable)
        #expect(!error.description.contains(password))
        #expect(!error.description.contains(url))
        #expect(!"\(error)".contains(password))
        #expect(error.description.contains("127.0.0.1"))
        #expect(error.description.contains("walletuser"))
    }

    @Test func textParametersCannotCarryNul() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        let error = try #require(throws: PostgresError.self) {
            try connection.execute("SELECT $1::text", ["a\u{0}b"])
        }
        #expect(error.kind == .invalidParameter)
    }

    @Test func preparedStatementsSurviveReconnect() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        connection.prepare("add", "SELECT $1::bigint + $2::bigint AS sum")
        #expect(try connection.executePrepared("add", ["2", "3"]).int64(row: 0, column: "sum") == 5)
        #expect(try connection.executePrepared("add", ["4", "5"]).int64(row: 0, column: "sum") == 9)
        try connection.reconnect()
        #expect(connection.isConnected)
        #expect(try connection.executePrepared("add", ["1", "1"]).int64(row: 0, column: "sum") == 2)
    }

    @Test func terminatedSessionIsAConnectionFailureAndReconnects() throws {
        let url = try TestDatabase.url()
        let victim = try PostgresConnection(url: url)
        let pid = try #require(victim.execute("SELECT pg_backend_pid()").string(row: 0, column: 0))
        let admin = try PostgresConnection(url: url)
        try admin.execute("SELECT pg_terminate_backend($1::int)", [pid])
        let error = try #require(throws: PostgresError.self) {
            try victim.execute("SELECT 1")
        }
        #expect(error.isConnectionFailure)
        #expect(error.isRetryable)
        #expect(!victim.isConnected)
        try victim.reconnect()
        #expect(try victim.execute("SELECT 1").int64(row: 0, column: 0) == 1)
    }

    @Test func transactionCommitsOrRollsBack() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        try connection.executeScript("CREATE TABLE t (id int PRIMARY KEY)")
        let value = try connection.transaction {
            try connection.execute("INSERT INTO t VALUES (1)")
            return 42
        }
        #expect(value == 42)
        #expect(throws: PostgresError.self) {
            try connection.transaction {
                try connection.execute("INSERT INTO t VALUES (2)")
                try connection.execute("INSERT INTO t VALUES (1)")
            }
        }
        #expect(!connection.isInTransaction)
        // A swallowed error must not turn into a silent "successful" commit.
        #expect(throws: PostgresError.self) {
            try connection.transaction(isolation: .serializable) {
                try connection.execute("INSERT INTO t VALUES (3)")
                _ = try? connection.execute("INSERT INTO t VALUES (1)")
            }
        }
        let ids = try connection.execute("SELECT array_agg(id ORDER BY id)::text FROM t")
        #expect(ids.string(row: 0, column: 0) == "{1}")
    }

    @Test func pipelineRunsManyStatementsInOneRoundTrip() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        try connection.executeScript("CREATE TABLE t (id int PRIMARY KEY, label text)")
        connection.prepare("insert", "INSERT INTO t VALUES ($1, $2) RETURNING id")
        connection.prepare("count", "SELECT count(*) FROM t")
        let statements: [(name: String, parameters: [String?])] =
            (1...50).map { ("insert", [String($0), $0 % 2 == 0 ? nil : "odd"]) } + [("count", [])]
        let results = try connection.pipeline(statements)
        #expect(results.count == 51)
        #expect(results[0].int64(row: 0, column: "id") == 1)
        #expect(results[49].int64(row: 0, column: "id") == 50)
        #expect(results[50].int64(row: 0, column: 0) == 50)
        // The connection is back in normal mode.
        #expect(try connection.execute("SELECT count(*) FROM t WHERE label IS NULL").int64(row: 0, column: 0) == 25)
    }

    @Test func failedPipelineAppliesNothing() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        try connection.executeScript("CREATE TABLE t (id int PRIMARY KEY)")
        connection.prepare("insert", "INSERT INTO t VALUES ($1)")
        let error = try #require(throws: PostgresError.self) {
            try connection.pipeline([("insert", ["1"]), ("insert", ["2"]), ("insert", ["1"]), ("insert", ["3"])])
        }
        #expect(error.isUniqueViolation)
        #expect(connection.isConnected)
        #expect(try connection.execute("SELECT count(*) FROM t").int64(row: 0, column: 0) == 0)
        #expect(try connection.pipeline([("insert", ["1"])]).count == 1)
    }

    @Test func localPostgresStartIsIdempotent() throws {
        _ = try TestDatabase.url()  // make sure the shared cluster is up
        guard ProcessInfo.processInfo.environment["DATABASE_URL"] == nil else { return }
        let url = try LocalPostgres.start(
            dataDirectory: TestDatabase.dataDirectory, port: TestDatabase.port, databaseName: "wallet_idempotent"
        )
        let again = try LocalPostgres.start(
            dataDirectory: TestDatabase.dataDirectory, port: TestDatabase.port, databaseName: "wallet_idempotent"
        )
        #expect(url == again)
        let connection = try PostgresConnection(url: url)
        #expect(try connection.execute("SELECT current_database()").string(row: 0, column: 0) == "wallet_idempotent")
        #expect(try connection.execute("SHOW fsync").string(row: 0, column: 0) == "on")
    }
}

@Suite("Local cluster lifecycle")
struct LocalPostgresTests {
    /// initdb, start, stop and restart in a directory of its own (takes a few
    /// seconds: initdb with fsync on).
    @Test func provisionsStopsAndRestartsAFreshCluster() async throws {
        let directory = "/tmp/wallet-pg-lifecycle-\(getpid())-\(UInt16.random(in: 0...UInt16.max))"
        let port = Int.random(in: 56_000..<57_000)
        defer {
            try? LocalPostgres.stop(dataDirectory: directory)
            try? FileManager.default.removeItem(atPath: directory)
        }
        // initdb, start and stop take seconds: they run off the test pool.
        let url = try await onOwnThread {
            try LocalPostgres.start(dataDirectory: directory, port: port, databaseName: "lifecycle db")
        }
        #expect(url.contains("lifecycle%20db"))
        do {
            let connection = try PostgresConnection(url: url)
            try connection.executeScript("CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)")
        }
        // Also reachable over TCP on 127.0.0.1, with the URL's password.
        let options = try #require(ConnectionString.options(url))
        let password = try #require(options.first { $0.keyword == "password" }?.value)
        let socketDirectory = try #require(options.first { $0.keyword == "host" }?.value)
        let tcp = try PostgresConnection(
            url: "host=127.0.0.1 port=\(port) dbname='lifecycle db' user=postgres password=\(password)")
        #expect(try tcp.execute("SHOW fsync").string(row: 0, column: 0) == "on")
        tcp.close()
        // Without it, neither way in lets a client in. (An explicit empty
        // password keeps libpq from taking PGPASSWORD, the passfile that
        // cannot exist from reading ~/.pgpass.)
        for host in ["127.0.0.1", socketDirectory] {
            let error = #expect(throws: PostgresError.self) {
                _ = try PostgresConnection(
                    url: "host='\(host)' port=\(port) dbname=postgres user=postgres password='' passfile=/dev/null/none"
                )
            }
            #expect(error?.message.contains("no password supplied") == true)
        }
        // The password file is the owner's alone; the owner is the user the cluster runs as.
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/superuser.password")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let owner = getuid() == 0 ? try #require(getpwnam("postgres")).pointee.pw_uid : getuid()
        #expect((attributes[.ownerAccountID] as? NSNumber)?.uint32Value == owner)

        try await onOwnThread { try LocalPostgres.stop(dataDirectory: directory) }
        #expect(throws: PostgresError.self) { _ = try PostgresConnection(url: url) }
        try LocalPostgres.stop(dataDirectory: directory)  // stopping twice is fine

        let restarted = try await onOwnThread {
            try LocalPostgres.start(dataDirectory: directory, port: port, databaseName: "lifecycle db")
        }
        #expect(restarted == url)
        let connection = try PostgresConnection(url: restarted)
        #expect(try connection.execute("SELECT id FROM kept").int64(row: 0, column: 0) == 7)

        // Asking for another port while it runs is an error, not a silent mismatch.
        #expect(throws: LocalPostgresError.self) {
            _ = try LocalPostgres.start(dataDirectory: directory, port: port + 1, databaseName: "lifecycle db")
        }
    }
}

// MARK: - Migrator

@Suite("Migrator")
struct MigratorTests {
    static let migrations = [
        Migration(version: 1, name: "accounts", sql: "CREATE TABLE accounts (id bigint PRIMARY KEY);"),
        Migration(
            version: 2, name: "balances",
            sql: """
                ALTER TABLE accounts ADD COLUMN balance bigint NOT NULL DEFAULT 0;
                CREATE INDEX accounts_balance ON accounts (balance);
                """
        ),
    ]

    @Test func applyingTwiceAppliesNothingTheSecondTime() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        #expect(try Migrator.apply(Self.migrations, on: connection) == [1, 2])
        #expect(try Migrator.apply(Self.migrations, on: connection) == [])
        let versions = try connection.execute("SELECT array_agg(version ORDER BY version)::text FROM schema_migrations")
        #expect(versions.string(row: 0, column: 0) == "{1,2}")
    }

    @Test func laterMigrationsApplyOnTopOfEarlierOnes() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        #expect(try Migrator.apply(Array(Self.migrations.prefix(1)), on: connection) == [1])
        #expect(try Migrator.apply(Self.migrations.reversed(), on: connection) == [2])
        try connection.execute("INSERT INTO accounts (id, balance) VALUES (1, 5)")
    }

    @Test func failedMigrationLeavesNoTrace() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        let broken =
            Self.migrations + [
                Migration(version: 3, name: "broken", sql: "CREATE TABLE half (id int); SELECT * FROM no_such_table;")
            ]
        let error = try #require(throws: MigrationError.self) { try Migrator.apply(broken, on: connection) }
        guard case .migrationFailed(let version, let name, let underlying) = error else {
            Issue.record("unexpected \(error)")
            return
        }
        #expect(version == 3 && name == "broken")
        #expect(underlying.sqlState == "42P01")
        let tables = try connection.execute("SELECT to_regclass('half') IS NULL AS gone")
        #expect(tables.bool(row: 0, column: "gone") == true)
        #expect(try Migrator.apply(Self.migrations, on: connection) == [])
    }

    @Test func refusesADatabaseNewerThanTheCode() throws {
        let connection = try PostgresConnection(url: try TestDatabase.url())
        try Migrator.apply(Self.migrations, on: connection)
        try connection.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', now())")
        let error = try #require(throws: MigrationError.self) { try Migrator.apply(Self.migrations, on: connection) }
        guard case .unknownAppliedVersions(let versions, let knownMax) = error else {
            Issue.record("unexpected \(error)")
            return
        }
        #expect(versions == [99] && knownMax == 2)
        #expect(error.description.contains("refusing"))
    }

    @Test func concurrentMigratorsApplyEachMigrationOnce() throws {
        let url = try TestDatabase.url()
        let outcomes = Mutex<[Result<[Int], any Error>]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            let outcome = Result { () throws -> [Int] in
                let connection = try PostgresConnection(url: url)
                return try Migrator.apply(Self.migrations, on: connection)
            }
            outcomes.withLock { $0.append(outcome) }
        }
        let applied = try outcomes.withLock { results in try results.map { try $0.get() } }
        #expect(applied.flatMap { $0 }.sorted() == [1, 2])
    }
}
