/// Reads the protobuf wire format field by field: just enough to index the
/// FileDescriptorProtos that reflection serves, without generated code for
/// descriptor.proto.
package struct WireReader {
    enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case fixed  // 32 or 64 bits; nothing indexed needs them
    }

    package struct Malformed: Error, Equatable {
        package var offset: Int
    }

    private let bytes: ArraySlice<UInt8>
    private var offset: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        offset = bytes.startIndex
    }

    /// The next field, or nil at the end of the message.
    mutating func next() throws(Malformed) -> (number: Int, value: Value)? {
        guard offset < bytes.endIndex else { return nil }
        let key = try varint()
        let number = Int(key >> 3)
        guard number > 0 else { throw Malformed(offset: offset) }
        switch key & 7 {
        case 0:
            return (number, .varint(try varint()))
        case 1:
            try skip(8)
            return (number, .fixed)
        case 2:
            let length = try varint()
            guard length <= UInt64(bytes.endIndex - offset) else { throw Malformed(offset: offset) }
            let start = offset
            offset += Int(length)
            return (number, .bytes(bytes[start..<offset]))
        case 5:
            try skip(4)
            return (number, .fixed)
        default:
            throw Malformed(offset: offset)
        }
    }

    /// Every field of the message, in order.
    static func fields(_ bytes: ArraySlice<UInt8>) throws(Malformed) -> [(number: Int, value: Value)] {
        var reader = WireReader(bytes)
        var fields: [(number: Int, value: Value)] = []
        while let field = try reader.next() { fields.append(field) }
        return fields
    }

    private mutating func varint() throws(Malformed) -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard offset < bytes.endIndex else { throw Malformed(offset: offset) }
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        throw Malformed(offset: offset)
    }

    private mutating func skip(_ count: Int) throws(Malformed) {
        guard bytes.endIndex - offset >= count else { throw Malformed(offset: offset) }
        offset += count
    }
}

extension WireReader.Value {
    var text: String? {
        guard case .bytes(let bytes) = self else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    var message: ArraySlice<UInt8>? {
        guard case .bytes(let bytes) = self else { return nil }
        return bytes
    }

    var integer: UInt64? {
        guard case .varint(let value) = self else { return nil }
        return value
    }
}
