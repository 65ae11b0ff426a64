#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The standard `process_*` series, read from the kernel at each scrape
/// (Linux: getrusage, getrlimit and /proc/self).
package struct ProcessMetrics: Sendable, Equatable {
    package var cpuSeconds: Double
    package var residentMemoryBytes: Int
    package var virtualMemoryBytes: Int
    package var openFileDescriptors: Int
    package var maxFileDescriptors: Int
    /// Since the Unix epoch.
    package var startTimeSeconds: Double

    /// Now; nil where /proc cannot be read.
    package static func sample() -> ProcessMetrics? {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return nil }
        let cpu =
            Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec)
            + Double(usage.ru_stime.tv_usec) / 1e6
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        let pageBytes = sysconf(Int32(_SC_PAGESIZE))
        let ticksPerSecond = sysconf(Int32(_SC_CLK_TCK))
        guard let statm = readText("/proc/self/statm")?.split(separator: " "), statm.count >= 2,
            let virtualPages = Int(statm[0]), let residentPages = Int(statm[1]),
            let startTicks = startTimeTicks(), let bootTime = bootTimeSeconds(),
            let openFiles = countOpenFileDescriptors(), pageBytes > 0, ticksPerSecond > 0
        else { return nil }
        return ProcessMetrics(
            cpuSeconds: cpu, residentMemoryBytes: residentPages * pageBytes,
            virtualMemoryBytes: virtualPages * pageBytes, openFileDescriptors: openFiles,
            maxFileDescriptors: limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur),
            startTimeSeconds: Double(bootTime) + Double(startTicks) / Double(ticksPerSecond))
    }

    /// The Prometheus text of these values, HELP and TYPE included.
    package var exposition: String {
        var text = ""
        func series(_ name: String, _ type: String, _ help: String, _ value: String) {
            text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        series("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", "\(cpuSeconds)")
        series("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", "\(residentMemoryBytes)")
        series("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", "\(virtualMemoryBytes)")
        series("process_open_fds", "gauge", "Number of open file descriptors.", "\(openFileDescriptors)")
        series("process_max_fds", "gauge", "Maximum number of open file descriptors.", "\(maxFileDescriptors)")
        series(
            "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
            "\(startTimeSeconds)")
        return text
    }

    /// Field 22 of /proc/self/stat: when the process started, in clock
    /// ticks after boot. Fields are counted after the command name's
    /// closing parenthesis (the name may hold spaces and parentheses).
    private static func startTimeTicks() -> Int? {
        guard let stat = readText("/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state).
        guard fields.count > 19 else { return nil }
        return Int(fields[19])
    }

    /// `btime` of /proc/stat: boot time, seconds since the epoch.
    private static func bootTimeSeconds() -> Int? {
        guard let stat = readText("/proc/stat") else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Int(line.dropFirst("btime ".count).trimmingSuffix())
        }
        return nil
    }

    /// Entries of /proc/self/fd, less the one this count opens to list them.
    private static func countOpenFileDescriptors() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in
                name[0] == UInt8(ascii: ".") && (name[1] == 0 || (name[1] == UInt8(ascii: ".") && name[2] == 0))
            }
            if !isDot { count += 1 }
        }
        return count - 1
    }

    /// A small /proc file's text (at most 64 KiB).
    private static func readText(_ path: String) -> String? {
        let file = open(path, O_RDONLY | O_CLOEXEC)
        guard file >= 0 else { return nil }
        defer { close(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4_096)
        while bytes.count < 65_536 {
            let count = chunk.withUnsafeMutableBytes { read(file, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: chunk[..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Substring {
    fileprivate func trimmingSuffix() -> Substring {
        var text = self
        while let last = text.last, last == " " || last == "\n" || last == "\r" { text = text.dropLast() }
        return text
    }
}
