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
        #expect(first?.records.map(\.event.attempt.attemptID) == ["0.0", "1.1", "2.2", "3.3"])
        #expect(rest?.records.map(\.event.attempt.attemptID) == (4..<10).map { "\($0).\($0)" })
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

    /// A post that waits is answered only when every batch carrying its
    /// events was settled, and says whether all were recorded.
    @Test func aWaitingPostLearnsWhetherItsEventsWereRecorded() async {
        let inbox = ExecutorEventInbox()
        let recorded = Task { await inbox.postAndWait((0..<5).map(self.event)) }
        while inbox.count < 5 { await Task.yield() }
        let failed = Task { await inbox.postAndWait([self.event(9)]) }
        while inbox.count < 6 { await Task.yield() }
        // The first post spans two batches; it is answered after both.
        let first = await inbox.take(maximum: 3)!
        let second = await inbox.take(maximum: 2)!
        let third = await inbox.take()!
        #expect(third.records.map(\.event.attempt.attemptID) == ["9.9"])
        inbox.settle(first, recorded: true)
        inbox.settle(third, recorded: false)
        #expect(await failed.value == false)
        inbox.settle(second, recorded: true)
        #expect(await recorded.value == true)
    }

    /// A batch the database refused: plugins' starts and ends go back in
    /// front of what came since; their log chunks, and everything an agent
    /// posted (it is told, and reports again), do not.
    @Test func aFailedBatchPutsBackThePluginsStartsAndEndsFirst() async {
        let inbox = ExecutorEventInbox()
        func with(_ n: Int, _ kind: String) -> ExecutorEventRecord {
            var record = event(n)
            switch kind {
            case "started": record.event.started = Trellis_V1_AttemptStarted()
            case "finished": record.event.finished = Trellis_V1_AttemptFinished()
            default: record.event.log = Trellis_V1_LogChunk()
            }
            return record
        }
        inbox.post(with(1, "started"))
        inbox.post(with(1, "log"))
        inbox.post(with(2, "finished"))
        let agent = Task { await inbox.postAndWait([with(3, "finished")]) }
        while inbox.count < 4 { await Task.yield() }
        let failed = await inbox.take()!
        inbox.post(with(4, "finished"))  // arrives meanwhile
        inbox.settle(failed, recorded: false)
        #expect(await agent.value == false)
        #expect(inbox.requeueAfterFailure(failed) == 2)
        let again = await inbox.take()!
        #expect(again.records.map(\.event.attempt.attemptID) == ["1.1", "2.2", "4.4"])
        // Nothing comes back once the inbox has finished.
        inbox.finish()
        #expect(inbox.requeueAfterFailure(again) == 0)
    }

    @Test func finishingAnswersWaitingPostsWithFalse() async {
        let inbox = ExecutorEventInbox()
        let post = Task { await inbox.postAndWait([self.event(1)]) }
        while inbox.count < 1 { await Task.yield() }
        inbox.finish()
        #expect(await post.value == false)
        #expect(await inbox.postAndWait([self.event(2)]) == false)
    }

    @Test func cancellingTheTakerEndsItsWait() async {
        let inbox = ExecutorEventInbox()
        let taker = Task { await inbox.take() }
        try? await Task.sleep(for: .milliseconds(20))
        taker.cancel()
        #expect(await taker.value == nil)
    }
}
