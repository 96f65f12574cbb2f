import Foundation
import Testing
import TrellisProto

@testable import TrellisControlPlane

/// The inbox between executors and the scheduler: nothing lost, batches of
/// whatever has arrived, a clean end.
@Suite struct ExecutorEventInboxTests {
    private func event(_ n: Int) -> ExecutorEventRecord {
        var event = Trellis_V1_ExecutorEvent()
        event.attempt.attemptID = "\(n).\(n)"
        return ExecutorEventRecord(executor: "x", event: event)
    }

    @Test func takesEverythingPostedInOrderInBatches() async {
        let inbox = ExecutorEventInbox()
        for n in 0..<10 { inbox.post(event(n)) }
        let first = await inbox.take(maximum: 4)
        let rest = await inbox.take()
        #expect(first?.map(\.event.attempt.attemptID) == ["0.0", "1.1", "2.2", "3.3"])
        #expect(rest?.map(\.event.attempt.attemptID) == (4..<10).map { "\($0).\($0)" })
        #expect(inbox.count == 0)
    }

    @Test func aWaitingTakerWakesOnPostAndEndsOnFinish() async {
        let inbox = ExecutorEventInbox()
        let taker = Task { () -> [Int] in
            var sizes: [Int] = []
            while let batch = await inbox.take() { sizes.append(batch.count) }
            return sizes
        }
        // Posts from many threads at once, as plugins do.
        await withTaskGroup(of: Void.self) { group in
            for n in 0..<1_000 { group.addTask { inbox.post(self.event(n)) } }
        }
        inbox.finish()
        let sizes = await taker.value
        #expect(sizes.reduce(0, +) == 1_000)
        inbox.post(event(1))  // after finish: ignored
        #expect(await inbox.take() == nil)
    }

    @Test func cancellingTheTakerEndsItsWait() async {
        let inbox = ExecutorEventInbox()
        let taker = Task { await inbox.take() }
        try? await Task.sleep(for: .milliseconds(20))
        taker.cancel()
        #expect(await taker.value == nil)
    }
}
