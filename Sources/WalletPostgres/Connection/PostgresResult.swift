import CLibPQ

/// The rows of one statement, copied out of libpq as text.
///
/// No libpq pointer survives construction: the PGresult is cleared by the
/// connection right after `init(copying:)`, so a result can cross threads.
package struct PostgresResult: Sendable {
    package let columnNames: [String]
    package let rowCount: Int
    /// The command tag, e.g. "INSERT 0 3" or "SELECT 1".
    package let commandTag: String
    /// Rows inserted, updated, deleted, selected, … (PQcmdTuples); nil when the
    /// command does not report a count.
    package let rowsAffected: Int?
    /// Row-major: value (row, column) is at `row * columnNames.count + column`.
    private let values: [String?]

    package var columnCount: Int { columnNames.count }

    /// Copies everything out of `result`; the caller still owns and clears it.
    init(copying result: OpaquePointer) {
        let rowCount = Int(PQntuples(result))
        let columnCount = Int(PQnfields(result))
        var columnNames: [String] = []
        columnNames.reserveCapacity(columnCount)
        for column in 0..<columnCount {
            columnNames.append(String(cString: PQfname(result, Int32(column))))
        }
        var values: [String?] = []
        values.reserveCapacity(rowCount * columnCount)
        for row in 0..<rowCount {
            for column in 0..<columnCount {
                if PQgetisnull(result, Int32(row), Int32(column)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(row), Int32(column))))
                }
            }
        }
        self.columnNames = columnNames
        self.rowCount = rowCount
        self.values = values
        self.commandTag = String(cString: PQcmdStatus(result))
        self.rowsAffected = Int(String(cString: PQcmdTuples(result)))
    }

    /// Index of the column with this name, or nil.
    package func column(named name: String) -> Int? {
        columnNames.firstIndex(of: name)
    }

    private func index(_ name: String) -> Int {
        guard let column = column(named: name) else {
            preconditionFailure("no column \"\(name)\" in result (columns: \(columnNames))")
        }
        return column
    }

    // MARK: By position

    package func isNull(row: Int, column: Int) -> Bool {
        string(row: row, column: column) == nil
    }

    package func string(row: Int, column: Int) -> String? {
        precondition(row >= 0 && row < rowCount, "row \(row) out of 0..<\(rowCount)")
        precondition(column >= 0 && column < columnCount, "column \(column) out of 0..<\(columnCount)")
        return values[row * columnCount + column]
    }

    /// A bigint/int/smallint column. Text that is not an integer means the query
    /// and the code disagree about the schema: that is a bug, so it traps.
    package func int64(row: Int, column: Int) -> Int64? {
        guard let text = string(row: row, column: column) else { return nil }
        guard let value = Int64(text) else {
            preconditionFailure("column \(columnNames[column]) is not an integer: \(text.prefix(40))")
        }
        return value
    }

    package func bool(row: Int, column: Int) -> Bool? {
        switch string(row: row, column: column) {
        case nil: return nil
        case "t": return true
        case "f": return false
        case let text?: preconditionFailure("column \(columnNames[column]) is not a boolean: \(text.prefix(40))")
        }
    }

    /// A bytea column in the server's default hex output ("\x0a1b…").
    package func bytes(row: Int, column: Int) -> [UInt8]? {
        guard let text = string(row: row, column: column) else { return nil }
        guard let bytes = PostgresText.bytes(fromByteaText: text) else {
            preconditionFailure("column \(columnNames[column]) is not bytea hex output (bytea_output must be hex)")
        }
        return bytes
    }

    // MARK: By name

    package func isNull(row: Int, column: String) -> Bool { isNull(row: row, column: index(column)) }
    package func string(row: Int, column: String) -> String? { string(row: row, column: index(column)) }
    package func int64(row: Int, column: String) -> Int64? { int64(row: row, column: index(column)) }
    package func bool(row: Int, column: String) -> Bool? { bool(row: row, column: index(column)) }
    package func bytes(row: Int, column: String) -> [UInt8]? { bytes(row: row, column: index(column)) }
}
