import Testing
import WalletDomain
import WalletProto

@testable import WalletGRPC

/// A transaction's `caller` reaches the wire: the identity that wrote it,
/// and the empty string when the call carried none.
@Test(arguments: ["spiffe://casino/game-service", ""])
func aTransactionCarriesItsCaller(caller: String) throws {
    let record = TransactionRecord(
        id: "t1", kind: .credit, status: .posted, walletID: "alice", asset: "USD", amount: 5, createdAt: 1,
        caller: caller)
    let bytes = Responses.transaction(record)
    let response = try #require(
        bytes.withUnsafeBufferPointer { wallet__v1__get_transaction_response__unpack(nil, $0.count, $0.baseAddress) })
    defer { wallet__v1__get_transaction_response__free_unpacked(response, nil) }
    let transaction = try #require(response.pointee.transaction)
    #expect(String(cString: transaction.pointee.caller) == caller)
    #expect(String(cString: transaction.pointee.transaction_id) == "t1")
}
