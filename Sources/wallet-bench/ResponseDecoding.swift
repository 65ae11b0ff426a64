import WalletGRPC
import WalletProto

/// Reads the few answer fields the bench looks at.
enum ResponseDecoding {
    /// The `replayed` flag of a money-moving response; nil when the bytes do
    /// not parse or the method has no such flag.
    static func replayed(method: WalletMethod, response: [UInt8]) -> Bool? {
        response.withUnsafeBufferPointer { bytes -> Bool? in
            let (count, base) = (bytes.count, bytes.baseAddress)
            switch method {
            case .credit:
                return flag(wallet__v1__credit_response__unpack(nil, count, base), \.replayed) {
                    wallet__v1__credit_response__free_unpacked($0, nil)
                }
            case .debit:
                return flag(wallet__v1__debit_response__unpack(nil, count, base), \.replayed) {
                    wallet__v1__debit_response__free_unpacked($0, nil)
                }
            case .authorize:
                return flag(wallet__v1__authorize_response__unpack(nil, count, base), \.replayed) {
                    wallet__v1__authorize_response__free_unpacked($0, nil)
                }
            case .transfer:
                return flag(wallet__v1__transfer_response__unpack(nil, count, base), \.replayed) {
                    wallet__v1__transfer_response__free_unpacked($0, nil)
                }
            case .settle:
                return flag(wallet__v1__settle_response__unpack(nil, count, base), \.replayed) {
                    wallet__v1__settle_response__free_unpacked($0, nil)
                }
            case .rollback:
                return flag(wallet__v1__rollback_response__unpack(nil, count, base), \.replayed) {
                    wallet__v1__rollback_response__free_unpacked($0, nil)
                }
            default:
                return nil
            }
        }
    }

    /// The `ErrorInfo.reason` inside a `grpc-status-details-bin` value (a
    /// serialized google.rpc.Status); nil when there is none.
    static func reason(statusDetails: [UInt8]) -> String? {
        guard !statusDetails.isEmpty else { return nil }
        return statusDetails.withUnsafeBufferPointer { bytes -> String? in
            guard let status = google__rpc__status__unpack(nil, bytes.count, bytes.baseAddress) else { return nil }
            defer { google__rpc__status__free_unpacked(status, nil) }
            for index in 0..<status.pointee.n_details {
                guard let any = status.pointee.details[index]?.pointee, let typeURL = any.type_url,
                    String(cString: typeURL).hasSuffix("/google.rpc.ErrorInfo")
                else { continue }
                guard let info = google__rpc__error_info__unpack(nil, any.value.len, any.value.data) else { continue }
                defer { google__rpc__error_info__free_unpacked(info, nil) }
                return info.pointee.reason.map { String(cString: $0) }
            }
            return nil
        }
    }

    private static func flag<M>(
        _ message: UnsafeMutablePointer<M>?, _ field: KeyPath<M, protobuf_c_boolean>,
        free: (UnsafeMutablePointer<M>) -> Void
    ) -> Bool? {
        guard let message else { return nil }
        defer { free(message) }
        return message.pointee[keyPath: field] != 0
    }
}

/// gRPC status code names, for reports.
enum StatusCodeName {
    static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]

    static func of(_ code: Int32) -> String {
        names.indices.contains(Int(code)) ? names[Int(code)] : "CODE_\(code)"
    }
}
