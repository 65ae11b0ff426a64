import Synchronization
import WalletProto

/// grpc.reflection.v1 and v1alpha ServerReflectionInfo: answers each request
/// of the stream in order from the descriptor set generated from Protos/
/// (scripts/regen-protos), so clients need no proto files.
package final class ReflectionService: RoutedService {
    /// Requests answered on one stream at most; a client past it is
    /// RESOURCE_EXHAUSTED (reflection clients ask a handful of questions).
    package static let requestsPerStreamMax = 10_000

    private let index: DescriptorIndex
    private let serviceNames: [String]
    /// Open streams, each with what ends it: a client may hold a reflection
    /// stream open for as long as it likes, and the server's drain must not
    /// wait for it.
    private let open = Mutex<(stopping: Bool, next: Int, enders: [Int: @Sendable () -> Void])>((false, 0, [:]))

    /// `serviceNames`: what list_services answers, e.g. "wallet.v1.Wallet".
    package init(serviceNames: [String], descriptorSet: [UInt8] = ReflectionService.generatedDescriptorSet) {
        do {
            index = try DescriptorIndex(descriptorSet: descriptorSet)
        } catch {
            // Generated at build time and checked by tests: a bad one is a bug.
            preconditionFailure("the generated descriptor set is malformed at byte \(error.offset)")
        }
        self.serviceNames = serviceNames
    }

    /// v1's name; v1alpha is served by the same handler under its own name.
    package var serviceName: String { "grpc.reflection.v1.ServerReflection" }

    package static let v1AlphaServiceName = "grpc.reflection.v1alpha.ServerReflection"

    package var routes: [Route] {
        [
            .streaming("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") { [self] _, stream in
                Task { await self.serve(stream) }
            }
        ]
    }

    /// The same service under grpc.reflection.v1alpha, which older clients
    /// (grpcurl before 1.8.8, grpc_cli) ask for.
    package var v1Alpha: some RoutedService { ReflectionV1Alpha(reflection: self) }

    /// The FileDescriptorSet committed in WalletProto.
    package static var generatedDescriptorSet: [UInt8] {
        Array(UnsafeBufferPointer(start: wallet_descriptor_set(), count: wallet_descriptor_set_size()))
    }

    /// Ends every open stream with UNAVAILABLE, and any stream opened from
    /// now on at once (the server is shutting down).
    package func stopServing() {
        let enders = open.withLock { open in
            open.stopping = true
            defer { open.enders = [:] }
            return Array(open.enders.values)
        }
        for end in enders { end() }
    }

    /// Serves one ServerReflectionInfo call until the client half-closes
    /// (or the server stops serving).
    package func serve(_ stream: some ServerStream) async {
        let ending = StreamEnding(stream)
        let shuttingDown = RPCStatus(code: RPCStatus.unavailableCode, message: "the server is shutting down")
        let id: Int? = open.withLock { open in
            guard !open.stopping else { return nil }
            defer { open.next += 1 }
            open.enders[open.next] = { ending.finish(shuttingDown) }
            return open.next
        }
        guard let id else {
            ending.finish(shuttingDown)
            return
        }
        defer { _ = open.withLock { $0.enders.removeValue(forKey: id) } }
        // Files already sent on this stream are not sent again as
        // dependencies; a client keeps what it received.
        var sentFiles: Set<String> = []
        var answered = 0
        while let bytes = await stream.read() {
            guard answered < Self.requestsPerStreamMax else {
                ending.finish(
                    RPCStatus(
                        code: RPCStatus.resourceExhaustedCode,
                        message: "more than \(Self.requestsPerStreamMax) requests on one reflection stream"))
                return
            }
            guard let request = ReflectionCoding.request(bytes) else {
                ending.finish(
                    RPCStatus(
                        code: RPCStatus.invalidArgumentCode,
                        message: "the request is not a valid ServerReflectionRequest"))
                return
            }
            let answer = answer(request.question, sentFiles: &sentFiles)
            answered += 1
            guard await stream.send(ReflectionCoding.response(answer, to: request)) else { break }
        }
        ending.finish(nil)
    }

    func answer(_ question: ReflectionRequest.Question, sentFiles: inout Set<String>) -> ReflectionAnswer {
        switch question {
        case .listServices:
            return .services(serviceNames)
        case .fileByFilename(let name):
            guard index.files[name] != nil else {
                return .error(code: RPCStatus.notFoundCode, message: "file not found: \(name)")
            }
            return files(name, sentFiles: &sentFiles)
        case .fileContainingSymbol(let symbol):
            guard let name = index.fileName(containingSymbol: symbol) else {
                return .error(code: RPCStatus.notFoundCode, message: "symbol not found: \(symbol)")
            }
            return files(name, sentFiles: &sentFiles)
        case .fileContainingExtension(let type, let number):
            guard let name = index.fileName(extending: type, number: number) else {
                return .error(code: RPCStatus.notFoundCode, message: "extension not found: \(type) \(number)")
            }
            return files(name, sentFiles: &sentFiles)
        case .allExtensionNumbersOfType(let type):
            guard let numbers = index.extensionNumbers(ofType: type) else {
                return .error(code: RPCStatus.notFoundCode, message: "type not found: \(type)")
            }
            return .extensionNumbers(type: type, numbers: numbers)
        case .none:
            return .error(code: RPCStatus.invalidArgumentCode, message: "the request asks nothing")
        }
    }

    /// The file itself always, then the imports not yet sent.
    private func files(_ name: String, sentFiles: inout Set<String>) -> ReflectionAnswer {
        let names = index.fileWithDependencies(name, excluding: sentFiles.subtracting([name]))
        sentFiles.formUnion(names)
        return .files(names.compactMap { index.files[$0] })
    }
}

/// Ends a stream once: by its own handler or by a shutdown, whichever comes
/// first (a call answered twice is a bug the transport traps on).
private struct ReflectionV1Alpha: RoutedService {
    let reflection: ReflectionService

    var serviceName: String { ReflectionService.v1AlphaServiceName }

    var routes: [Route] {
        [
            .streaming("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") { [reflection] _, stream in
                Task { await reflection.serve(stream) }
            }
        ]
    }
}
