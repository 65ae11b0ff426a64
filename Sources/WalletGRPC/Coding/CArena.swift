import WalletProto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Owns the C memory of one response while protobuf-c packs it: every
/// string, array and message allocated here is freed together when the arena
/// goes away. Used by one thread, for one response.
final class CArena {
    private var allocations: [UnsafeMutableRawPointer] = []

    deinit {
        for allocation in allocations { free(allocation) }
    }

    func string(_ value: String) -> UnsafeMutablePointer<CChar> {
        let pointer = strdup(value)!
        allocations.append(pointer)
        return pointer
    }

    func allocate<T>(_ type: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
        let raw = calloc(max(count, 1), MemoryLayout<T>.stride)!
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(count, 1))
    }

    func binary(_ bytes: [UInt8]) -> ProtobufCBinaryData {
        let pointer = allocate(UInt8.self, count: bytes.count)
        for (index, byte) in bytes.enumerated() { pointer[index] = byte }
        return ProtobufCBinaryData(len: bytes.count, data: pointer)
    }

    /// An array of message pointers, as protobuf-c's repeated fields want.
    func array<T>(_ items: [UnsafeMutablePointer<T>]) -> UnsafeMutablePointer<UnsafeMutablePointer<T>?> {
        let pointer = allocate(UnsafeMutablePointer<T>?.self, count: items.count)
        for (index, item) in items.enumerated() { pointer[index] = item }
        return pointer
    }
}

/// Serializes any protobuf-c message through its base.
func pack<M>(_ message: UnsafeMutablePointer<M>) -> [UInt8] {
    message.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { base in
        let size = protobuf_c_message_get_packed_size(base)
        var bytes = [UInt8](repeating: 0, count: size)
        if size > 0 {
            let written = bytes.withUnsafeMutableBufferPointer { protobuf_c_message_pack(base, $0.baseAddress) }
            precondition(written == size, "protobuf-c packed \(written) of \(size) bytes")
        }
        return bytes
    }
}
