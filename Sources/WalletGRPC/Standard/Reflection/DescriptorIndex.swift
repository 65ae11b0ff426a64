/// The files of a FileDescriptorSet and where each symbol is defined: what
/// server reflection looks things up in. Pure; built once at start.
package struct DescriptorIndex: Sendable {
    package struct ExtensionKey: Hashable, Sendable {
        var extendee: String
        var number: Int32
    }

    /// Serialized google.protobuf.FileDescriptorProto by file name
    /// ("wallet/v1/wallet.proto").
    package private(set) var files: [String: [UInt8]] = [:]
    private var dependencies: [String: [String]] = [:]
    /// Fully qualified (no leading dot) message, field, oneof, enum, enum
    /// value, service, method and extension names -> file name.
    private var fileBySymbol: [String: String] = [:]
    private var messageNames: Set<String> = []
    private var fileByExtension: [ExtensionKey: String] = [:]
    private var extensionNumbersByType: [String: [Int32]] = [:]

    /// Reads a serialized google.protobuf.FileDescriptorSet.
    package init(descriptorSet: [UInt8]) throws(WireReader.Malformed) {
        // FileDescriptorSet.file = 1
        for (number, value) in try WireReader.fields(descriptorSet[...]) where number == 1 {
            guard let file = value.message else { continue }
            try add(file: file)
        }
    }

    package func fileName(containingSymbol symbol: String) -> String? {
        fileBySymbol[symbol]
    }

    package func fileName(extending type: String, number: Int32) -> String? {
        fileByExtension[ExtensionKey(extendee: type, number: number)]
    }

    /// The extension field numbers declared for message `type`; nil for an
    /// unknown message.
    package func extensionNumbers(ofType type: String) -> [Int32]? {
        guard messageNames.contains(type) else { return nil }
        return extensionNumbersByType[type, default: []].sorted()
    }

    /// `name` first, then every file it imports, directly or not, each once
    /// and none of `excluded`: what a client needs to build `name`.
    package func fileWithDependencies(_ name: String, excluding excluded: Set<String> = []) -> [String] {
        guard files[name] != nil else { return [] }
        var ordered = [name]
        var seen: Set<String> = excluded.union([name])
        var pending = dependencies[name, default: []]
        while let next = pending.first {
            pending.removeFirst()
            guard !seen.contains(next), files[next] != nil else { continue }
            seen.insert(next)
            ordered.append(next)
            pending.append(contentsOf: dependencies[next, default: []])
        }
        return ordered
    }

    // MARK: Indexing (google/protobuf/descriptor.proto field numbers)

    private mutating func add(file: ArraySlice<UInt8>) throws(WireReader.Malformed) {
        let fields = try WireReader.fields(file)
        var name = ""
        var package = ""
        var imports: [String] = []
        for (number, value) in fields {
            switch number {
            case 1: name = value.text ?? ""
            case 2: package = value.text ?? ""
            case 3: imports.append(value.text ?? "")
            default: break
            }
        }
        files[name] = Array(file)
        dependencies[name] = imports
        let scope = package
        for (number, value) in fields {
            guard let body = value.message else { continue }
            switch number {
            case 4: try addMessage(body, scope: scope, file: name)
            case 5: try addEnum(body, scope: scope, file: name)
            case 6: try addService(body, scope: scope, file: name)
            case 7: try addField(body, scope: scope, file: name, isExtension: true)
            default: break
            }
        }
    }

    private mutating func addMessage(_ message: ArraySlice<UInt8>, scope: String, file: String)
        throws(WireReader.Malformed)
    {
        let fields = try WireReader.fields(message)
        guard let name = fields.first(where: { $0.number == 1 })?.value.text else { return }
        let fullName = qualified(scope, name)
        fileBySymbol[fullName] = file
        messageNames.insert(fullName)
        for (number, value) in fields {
            guard let body = value.message else { continue }
            switch number {
            case 2: try addField(body, scope: fullName, file: file, isExtension: false)
            case 3: try addMessage(body, scope: fullName, file: file)
            case 4: try addEnum(body, scope: fullName, file: file)
            case 6: try addField(body, scope: fullName, file: file, isExtension: true)
            case 8: try addNamed(body, scope: fullName, file: file)  // oneof
            default: break
            }
        }
    }

    private mutating func addField(_ field: ArraySlice<UInt8>, scope: String, file: String, isExtension: Bool)
        throws(WireReader.Malformed)
    {
        var name = ""
        var extendee = ""
        var fieldNumber: Int32 = 0
        for (number, value) in try WireReader.fields(field) {
            switch number {
            case 1: name = value.text ?? ""
            case 2: extendee = value.text ?? ""
            case 3: fieldNumber = Int32(truncatingIfNeeded: value.integer ?? 0)
            default: break
            }
        }
        fileBySymbol[qualified(scope, name)] = file
        guard isExtension else { return }
        // Type references in descriptors are absolute: ".pkg.Message".
        let type = extendee.hasPrefix(".") ? String(extendee.dropFirst()) : extendee
        fileByExtension[ExtensionKey(extendee: type, number: fieldNumber)] = file
        extensionNumbersByType[type, default: []].append(fieldNumber)
    }

    private mutating func addEnum(_ enumeration: ArraySlice<UInt8>, scope: String, file: String)
        throws(WireReader.Malformed)
    {
        let fields = try WireReader.fields(enumeration)
        guard let name = fields.first(where: { $0.number == 1 })?.value.text else { return }
        fileBySymbol[qualified(scope, name)] = file
        // Enum values are siblings of their enum (C++ scoping rules).
        for (number, value) in fields where number == 2 {
            guard let body = value.message else { continue }
            try addNamed(body, scope: scope, file: file)
        }
    }

    private mutating func addService(_ service: ArraySlice<UInt8>, scope: String, file: String)
        throws(WireReader.Malformed)
    {
        let fields = try WireReader.fields(service)
        guard let name = fields.first(where: { $0.number == 1 })?.value.text else { return }
        let fullName = qualified(scope, name)
        fileBySymbol[fullName] = file
        for (number, value) in fields where number == 2 {
            guard let body = value.message else { continue }
            try addNamed(body, scope: fullName, file: file)  // method
        }
    }

    /// A descriptor whose only indexed field is its name (field 1).
    private mutating func addNamed(_ descriptor: ArraySlice<UInt8>, scope: String, file: String)
        throws(WireReader.Malformed)
    {
        guard let name = try WireReader.fields(descriptor).first(where: { $0.number == 1 })?.value.text else {
            return
        }
        fileBySymbol[qualified(scope, name)] = file
    }

    private func qualified(_ scope: String, _ name: String) -> String {
        scope.isEmpty ? name : "\(scope).\(name)"
    }
}
