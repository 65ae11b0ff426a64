/// Why a `GRPCServer` could not start.
package struct GRPCServerError: Error, Equatable, CustomStringConvertible {
    /// The shim's reason, e.g. "cannot listen on 127.0.0.1:1".
    package var reason: String

    package var description: String { "gRPC server did not start: \(reason)" }
}
