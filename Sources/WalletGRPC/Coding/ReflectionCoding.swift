import WalletProto

/// One ServerReflectionRequest as Swift values.
struct ReflectionRequest: Equatable {
    enum Question: Equatable {
        case fileByFilename(String)
        case fileContainingSymbol(String)
        case fileContainingExtension(type: String, number: Int32)
        case allExtensionNumbersOfType(String)
        case listServices(String)
        case none
    }

    var host: String
    var question: Question
}

/// What the server answers one reflection request with.
enum ReflectionAnswer: Equatable {
    case files([[UInt8]])
    case extensionNumbers(type: String, numbers: [Int32])
    case services([String])
    case error(code: Int32, message: String)
}

/// grpc.reflection.v1 messages through protobuf-c. v1alpha shares v1's wire
/// layout field for field, so these bytes serve both packages.
enum ReflectionCoding {
    /// Nil for bytes that are not a ServerReflectionRequest.
    static func request(_ bytes: [UInt8]) -> ReflectionRequest? {
        let message = bytes.withUnsafeBufferPointer {
            grpc__reflection__v1__server_reflection_request__unpack(nil, $0.count, $0.baseAddress)
        }
        guard let message else { return nil }
        defer { grpc__reflection__v1__server_reflection_request__free_unpacked(message, nil) }
        let m = message.pointee
        let question: ReflectionRequest.Question
        switch m.message_request_case {
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
            question = .fileByFilename(string(m.file_by_filename))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
            question = .fileContainingSymbol(string(m.file_containing_symbol))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
            let e = m.file_containing_extension?.pointee
            question = .fileContainingExtension(
                type: string(e?.containing_type), number: e?.extension_number ?? 0)
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
            question = .allExtensionNumbersOfType(string(m.all_extension_numbers_of_type))
        case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
            question = .listServices(string(m.list_services))
        default:
            question = .none
        }
        return ReflectionRequest(host: string(m.host), question: question)
    }

    static func response(_ answer: ReflectionAnswer, to request: ReflectionRequest) -> [UInt8] {
        let arena = CArena()
        let m = arena.allocate(Grpc__Reflection__V1__ServerReflectionResponse.self)
        grpc__reflection__v1__server_reflection_response__init(m)
        m.pointee.valid_host = arena.string(request.host)
        m.pointee.original_request = original(request, arena)
        switch answer {
        case .files(let files):
            let r = arena.allocate(Grpc__Reflection__V1__FileDescriptorResponse.self)
            grpc__reflection__v1__file_descriptor_response__init(r)
            let blobs = arena.allocate(ProtobufCBinaryData.self, count: files.count)
            for (index, file) in files.enumerated() { blobs[index] = arena.binary(file) }
            r.pointee.n_file_descriptor_proto = files.count
            r.pointee.file_descriptor_proto = blobs
            m.pointee.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE
            m.pointee.file_descriptor_response = r
        case .extensionNumbers(let type, let numbers):
            let r = arena.allocate(Grpc__Reflection__V1__ExtensionNumberResponse.self)
            grpc__reflection__v1__extension_number_response__init(r)
            r.pointee.base_type_name = arena.string(type)
            let values = arena.allocate(Int32.self, count: numbers.count)
            for (index, number) in numbers.enumerated() { values[index] = number }
            r.pointee.n_extension_number = numbers.count
            r.pointee.extension_number = values
            m.pointee.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE
            m.pointee.all_extension_numbers_response = r
        case .services(let names):
            let r = arena.allocate(Grpc__Reflection__V1__ListServiceResponse.self)
            grpc__reflection__v1__list_service_response__init(r)
            let services = names.map { name in
                let s = arena.allocate(Grpc__Reflection__V1__ServiceResponse.self)
                grpc__reflection__v1__service_response__init(s)
                s.pointee.name = arena.string(name)
                return s
            }
            r.pointee.n_service = services.count
            r.pointee.service = arena.array(services)
            m.pointee.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE
            m.pointee.list_services_response = r
        case .error(let code, let message):
            let r = arena.allocate(Grpc__Reflection__V1__ErrorResponse.self)
            grpc__reflection__v1__error_response__init(r)
            r.pointee.error_code = code
            r.pointee.error_message = arena.string(message)
            m.pointee.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE
            m.pointee.error_response = r
        }
        return pack(m)
    }

    private static func original(_ request: ReflectionRequest, _ arena: CArena)
        -> UnsafeMutablePointer<Grpc__Reflection__V1__ServerReflectionRequest>
    {
        let m = arena.allocate(Grpc__Reflection__V1__ServerReflectionRequest.self)
        grpc__reflection__v1__server_reflection_request__init(m)
        m.pointee.host = arena.string(request.host)
        switch request.question {
        case .fileByFilename(let name):
            m.pointee.message_request_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME
            m.pointee.file_by_filename = arena.string(name)
        case .fileContainingSymbol(let symbol):
            m.pointee.message_request_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL
            m.pointee.file_containing_symbol = arena.string(symbol)
        case .fileContainingExtension(let type, let number):
            let e = arena.allocate(Grpc__Reflection__V1__ExtensionRequest.self)
            grpc__reflection__v1__extension_request__init(e)
            e.pointee.containing_type = arena.string(type)
            e.pointee.extension_number = number
            m.pointee.message_request_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION
            m.pointee.file_containing_extension = e
        case .allExtensionNumbersOfType(let type):
            m.pointee.message_request_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE
            m.pointee.all_extension_numbers_of_type = arena.string(type)
        case .listServices(let value):
            m.pointee.message_request_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES
            m.pointee.list_services = arena.string(value)
        case .none:
            break
        }
        return m
    }

    /// protobuf-c does not check strings for UTF-8; invalid bytes become
    /// U+FFFD and then simply match nothing.
    private static func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
        pointer.map { String(cString: $0) } ?? ""
    }
}
