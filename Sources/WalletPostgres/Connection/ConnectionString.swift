import CLibPQ

/// Reads libpq connection strings (postgres:// URLs and key=value strings)
/// with libpq's own parser, so redaction and rewriting agree with what
/// PQconnectdb will actually use.
package enum ConnectionString {
    /// Why libpq cannot parse a connection string, told without its text.
    ///
    /// libpq's own message quotes the offending token or the whole string
    /// (`invalid percent-encoded token: "s3cr3t%zzPW"`), and a string that
    /// does not parse cannot say where its password is to scrub it; so only
    /// libpq's words before that quotation are kept.
    package struct ParseFailure: Error, CustomStringConvertible, Sendable, Equatable {
        /// libpq's reason, cut before the first quoted text; empty when
        /// nothing of it could be shown.
        package let reason: String
        /// Whether something libpq said was dropped.
        package let isWithheld: Bool

        package var description: String {
            var text = "cannot parse the database URL"
            if !reason.isEmpty { text += ": " + reason }
            if isWithheld { text += " (the text libpq quoted is withheld: it may hold the password)" }
            return text
        }
    }

    /// The longest run of characters a shown reason may share with the
    /// connection string; a reason sharing a longer one is dropped (a safety
    /// net, should libpq ever quote the string without marks the cut knows).
    static let sharedRunLengthMax = 7
    /// Quotations that are libpq's own text, not a piece of the input:
    /// `missing "=" after …`, `… matching "]" in IPv6 host address`,
    /// `(expected ":" or "/")`.
    static let libpqLiterals = ["\"=\"", "\"]\"", "\":\"", "\"/\""]
    /// ASCII quotes and those a translated libpq message might use.
    static let quotationMarks: Set<Character> = [
        "\"", "'", "`", "\u{201C}", "\u{201D}", "\u{201E}", "\u{00AB}", "\u{00BB}", "\u{2018}", "\u{2019}",
        "\u{201A}", "\u{2039}", "\u{203A}", "\u{300C}", "\u{300D}",
    ]

    /// The options a connection string sets, in libpq's keyword order, or why
    /// libpq cannot parse it. Contains the password if there is one: never
    /// log the options.
    package static func parse(
        _ connectionString: String
    ) -> Result<[(keyword: String, value: String)], ParseFailure> {
        var errorMessage: UnsafeMutablePointer<CChar>? = nil
        guard let parsed = PQconninfoParse(connectionString, &errorMessage) else {
            var message = ""
            if let errorMessage {
                message = String(cString: errorMessage)
                PQfreemem(errorMessage)
            }
            return .failure(failure(libpqMessage: message, connectionString: connectionString))
        }
        defer { PQconninfoFree(parsed) }
        if hasStrayAtSign(connectionString) {
            return .failure(ParseFailure(reason: strayAtSignReason, isWithheld: false))
        }
        var result: [(keyword: String, value: String)] = []
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                result.append((String(cString: keyword), String(cString: value)))
            }
            option += 1
        }
        return .success(result)
    }

    /// The options a connection string sets, or nil when libpq cannot parse
    /// it. Contains the password if there is one: never log the result.
    package static func options(_ connectionString: String) -> [(keyword: String, value: String)]? {
        try? parse(connectionString).get()
    }

    /// "host=… port=… dbname=… user=…" for log lines and error descriptions;
    /// for a string libpq cannot parse, only why.
    package static func redacted(_ connectionString: String) -> String {
        let options: [(keyword: String, value: String)]
        switch parse(connectionString) {
        case .success(let parsed): options = parsed
        case .failure(let failure):
            return failure.reason.isEmpty
                ? "<unparseable connection string>" : "<unparseable connection string: \(failure.reason)>"
        }
        let shown = ["host", "hostaddr", "port", "dbname", "user"]
        let parts = shown.compactMap { key -> String? in
            guard let value = options.first(where: { $0.keyword == key })?.value, !value.isEmpty else {
                return nil
            }
            return "\(key)=\(value)"
        }
        return parts.isEmpty ? "<defaults>" : parts.joined(separator: " ")
    }

    /// The same connection settings aimed at another database, as a key=value
    /// string (the input may be either form). Nil when libpq cannot parse the input.
    package static func replacingDatabase(in connectionString: String, with databaseName: String) -> String? {
        guard var options = options(connectionString) else { return nil }
        options.removeAll { $0.keyword == "dbname" }
        options.append(("dbname", databaseName))
        return options.map { "\($0.keyword)=\(quoted($0.value))" }.joined(separator: " ")
    }

    /// key=value quoting: single quotes, with `\` and `'` backslash-escaped.
    private static func quoted(_ value: String) -> String {
        var text = "'"
        for character in value {
            if character == "\\" || character == "'" { text.append("\\") }
            text.append(character)
        }
        return text + "'"
    }

    static let strayAtSignReason =
        #"an "@" outside the user name and password (percent-encode "@" as %40 and "/" as %2F in them)"#

    /// Whether a URI has an "@" that libpq does not take as the end of the
    /// user name and password. libpq parses it, but reads part of the
    /// password as host, port or database (`u:p@ss@h` has host "ss@h",
    /// `u:pa/ss@h/db` port "pa"), and its errors then show that part.
    /// A database name with an "@" must be written %40.
    static func hasStrayAtSign(_ connectionString: String) -> Bool {
        guard connectionString.hasPrefix("postgresql://") || connectionString.hasPrefix("postgres://"),
            let schemeEnd = connectionString.range(of: "://")
        else { return false }
        var rest = connectionString[schemeEnd.upperBound...]
        if let query = rest.firstIndex(of: "?") { rest = rest[..<query] }
        // libpq ends the user name and password at the first "@" before any "/".
        if let at = rest.firstIndex(of: "@"), !rest[..<at].contains("/") { rest = rest[rest.index(after: at)...] }
        return rest.contains("@")
    }

    /// libpq's first line up to the first quotation mark that does not open
    /// one of its literals. Everything libpq quotes from the input (a token,
    /// a character, the whole URI) comes after such a mark, whatever the
    /// input holds, so the cut never depends on the input's text.
    package static func failure(libpqMessage: String, connectionString: String) -> ParseFailure {
        let lines = libpqMessage.split(separator: "\n", omittingEmptySubsequences: true)
        var kept = ""
        var isCut = false
        var rest = lines.first ?? ""
        scan: while let character = rest.first {
            if quotationMarks.contains(character) {
                guard let literal = libpqLiterals.first(where: { rest.hasPrefix($0) }) else {
                    isCut = true
                    break scan
                }
                kept += literal
                rest = rest.dropFirst(literal.count)
                continue
            }
            kept.append(character)
            rest = rest.dropFirst()
        }
        while kept.last?.isWhitespace == true { kept.removeLast() }
        if kept.last == ":" {
            // "reason: <quotation>": the reason is whole.
            while kept.last == ":" || kept.last?.isWhitespace == true { kept.removeLast() }
        } else if isCut, !kept.isEmpty {
            // Cut mid-sentence ("missing "=" after <quotation> in …").
            kept += " …"
        }
        let isWithheld = isCut || lines.count > 1
        if sharesRun(kept, with: connectionString) {
            return ParseFailure(reason: "", isWithheld: true)
        }
        return ParseFailure(reason: kept, isWithheld: isWithheld)
    }

    /// Whether `text` holds a run of more than `sharedRunLengthMax`
    /// characters that also occurs in `source`.
    static func sharesRun(_ text: String, with source: String) -> Bool {
        let characters = Array(text)
        let length = sharedRunLengthMax + 1
        guard characters.count >= length else { return false }
        for start in 0...(characters.count - length) where source.contains(String(characters[start..<start + length])) {
            return true
        }
        return false
    }
}
