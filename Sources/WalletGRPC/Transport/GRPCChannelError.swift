/// Why a `GRPCChannel` could not be created.
package struct GRPCChannelError: Error, Equatable, CustomStringConvertible {
    /// The shim's reason, e.g. "invalid arguments".
    package var reason: String

    package var description: String { "gRPC channel not created: \(reason)" }
}
