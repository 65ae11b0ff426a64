/// A non-OK gRPC status as the transport sends it.
package struct RPCStatus: Sendable, Equatable {
    /// gRPC status code (1...16; 0 is OK and belongs in `RPCResult.ok`).
    package var code: Int32
    package var message: String
    /// A serialized `google.rpc.Status`, sent as `grpc-status-details-bin`;
    /// empty for none.
    package var details: [UInt8]
    /// The ErrorInfo reason inside `details` ("INSUFFICIENT_FUNDS"), kept
    /// beside it for the logs and metrics; never sent on its own. Empty when
    /// there is none.
    package var reason: String

    package init(code: Int32, message: String, details: [UInt8] = [], reason: String = "") {
        self.code = code
        self.message = message
        self.details = details
        self.reason = reason
    }
}

extension RPCStatus {
    package static let okCode: Int32 = 0
    package static let cancelledCode: Int32 = 1
    package static let unknownCode: Int32 = 2
    package static let invalidArgumentCode: Int32 = 3
    package static let deadlineExceededCode: Int32 = 4
    package static let notFoundCode: Int32 = 5
    package static let alreadyExistsCode: Int32 = 6
    package static let permissionDeniedCode: Int32 = 7
    package static let resourceExhaustedCode: Int32 = 8
    package static let failedPreconditionCode: Int32 = 9
    package static let abortedCode: Int32 = 10
    package static let outOfRangeCode: Int32 = 11
    package static let unimplementedCode: Int32 = 12
    package static let internalCode: Int32 = 13
    package static let unavailableCode: Int32 = 14
    package static let dataLossCode: Int32 = 15
    package static let unauthenticatedCode: Int32 = 16
    package static let codeMax: Int32 = 16

    /// The canonical name of a code ("FAILED_PRECONDITION"), as gRPC's
    /// documentation spells it; "CODE_<n>" for a number outside 0...16.
    package static func name(of code: Int32) -> String {
        guard (0...codeMax).contains(code) else { return "CODE_\(code)" }
        return codeNames[Int(code)]
    }

    private static let codeNames = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
        "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
    ]
}

/// What a unary handler answers: the serialized response or a status.
package enum RPCResult: Sendable, Equatable {
    case ok([UInt8])
    case failed(RPCStatus)
}
