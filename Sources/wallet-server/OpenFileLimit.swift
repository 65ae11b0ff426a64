import Foundation

/// Raises the soft limit on open files to the hard limit: every connection
/// is a descriptor, and gRPC core 1.51 stops accepting connections for good
/// after one accept fails with EMFILE (docs/security.md).
enum OpenFileLimit {
    /// The limits before and after.
    static func raiseToHardLimit() -> (before: UInt64, after: UInt64) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (0, 0) }
        let before = UInt64(limit.rlim_cur)
        guard limit.rlim_cur < limit.rlim_max else { return (before, before) }
        var raised = limit
        raised.rlim_cur = limit.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 else { return (before, before) }
        return (before, UInt64(raised.rlim_cur))
    }
}
