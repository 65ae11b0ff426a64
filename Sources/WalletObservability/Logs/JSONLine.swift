import Logging

/// One JSON object on one line: `{"time":…,"level":…,"message":…,…}\n`.
/// Strings are escaped as RFC 8259 asks (quote, backslash, every control
/// character), so no value can end the line or the object early: a caller's
/// request id or transaction id cannot forge a log line.
struct JSONLine {
    private(set) var bytes: [UInt8]
    private var empty = true

    init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
        bytes.append(UInt8(ascii: "{"))
    }

    /// `"key":"value"`.
    mutating func field(_ key: String, _ value: String) {
        self.key(key)
        Self.appendString(value, to: &bytes)
    }

    /// `"key":` and a metadata value: a string, a number or boolean as
    /// itself, an array or a dictionary (keys sorted) as JSON.
    mutating func field(_ key: String, _ value: Logger.MetadataValue) {
        self.key(key)
        Self.append(value, to: &bytes)
    }

    /// The closed object and its newline.
    mutating func finish() -> [UInt8] {
        bytes.append(contentsOf: "}\n".utf8)
        return bytes
    }

    private mutating func key(_ key: String) {
        if !empty { bytes.append(UInt8(ascii: ",")) }
        empty = false
        Self.appendString(key, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
    }

    private static func append(_ value: Logger.MetadataValue, to bytes: inout [UInt8]) {
        switch value {
        case .string(let text):
            appendString(text, to: &bytes)
        case .stringConvertible(let convertible):
            if let number = literal(convertible) {
                bytes.append(contentsOf: number.utf8)
            } else {
                appendString(convertible.description, to: &bytes)
            }
        case .array(let values):
            bytes.append(UInt8(ascii: "["))
            for (index, element) in values.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                append(element, to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .dictionary(let entries):
            bytes.append(UInt8(ascii: "{"))
            for (index, key) in entries.keys.sorted().enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                appendString(key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                append(entries[key]!, to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// Integers, finite floating-point numbers and booleans as JSON
    /// literals; nil for anything else (written as a string).
    private static func literal(_ value: any CustomStringConvertible & Sendable) -> String? {
        switch value {
        case let value as Bool: return value ? "true" : "false"
        case let value as any BinaryInteger: return value.description
        case let value as Double: return value.isFinite ? value.description : nil
        case let value as Float: return value.isFinite ? value.description : nil
        default: return nil
        }
    }

    /// `text` as a JSON string, quotes included.
    static func appendString(_ text: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): bytes.append(contentsOf: #"\\"#.utf8)
            case 0x0A: bytes.append(contentsOf: #"\n"#.utf8)
            case 0x0D: bytes.append(contentsOf: #"\r"#.utf8)
            case 0x09: bytes.append(contentsOf: #"\t"#.utf8)
            case 0x08: bytes.append(contentsOf: #"\b"#.utf8)
            case 0x0C: bytes.append(contentsOf: #"\f"#.utf8)
            case 0x00..<0x20, 0x7F:
                bytes.append(contentsOf: #"\u00"#.utf8)
                bytes.append(hexDigits[Int(byte >> 4)])
                bytes.append(hexDigits[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}
