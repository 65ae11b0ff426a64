import Testing
import WalletDomain

@testable import WalletPostgres

/// How many queued reads one worker cycle takes: at most a batch of them,
/// and they share a budget of rows, so a run of large history pages cannot
/// hold a lane's writes up for long.
@Suite struct GroupedReadBudgetTests {
    static func balance() -> GroupedRead {
        .balance(PendingBalanceRead(walletID: "w", asset: "", deadline: nil) { _ in })
    }

    static func page(_ limit: Int) -> GroupedRead {
        .history(PendingHistoryRead(walletID: "w", limit: limit, before: nil, deadline: nil) { _ in })
    }

    @Test func singleRowReadsTakeUpToABatch() {
        let queued = Array(repeating: Self.balance(), count: 600)
        #expect(StoreWorker.groupedReadsToTake(queued, countMax: 512, rowBudget: 4096) == 512)
        #expect(StoreWorker.groupedReadsToTake(queued, countMax: 512, rowBudget: 300) == 300)
        #expect(StoreWorker.groupedReadsToTake(Array(queued.prefix(10)), countMax: 512, rowBudget: 4096) == 10)
        #expect(StoreWorker.groupedReadsToTake([], countMax: 512, rowBudget: 4096) == 0)
    }

    @Test func pagesWeighTheRowsTheyMayReturn() {
        // Each page of 99 may bring back 100 rows (one more tells whether a
        // next page exists): five fit in 512, the sixth waits for the next cycle.
        let queued = Array(repeating: Self.page(99), count: 8)
        #expect(StoreWorker.groupedReadsToTake(queued, countMax: 512, rowBudget: 512) == 5)
        // Order is kept: a page past the budget stops the take even when a
        // smaller read behind it would fit.
        #expect(
            StoreWorker.groupedReadsToTake(
                [Self.page(400), Self.page(400), Self.balance()], countMax: 512, rowBudget: 512) == 1)
    }

    @Test func aPageLargerThanTheBudgetStillGetsItsTurn() {
        #expect(StoreWorker.groupedReadsToTake([Self.page(1000), Self.balance()], countMax: 512, rowBudget: 512) == 1)
    }
}
