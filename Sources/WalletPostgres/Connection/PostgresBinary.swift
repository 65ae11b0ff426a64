/// A parameter of a prepared statement: text (libpq sends it NUL-terminated,
/// the server parses it with the type's input function) or a value already
/// in the type's binary wire format.
package enum PostgresParameter: Sendable {
    case text(String?)
    case binary([UInt8])
}

/// One-dimensional arrays in Postgres's binary format, the one `array_send`
/// writes and `array_recv` reads: a header, then each element as a length and
/// its bytes. Nothing to quote or escape when building, nothing to scan on
/// the server but lengths: the batch writes send every column as one of these.
///
/// The element type must be the one the statement declares (`$1::text[]`
/// takes `text`, `$2::bigint[]` takes `int64`...): the server refuses a
/// mismatch rather than converting.
package enum PostgresBinaryArray {
    // Element type OIDs (pg_type.oid, fixed since Postgres 7).
    static let boolOID: UInt32 = 16
    static let byteaOID: UInt32 = 17
    static let int8OID: UInt32 = 20
    static let int4OID: UInt32 = 23
    static let textOID: UInt32 = 25

    package static func text(_ elements: [String?]) -> PostgresParameter {
        var size = 20
        for element in elements { size += 4 + (element?.utf8.count ?? 0) }
        var out = header(
            count: elements.count, hasNull: elements.contains { $0 == nil }, elementOID: textOID, size: size)
        for element in elements {
            guard let element else {
                append(Int32(-1), to: &out)
                continue
            }
            append(Int32(element.utf8.count), to: &out)
            out.append(contentsOf: element.utf8)
        }
        return .binary(out)
    }

    package static func text(_ elements: [String]) -> PostgresParameter {
        var size = 20
        for element in elements { size += 4 + element.utf8.count }
        var out = header(count: elements.count, hasNull: false, elementOID: textOID, size: size)
        for element in elements {
            append(Int32(element.utf8.count), to: &out)
            out.append(contentsOf: element.utf8)
        }
        return .binary(out)
    }

    package static func bytea(_ elements: [[UInt8]]) -> PostgresParameter {
        var size = 20
        for element in elements { size += 4 + element.count }
        var out = header(count: elements.count, hasNull: false, elementOID: byteaOID, size: size)
        for element in elements {
            append(Int32(element.count), to: &out)
            out.append(contentsOf: element)
        }
        return .binary(out)
    }

    package static func int64(_ elements: [Int64]) -> PostgresParameter {
        var out = header(
            count: elements.count, hasNull: false, elementOID: int8OID, size: 20 + elements.count * 12)
        for element in elements {
            append(Int32(8), to: &out)
            append(UInt64(bitPattern: element), to: &out)
        }
        return .binary(out)
    }

    package static func int32(_ elements: [Int32]) -> PostgresParameter {
        var out = header(count: elements.count, hasNull: false, elementOID: int4OID, size: 20 + elements.count * 8)
        for element in elements {
            append(Int32(4), to: &out)
            append(element, to: &out)
        }
        return .binary(out)
    }

    package static func bool(_ elements: [Bool]) -> PostgresParameter {
        var out = header(count: elements.count, hasNull: false, elementOID: boolOID, size: 20 + elements.count * 5)
        for element in elements {
            append(Int32(1), to: &out)
            out.append(element ? 1 : 0)
        }
        return .binary(out)
    }

    /// ndim, has-null flag, element type; then (length, lower bound 1) for
    /// the one dimension. An empty array has no dimensions.
    private static func header(count: Int, hasNull: Bool, elementOID: UInt32, size: Int) -> [UInt8] {
        precondition(count <= Int(Int32.max), "array too long for Postgres")
        var out: [UInt8] = []
        out.reserveCapacity(size)
        append(Int32(count == 0 ? 0 : 1), to: &out)
        append(Int32(hasNull ? 1 : 0), to: &out)
        append(elementOID, to: &out)
        if count > 0 {
            append(Int32(count), to: &out)
            append(Int32(1), to: &out)
        }
        return out
    }

    private static func append(_ value: Int32, to out: inout [UInt8]) {
        append(UInt32(bitPattern: value), to: &out)
    }

    private static func append(_ value: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(truncatingIfNeeded: value >> 24))
        out.append(UInt8(truncatingIfNeeded: value >> 16))
        out.append(UInt8(truncatingIfNeeded: value >> 8))
        out.append(UInt8(truncatingIfNeeded: value))
    }

    private static func append(_ value: UInt64, to out: inout [UInt8]) {
        append(UInt32(truncatingIfNeeded: value >> 32), to: &out)
        append(UInt32(truncatingIfNeeded: value), to: &out)
    }
}
