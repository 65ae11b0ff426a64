/// Text-format encodings for parameters and results that are not plain
/// strings: bytea and one-dimensional arrays (for `unnest($1::text[], …)`).
package enum PostgresText {
    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// `\x0a1b…`: a bytea parameter in hex input format.
    package static func byteaLiteral(_ bytes: [UInt8]) -> String {
        var text: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "x")]
        text.reserveCapacity(2 + bytes.count * 2)
        for byte in bytes {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// Decodes bytea hex output (`\x…`); nil if the text is not in that format.
    package static func bytes(fromByteaText text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"),
            utf8.count % 2 == 0
        else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity((utf8.count - 2) / 2)
        var index = 2
        while index < utf8.count {
            guard let high = hexValue(utf8[index]), let low = hexValue(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// `{"a","b\"c",NULL}`: every element quoted, so no string is mistaken for
    /// NULL or split on a comma; `"` and `\` are backslash-escaped.
    package static func arrayLiteral(_ elements: [String?]) -> String {
        // Byte-wise: this runs for every column of every batch write.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(2 + elements.reduce(0) { $0 + ($1?.utf8.count ?? 4) + 3 })
        bytes.append(UInt8(ascii: "{"))
        for (position, element) in elements.enumerated() {
            if position > 0 { bytes.append(UInt8(ascii: ",")) }
            guard let element else {
                bytes.append(contentsOf: "NULL".utf8)
                continue
            }
            bytes.append(UInt8(ascii: "\""))
            for byte in element.utf8 {
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { bytes.append(UInt8(ascii: "\\")) }
                bytes.append(byte)
            }
            bytes.append(UInt8(ascii: "\""))
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `{1,-2,3}` for a `bigint[]` parameter.
    package static func arrayLiteral(_ elements: [Int64]) -> String {
        "{" + elements.map(String.init).joined(separator: ",") + "}"
    }

    /// Parses one-dimensional array output (`{a,"b c",NULL}`) into its
    /// elements. Nil when the text is not such an array (including
    /// multi-dimensional arrays and explicit bounds like `[0:1]={…}`).
    package static func parseArray(_ text: String) -> [String?]? {
        var parser = ArrayParser(Array(text.utf8))
        return parser.parse()
    }
}

/// A small hand parser for array_out's format; see PostgreSQL's arrays docs,
/// "Array Value Input".
private struct ArrayParser {
    private let input: [UInt8]
    private var position = 0

    init(_ input: [UInt8]) { self.input = input }

    private static let quote = UInt8(ascii: "\"")
    private static let backslash = UInt8(ascii: "\\")
    private static let comma = UInt8(ascii: ",")
    private static let open = UInt8(ascii: "{")
    private static let close = UInt8(ascii: "}")

    private var current: UInt8? { position < input.count ? input[position] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d {
            position += 1
        }
    }

    mutating func parse() -> [String?]? {
        skipWhitespace()
        guard current == Self.open else { return nil }
        position += 1
        skipWhitespace()
        var elements: [String?] = []
        if current == Self.close {
            position += 1
            return atEnd() ? elements : nil
        }
        while true {
            skipWhitespace()
            guard let element = parseElement() else { return nil }
            elements.append(element)
            skipWhitespace()
            switch current {
            case Self.comma?:
                position += 1
            case Self.close?:
                position += 1
                return atEnd() ? elements : nil
            default:
                return nil
            }
        }
    }

    private mutating func atEnd() -> Bool {
        skipWhitespace()
        return position == input.count
    }

    /// One element: `.some(nil)` for NULL, nil when malformed.
    private mutating func parseElement() -> String?? {
        guard let first = current, first != Self.open, first != Self.comma, first != Self.close else {
            return nil
        }
        var bytes: [UInt8] = []
        if first == Self.quote {
            position += 1
            while true {
                guard var byte = current else { return nil }
                position += 1
                if byte == Self.quote { break }
                if byte == Self.backslash {
                    guard let escaped = current else { return nil }
                    position += 1
                    byte = escaped
                }
                bytes.append(byte)
            }
            return .some(String(decoding: bytes, as: UTF8.self))
        }
        var sawEscape = false
        // Trailing unescaped whitespace is not part of an unquoted element.
        var keptCount = 0
        while let byte = current, byte != Self.comma, byte != Self.close {
            if byte == Self.quote || byte == Self.open { return nil }
            position += 1
            if byte == Self.backslash {
                guard let escaped = current else { return nil }
                position += 1
                sawEscape = true
                bytes.append(escaped)
                keptCount = bytes.count
                continue
            }
            bytes.append(byte)
            if !(byte == 0x20 || byte == 0x09 || byte == 0x0a || byte == 0x0d) { keptCount = bytes.count }
        }
        let element = String(decoding: bytes[..<keptCount], as: UTF8.self)
        if !sawEscape && element.uppercased() == "NULL" { return .some(nil) }
        return .some(element)
    }
}
