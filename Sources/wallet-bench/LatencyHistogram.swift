/// A log-linear latency histogram in the spirit of HdrHistogram: values in
/// nanoseconds, each power of two split into `subBucketCount / 2` linear
/// buckets, so any recorded value is reported within 1/128 (0.8%) of itself.
/// Fixed size (about 37 KB), O(1) record, mergeable.
struct LatencyHistogram: Sendable {
    static let subBucketBits = 8
    static let subBucketCount = 1 << subBucketBits
    static let subBucketHalfCount = subBucketCount / 2
    /// Larger values are clamped: no call waits an hour.
    static let valueMaxNanoseconds: UInt64 = 3_600_000_000_000
    static let bucketCount = index(of: valueMaxNanoseconds) + 1

    private var counts = [UInt64](repeating: 0, count: LatencyHistogram.bucketCount)
    private(set) var totalCount: UInt64 = 0
    private(set) var minimumNanoseconds = UInt64.max
    private(set) var maximumNanoseconds: UInt64 = 0
    private var sumNanoseconds: Double = 0

    static func index(of value: UInt64) -> Int {
        if value < UInt64(subBucketCount) { return Int(value) }
        let width = UInt64.bitWidth - value.leadingZeroBitCount
        let shift = width - subBucketBits
        let subBucket = Int(value >> UInt64(shift))
        return subBucketCount + (shift - 1) * subBucketHalfCount + (subBucket - subBucketHalfCount)
    }

    /// The smallest and largest value that land in bucket `index`.
    static func range(at index: Int) -> ClosedRange<UInt64> {
        if index < subBucketCount { return UInt64(index)...UInt64(index) }
        let offset = index - subBucketCount
        let shift = offset / subBucketHalfCount + 1
        let subBucket = offset % subBucketHalfCount + subBucketHalfCount
        let lowest = UInt64(subBucket) << UInt64(shift)
        return lowest...(lowest + (UInt64(1) << UInt64(shift)) - 1)
    }

    mutating func record(nanoseconds: UInt64) {
        let value = min(nanoseconds, Self.valueMaxNanoseconds)
        counts[Self.index(of: value)] += 1
        totalCount += 1
        minimumNanoseconds = min(minimumNanoseconds, value)
        maximumNanoseconds = max(maximumNanoseconds, value)
        sumNanoseconds += Double(value)
    }

    mutating func merge(_ other: LatencyHistogram) {
        for index in counts.indices { counts[index] += other.counts[index] }
        totalCount += other.totalCount
        minimumNanoseconds = min(minimumNanoseconds, other.minimumNanoseconds)
        maximumNanoseconds = max(maximumNanoseconds, other.maximumNanoseconds)
        sumNanoseconds += other.sumNanoseconds
    }

    /// The value at `quantile` (0...1): the top of the bucket holding that
    /// rank, never above the largest value recorded. Zero when empty.
    func value(atQuantile quantile: Double) -> UInt64 {
        guard totalCount > 0 else { return 0 }
        let rank = max(1, UInt64((quantile * Double(totalCount)).rounded(.up)))
        var seen: UInt64 = 0
        for index in counts.indices where counts[index] > 0 {
            seen += counts[index]
            if seen >= rank { return min(Self.range(at: index).upperBound, maximumNanoseconds) }
        }
        return maximumNanoseconds
    }

    var meanNanoseconds: Double { totalCount == 0 ? 0 : sumNanoseconds / Double(totalCount) }
}
