/// The streaming methods the server registers with gRPC core, after every
/// `WalletMethod`, in this order.
package enum StreamingMethod: Int, CaseIterable, Sendable {
    case healthWatch
    case reflectionInfo
    case reflectionInfoV1Alpha

    package var path: String {
        switch self {
        case .healthWatch: "/grpc.health.v1.Health/Watch"
        case .reflectionInfo: "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        case .reflectionInfoV1Alpha: "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        }
    }
}
