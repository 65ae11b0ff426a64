import WalletProto

/// Request messages built with protobuf-c and packed to bytes. Strings are
/// borrowed from Swift for the duration of the pack, so nothing is copied
/// into C memory.
enum WorkloadRequests {
    static func defineAsset(_ asset: String, decimalPlaces: UInt32) -> [UInt8] {
        asset.withCString { asset in
            var m = Wallet__V1__DefineAssetRequest()
            wallet__v1__define_asset_request__init(&m)
            m.asset = UnsafeMutablePointer(mutating: asset)
            m.decimal_places = decimalPlaces
            return packed(&m)
        }
    }

    static func createWallet(_ walletID: String) -> [UInt8] {
        walletID.withCString { walletID in
            var m = Wallet__V1__CreateWalletRequest()
            wallet__v1__create_wallet_request__init(&m)
            m.wallet_id = UnsafeMutablePointer(mutating: walletID)
            return packed(&m)
        }
    }

    static func credit(transactionID: String, walletID: String, asset: String, amount: Int64) -> [UInt8] {
        withCStrings(transactionID, walletID, asset) { transactionID, walletID, asset in
            var m = Wallet__V1__CreditRequest()
            wallet__v1__credit_request__init(&m)
            m.transaction_id = transactionID
            m.wallet_id = walletID
            m.asset = asset
            m.amount = amount
            return packed(&m)
        }
    }

    static func debit(transactionID: String, walletID: String, asset: String, amount: Int64) -> [UInt8] {
        withCStrings(transactionID, walletID, asset) { transactionID, walletID, asset in
            var m = Wallet__V1__DebitRequest()
            wallet__v1__debit_request__init(&m)
            m.transaction_id = transactionID
            m.wallet_id = walletID
            m.asset = asset
            m.amount = amount
            return packed(&m)
        }
    }

    static func authorize(
        transactionID: String, walletID: String, asset: String, amount: Int64, expiresInMilliseconds: Int64
    ) -> [UInt8] {
        withCStrings(transactionID, walletID, asset) { transactionID, walletID, asset in
            var m = Wallet__V1__AuthorizeRequest()
            wallet__v1__authorize_request__init(&m)
            m.transaction_id = transactionID
            m.wallet_id = walletID
            m.asset = asset
            m.amount = amount
            m.expires_in_ms = expiresInMilliseconds
            return packed(&m)
        }
    }

    /// Captures the whole hold; `destinationWalletID` empty means the house.
    static func settle(transactionID: String, authorizationID: String, destinationWalletID: String) -> [UInt8] {
        withCStrings(transactionID, authorizationID, destinationWalletID) {
            transactionID, authorizationID, destination in
            var m = Wallet__V1__SettleRequest()
            wallet__v1__settle_request__init(&m)
            m.transaction_id = transactionID
            m.authorization_id = authorizationID
            m.destination_wallet_id = destination
            return packed(&m)
        }
    }

    static func rollback(transactionID: String, targetTransactionID: String) -> [UInt8] {
        withCStrings(transactionID, targetTransactionID, "") { transactionID, target, _ in
            var m = Wallet__V1__RollbackRequest()
            wallet__v1__rollback_request__init(&m)
            m.transaction_id = transactionID
            m.target_transaction_id = target
            return packed(&m)
        }
    }

    static func transfer(
        transactionID: String, fromWalletID: String, toWalletID: String, asset: String, amount: Int64
    ) -> [UInt8] {
        withCStrings(transactionID, fromWalletID, toWalletID) { transactionID, from, to in
            asset.withCString { asset in
                var m = Wallet__V1__TransferRequest()
                wallet__v1__transfer_request__init(&m)
                m.transaction_id = transactionID
                m.from_wallet_id = from
                m.to_wallet_id = to
                m.asset = UnsafeMutablePointer(mutating: asset)
                m.amount = amount
                return packed(&m)
            }
        }
    }

    static func getBalance(walletID: String, asset: String) -> [UInt8] {
        withCStrings(walletID, asset, "") { walletID, asset, _ in
            var m = Wallet__V1__GetBalanceRequest()
            wallet__v1__get_balance_request__init(&m)
            m.wallet_id = walletID
            m.asset = asset
            return packed(&m)
        }
    }

    /// An empty HealthCheckRequest (service "": the whole server).
    static func healthCheck() -> [UInt8] {
        var m = Grpc__Health__V1__HealthCheckRequest()
        grpc__health__v1__health_check_request__init(&m)
        return packed(&m)
    }

    private static func withCStrings<R>(
        _ a: String, _ b: String, _ c: String,
        _ body: (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>) -> R
    ) -> R {
        a.withCString { a in
            b.withCString { b in
                c.withCString { c in
                    body(
                        UnsafeMutablePointer(mutating: a), UnsafeMutablePointer(mutating: b),
                        UnsafeMutablePointer(mutating: c))
                }
            }
        }
    }

    /// protobuf-c only reads the strings while packing.
    private static func packed<M>(_ message: inout M) -> [UInt8] {
        withUnsafeMutablePointer(to: &message) { pointer in
            pointer.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { base in
                let size = protobuf_c_message_get_packed_size(base)
                return [UInt8](unsafeUninitializedCapacity: max(size, 1)) { buffer, count in
                    count = size > 0 ? protobuf_c_message_pack(base, buffer.baseAddress) : 0
                    precondition(count == size, "protobuf-c packed \(count) of \(size) bytes")
                }
            }
        }
    }
}
