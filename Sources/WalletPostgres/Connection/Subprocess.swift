#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs a program to completion and captures its merged stdout and stderr.
///
/// Not Foundation's Process: on Linux it learns that a child exited through a
/// descriptor the child inherits, and `pg_ctl start` leaves the server, a
/// grandchild, holding that descriptor, so waitUntilExit never returns. Here
/// the child starts with every descriptor above stderr closed, so the server
/// it launches inherits nothing of ours.
enum Subprocess {
    struct Outcome {
        let status: Int32
        let output: String
    }

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    /// Bytes of output kept for error messages; the rest is read and dropped.
    static let outputBytesMax = 64 * 1024

    static func run(_ executable: String, _ arguments: [String], in directory: String) throws -> Outcome {
        guard let closeFrom = GNUSpawnActions.closeFrom, let changeDirectory = GNUSpawnActions.changeDirectory else {
            throw SpawnError(description: "this libc lacks posix_spawn_file_actions_addclosefrom_np/addchdir_np")
        }
        var pipeDescriptors: [Int32] = [-1, -1]
        guard pipe(&pipeDescriptors) == 0 else {
            throw SpawnError(description: "pipe failed: \(String(cString: strerror(errno)))")
        }
        let readEnd = pipeDescriptors[0]
        let writeEnd = pipeDescriptors[1]
        // Other threads may spawn too; keep our ends out of their children.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        _ = closeFrom(&actions, 3)
        _ = directory.withCString { changeDirectory(&actions, $0) }

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }

        var pid: pid_t = 0
        let spawnResult = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        close(writeEnd)
        guard spawnResult == 0 else {
            close(readEnd)
            throw SpawnError(description: "cannot start \(executable): \(String(cString: strerror(spawnResult)))")
        }

        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if count > 0 {
                if output.count < outputBytesMax { output += buffer[..<min(count, outputBytesMax - output.count)] }
            } else if count == 0 || errno != EINTR {
                break
            }
        }
        close(readEnd)

        var waitStatus: Int32 = 0
        while waitpid(pid, &waitStatus, 0) < 0 {
            guard errno == EINTR else {
                throw SpawnError(description: "waitpid failed: \(String(cString: strerror(errno)))")
            }
        }
        // WIFEXITED / WEXITSTATUS are macros; decode the status word by hand.
        let status: Int32 = (waitStatus & 0x7f) == 0 ? (waitStatus >> 8) & 0xff : 128 + (waitStatus & 0x7f)
        var text = String(decoding: output, as: UTF8.self)
        while text.last?.isWhitespace == true { text.removeLast() }
        return Outcome(status: status, output: text)
    }
}

/// glibc (2.34+) has the two spawn actions we need, but declares them only
/// under _GNU_SOURCE, which the Swift Glibc module does not set; look them up.
private enum GNUSpawnActions {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias ChangeDirectory =
        @convention(c) (
            UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>
        ) -> Int32

    static let closeFrom: CloseFrom? = symbol("posix_spawn_file_actions_addclosefrom_np")
    static let changeDirectory: ChangeDirectory? = symbol("posix_spawn_file_actions_addchdir_np")

    private static func symbol<Function>(_ name: String) -> Function? {
        // RTLD_DEFAULT is a null handle in glibc.
        guard let address = dlsym(nil, name) else { return nil }
        return unsafeBitCast(address, to: Function.self)
    }
}
