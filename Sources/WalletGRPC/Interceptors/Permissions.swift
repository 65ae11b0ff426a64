import FoundationEssentials

/// Who may call what: the `--permissions` file (wallet-contract.md, "Callers,
/// identity and permissions"). A JSON object mapping an identity to the
/// methods it may call, or to `{"methods": [...], "rate_per_second": N}`.
/// Methods are short names for wallet.v1.Wallet (`Debit`), full paths for
/// any other service (`/grpc.health.v1.Health/Check`), or `"*"`.
package struct Permissions: Sendable, Equatable {
    package struct Grant: Sendable, Equatable {
        /// `"*"` was listed.
        package var allowsEveryMethod: Bool
        /// Full paths, "/wallet.v1.Wallet/Debit".
        package var methods: Set<String>
        /// Calls per second over all the identity's connections and methods;
        /// nil: no limit.
        package var ratePerSecond: Double?

        package init(allowsEveryMethod: Bool = false, methods: Set<String> = [], ratePerSecond: Double? = nil) {
            self.allowsEveryMethod = allowsEveryMethod
            self.methods = methods
            self.ratePerSecond = ratePerSecond
        }

        package func allows(_ method: String) -> Bool {
            allowsEveryMethod || methods.contains(method)
        }
    }

    /// The service whose methods may be named short.
    package static let shortNameService = "wallet.v1.Wallet"
    /// Identities in one file at most, and methods per identity: a file past
    /// these is refused (a generated file gone wrong, not a configuration).
    package static let identitiesMax = 10_000
    package static let methodsPerIdentityMax = 1_000
    /// The fastest rate a file may set (calls per second).
    package static let ratePerSecondMax = 1_000_000.0

    package var grants: [String: Grant]

    package init(grants: [String: Grant]) {
        self.grants = grants
    }

    package func grant(for identity: String) -> Grant? {
        grants[identity]
    }

    /// Parses the file's bytes; a file that is not exactly the documented
    /// shape is refused with what is wrong in it (a typo must not silently
    /// grant or deny).
    package static func parse(_ bytes: [UInt8]) throws(PermissionsError) -> Permissions {
        let file: [String: GrantJSON]
        do {
            file = try JSONDecoder().decode([String: GrantJSON].self, from: Data(bytes))
        } catch let error as PermissionsError {
            throw error
        } catch {
            throw PermissionsError(
                "expected a JSON object mapping each identity to a list of methods or to "
                    + #"{"methods": [...], "rate_per_second": N}"#)
        }
        guard file.count <= identitiesMax else {
            throw PermissionsError("more than \(identitiesMax) identities")
        }
        var grants: [String: Grant] = [:]
        for (identity, entry) in file {
            guard !identity.isEmpty else { throw PermissionsError("an identity is empty") }
            guard entry.methods.count <= methodsPerIdentityMax else {
                throw PermissionsError("\(identity): more than \(methodsPerIdentityMax) methods")
            }
            var grant = Grant()
            for name in entry.methods {
                if name == "*" {
                    grant.allowsEveryMethod = true
                } else {
                    grant.methods.insert(try fullPath(name, identity: identity))
                }
            }
            if let rate = entry.ratePerSecond {
                guard rate.isFinite, rate > 0, rate <= ratePerSecondMax else {
                    throw PermissionsError("\(identity): rate_per_second must be a number above 0, at most 1000000")
                }
                grant.ratePerSecond = rate
            }
            grants[identity] = grant
        }
        return Permissions(grants: grants)
    }

    /// Every full path the file names that is not in `served` (a typo, or a
    /// method of a newer server): worth a warning, not a refusal.
    package func methodsNotServed(_ served: Set<String>) -> [String] {
        Set(grants.values.flatMap(\.methods)).subtracting(served).sorted()
    }

    /// "Debit" -> "/wallet.v1.Wallet/Debit"; "/pkg.Service/Method" as is.
    static func fullPath(_ name: String, identity: String) throws(PermissionsError) -> String {
        if name.first == "/" {
            let parts = name.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(isPathCharacter) }) else {
                throw PermissionsError("\(identity): \(name) is not a method path like /pkg.Service/Method")
            }
            return name
        }
        guard let first = name.first, first.isLetter, name.allSatisfy(isMethodNameCharacter) else {
            throw PermissionsError("\(identity): \(name) is not a method name like Debit, a path, or \"*\"")
        }
        return "/\(shortNameService)/\(name)"
    }

    private static func isMethodNameCharacter(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber || character == "_")
    }

    private static func isPathCharacter(_ character: Character) -> Bool {
        isMethodNameCharacter(character) || character == "."
    }
}

/// What is wrong with a permissions file.
package struct PermissionsError: Error, Equatable, CustomStringConvertible {
    package var reason: String

    init(_ reason: String) {
        self.reason = reason
    }

    package init(reason: String) {
        self.reason = reason
    }

    package var description: String { reason }
}

/// One identity's entry as the file spells it: a list, or an object.
private struct GrantJSON: Decodable {
    var methods: [String]
    var ratePerSecond: Double?

    private enum Key: String, CodingKey {
        case methods
        case ratePerSecond = "rate_per_second"
    }

    init(from decoder: any Decoder) throws {
        if let list = try? decoder.singleValueContainer().decode([String].self) {
            methods = list
            return
        }
        let object = try decoder.container(keyedBy: AnyKey.self)
        for key in object.allKeys where Key(rawValue: key.stringValue) == nil {
            throw PermissionsError("unknown key \"\(key.stringValue)\" (expected \"methods\" and \"rate_per_second\")")
        }
        let known = try decoder.container(keyedBy: Key.self)
        methods = try known.decode([String].self, forKey: .methods)
        ratePerSecond = try known.decodeIfPresent(Double.self, forKey: .ratePerSecond)
    }
}

private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}
