#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// SplitMix64: small, fast, and good enough to pick wallets and amounts. Each
/// caller owns one, so no generator is shared between threads.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// How a scenario picks the wallet of its next operation.
enum WalletPicker: Sendable {
    case single
    case uniform(count: Int)
    /// Rank r (0-based) drawn with probability proportional to 1/(r+1)^s.
    case zipf(ZipfTable)

    func pick(using random: inout SplitMix64) -> Int {
        switch self {
        case .single: 0
        case .uniform(let count): Int.random(in: 0..<count, using: &random)
        case .zipf(let table): table.sample(using: &random)
        }
    }
}

/// The cumulative distribution of a Zipf law over `count` ranks, sampled by
/// binary search. Ranks are spread over wallet indices by a fixed stride so
/// the hot wallets are not all neighbours.
struct ZipfTable: Sendable {
    private let cumulative: [Double]
    private let stride: Int

    init(count: Int, exponent: Double) {
        precondition(count > 0, "a Zipf table needs at least one rank")
        var cumulative = [Double](repeating: 0, count: count)
        var total = 0.0
        for rank in 0..<count {
            total += 1.0 / pow(Double(rank + 1), exponent)
            cumulative[rank] = total
        }
        for rank in 0..<count { cumulative[rank] /= total }
        self.cumulative = cumulative
        stride = ZipfTable.coprimeStride(for: count)
    }

    func sample(using random: inout SplitMix64) -> Int {
        let u = Double.random(in: 0..<1, using: &random)
        var low = 0
        var high = cumulative.count - 1
        while low < high {
            let middle = (low + high) / 2
            if cumulative[middle] < u { low = middle + 1 } else { high = middle }
        }
        return (low * stride) % cumulative.count
    }

    /// A stride coprime with `count`, so rank -> index is a permutation.
    private static func coprimeStride(for count: Int) -> Int {
        var candidate = 7919 % max(count, 1)
        while candidate > 1 && greatestCommonDivisor(candidate, count) != 1 { candidate -= 1 }
        return max(candidate, 1)
    }

    private static func greatestCommonDivisor(_ a: Int, _ b: Int) -> Int {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }
}
