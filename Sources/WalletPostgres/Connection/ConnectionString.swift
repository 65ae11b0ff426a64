import CLibPQ

/// Reads libpq connection strings (postgres:// URLs and key=value strings)
/// with libpq's own parser, so redaction and rewriting agree with what
/// PQconnectdb will actually use.
package enum ConnectionString {
    /// The options a connection string sets, in libpq's keyword order, or nil
    /// when libpq cannot parse it. Contains the password if there is one:
    /// never log the result.
    package static func options(_ connectionString: String) -> [(keyword: String, value: String)]? {
        var errorMessage: UnsafeMutablePointer<CChar>? = nil
        guard let parsed = PQconninfoParse(connectionString, &errorMessage) else {
            // The message may quote the string back; drop it.
            if let errorMessage { PQfreemem(errorMessage) }
            return nil
        }
        defer { PQconninfoFree(parsed) }
        var result: [(keyword: String, value: String)] = []
        var option = parsed
        while let keyword = option.pointee.keyword {
            if let value = option.pointee.val {
                result.append((String(cString: keyword), String(cString: value)))
            }
            option += 1
        }
        return result
    }

    /// "host=… port=… dbname=… user=…" for log lines and error descriptions.
    package static func redacted(_ connectionString: String) -> String {
        guard let options = options(connectionString) else { return "<unparseable connection string>" }
        let shown = ["host", "hostaddr", "port", "dbname", "user"]
        let parts = shown.compactMap { key -> String? in
            guard let value = options.first(where: { $0.keyword == key })?.value, !value.isEmpty else {
                return nil
            }
            return "\(key)=\(value)"
        }
        return parts.isEmpty ? "<defaults>" : parts.joined(separator: " ")
    }

    /// The password in a connection string, used only to scrub it out of
    /// messages libpq builds.
    static func password(_ connectionString: String) -> String? {
        guard let value = options(connectionString)?.first(where: { $0.keyword == "password" })?.value,
            !value.isEmpty
        else { return nil }
        return value
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
}
