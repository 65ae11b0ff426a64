import WalletDomain
import WalletProto

/// The one place a domain error becomes a gRPC status: the code, a message
/// (never SQL, a stack trace or a secret) and a google.rpc.Status carrying a
/// google.rpc.ErrorInfo (domain `wallet.v1`) for grpc-status-details-bin.
enum StatusMapping {
    static let errorDomain = "wallet.v1"
    static let errorInfoTypeURL = "type.googleapis.com/google.rpc.ErrorInfo"

    static func code(_ code: ErrorCode) -> Int32 {
        switch code {
        case .invalidArgument: RPCStatus.invalidArgumentCode
        case .notFound: RPCStatus.notFoundCode
        case .alreadyExists: RPCStatus.alreadyExistsCode
        case .failedPrecondition: RPCStatus.failedPreconditionCode
        case .unavailable: RPCStatus.unavailableCode
        case .deadlineExceeded: RPCStatus.deadlineExceededCode
        case .resourceExhausted: RPCStatus.resourceExhaustedCode
        case .internal: RPCStatus.internalCode
        }
    }

    static func status(_ error: LedgerError) -> RPCStatus {
        status(code: code(error.code), reason: error.reason, message: error.message, metadata: error.metadata)
    }

    /// A status with an ErrorInfo for refusals that are not the ledger's
    /// (the transport's access rules).
    static func status(code: Int32, reason: String, message: String, metadata: [String: String] = [:]) -> RPCStatus {
        RPCStatus(
            code: code, message: message,
            details: details(code: code, reason: reason, message: message, metadata: metadata), reason: reason)
    }

    static func details(code: Int32, reason: String, message: String, metadata: [String: String]) -> [UInt8] {
        let arena = CArena()
        let info = arena.allocate(Google__Rpc__ErrorInfo.self)
        google__rpc__error_info__init(info)
        info.pointee.reason = arena.string(reason)
        info.pointee.domain = arena.string(errorDomain)
        let entries = metadata.keys.sorted().map { key in
            let entry = arena.allocate(Google__Rpc__ErrorInfo__MetadataEntry.self)
            google__rpc__error_info__metadata_entry__init(entry)
            entry.pointee.key = arena.string(key)
            entry.pointee.value = arena.string(metadata[key]!)
            return entry
        }
        info.pointee.n_metadata = entries.count
        info.pointee.metadata = arena.array(entries)

        let any = arena.allocate(Google__Protobuf__Any.self)
        google__protobuf__any__init(any)
        any.pointee.type_url = arena.string(errorInfoTypeURL)
        any.pointee.value = arena.binary(pack(info))

        let status = arena.allocate(Google__Rpc__Status.self)
        google__rpc__status__init(status)
        status.pointee.code = code
        status.pointee.message = arena.string(message)
        status.pointee.n_details = 1
        status.pointee.details = arena.array([any])
        return pack(status)
    }
}
