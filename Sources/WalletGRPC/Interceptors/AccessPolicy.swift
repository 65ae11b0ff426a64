import Synchronization

/// The permissions in force; a reload replaces them whole, and calls from
/// then on see the new ones. Nil: none configured, and every caller that
/// passed the transport may call every method.
package final class AccessPolicy: Sendable {
    private let current: Mutex<Permissions?>

    package init(_ permissions: Permissions?) {
        current = Mutex(permissions)
    }

    package var permissions: Permissions? { current.withLock { $0 } }

    package func replace(_ permissions: Permissions?) {
        current.withLock { $0 = permissions }
    }

    /// Health answers every caller, so a load balancer needs no certificate
    /// of its own.
    static func isHealth(_ context: CallContext) -> Bool {
        context.service == "grpc.health.v1.Health"
    }

    /// Reflection answers every authenticated caller: it tells the shape of
    /// the API, not its data.
    static func isReflection(_ context: CallContext) -> Bool {
        context.service == "grpc.reflection.v1.ServerReflection"
            || context.service == "grpc.reflection.v1alpha.ServerReflection"
    }
}

/// Refuses a call with no client identity (UNAUTHENTICATED
/// NO_CLIENT_IDENTITY) or by an identity not allowed its method
/// (PERMISSION_DENIED METHOD_NOT_ALLOWED) when permissions are configured.
package struct Authorization: CallInterceptor {
    package let policy: AccessPolicy

    package init(policy: AccessPolicy) {
        self.policy = policy
    }

    package func admit(_ context: CallContext) -> RPCStatus? {
        guard !AccessPolicy.isHealth(context), let permissions = policy.permissions else { return nil }
        guard let caller = context.caller else {
            return StatusMapping.status(
                code: RPCStatus.unauthenticatedCode, reason: "NO_CLIENT_IDENTITY",
                message: "this server admits callers by client certificate, and the call carried none with an identity"
            )
        }
        if AccessPolicy.isReflection(context) { return nil }
        guard let grant = permissions.grant(for: caller), grant.allows(context.method) else {
            return StatusMapping.status(
                code: RPCStatus.permissionDeniedCode, reason: "METHOD_NOT_ALLOWED",
                message: "\(caller) may not call \(context.method)",
                metadata: ["caller": caller, "method": context.method])
        }
        return nil
    }
}

/// Refuses calls over an identity's `rate_per_second` with
/// RESOURCE_EXHAUSTED RATE_LIMITED, before anything reaches the database.
/// Health and reflection are not counted.
package struct RateLimit: CallInterceptor {
    package let policy: AccessPolicy
    package let limiter: RateLimiter

    package init(policy: AccessPolicy, limiter: RateLimiter = RateLimiter()) {
        self.policy = policy
        self.limiter = limiter
    }

    package func admit(_ context: CallContext) -> RPCStatus? {
        guard let caller = context.caller, !AccessPolicy.isHealth(context), !AccessPolicy.isReflection(context),
            let rate = policy.permissions?.grant(for: caller)?.ratePerSecond
        else { return nil }
        guard limiter.take(caller, ratePerSecond: rate) else {
            return StatusMapping.status(
                code: RPCStatus.resourceExhaustedCode, reason: "RATE_LIMITED",
                message: "\(caller) is over its rate of \(Self.format(rate)) calls per second; retry later",
                metadata: ["caller": caller])
        }
        return nil
    }

    private static func format(_ rate: Double) -> String {
        rate == rate.rounded() ? String(Int(rate)) : String(rate)
    }
}
