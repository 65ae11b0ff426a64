import W3CTraceContext

/// The trace a call belongs to, from its W3C `traceparent` header.
package enum TraceParent {
    /// The 32 lowercase hex digits of the trace id; nil when the header is
    /// absent or not a valid version-00 traceparent (wrong length, bad
    /// delimiters, non-hex, an all-zero trace or span id): an invalid header
    /// gives no trace id rather than a made-up one.
    package static func traceID(_ header: String?) -> String? {
        guard let header else { return nil }
        guard let context = try? TraceContext(traceParentHeaderValue: header) else { return nil }
        return context.traceID.description
    }
}
