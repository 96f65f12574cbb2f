import ScaledPool
import Testing
import TrellisPluginKit

/// The scaling decisions, driven with made-up times (no sleeping): scale
/// out at once, cooldown, max, min, busy-aware scale-in, released victims.
@Suite struct AutoscalerTests {
    static let second: Int64 = 1_000_000

    /// The seed ScaledObject's numbers: polling 10 s, cooldown 30 s, max 10,
    /// min 0, 4 tasks a worker.
    func scaler(min: Int = 0, max: Int = 10) -> Autoscaler {
        Autoscaler(configuration: .init(minReplicas: min, maxReplicas: max, tasksPerWorker: 4, pollingIntervalSeconds: 10, cooldownSeconds: 30))
    }

    static func idle(_ names: String...) -> [Autoscaler.Worker] { names.map { .init(name: $0, busy: false) } }

    @Test func desiredIsTheCeilingOfLoadOverTasksPerWorkerWithinMinAndMax() {
        let autoscaler = scaler(min: 1, max: 10)
        #expect(autoscaler.desired(queued: 0, running: 0) == 1)
        #expect(autoscaler.desired(queued: 1, running: 0) == 1)
        #expect(autoscaler.desired(queued: 4, running: 1) == 2)
        #expect(autoscaler.desired(queued: 3, running: 5) == 2)
        #expect(autoscaler.desired(queued: 200, running: 0) == 10)
        #expect(scaler().desired(queued: 0, running: 0) == 0)
    }

    @Test func pollsAreDueEveryPollingInterval() {
        var autoscaler = scaler()
        #expect(autoscaler.isDue(0))
        _ = autoscaler.poll(now: 0, queued: 0, running: 0, replicas: 0, workers: [])
        #expect(!autoscaler.isDue(9 * Self.second))
        #expect(autoscaler.isDue(10 * Self.second))
    }

    @Test func scalesOutAtOnceAndNoFurtherThanMax() {
        var autoscaler = scaler()
        #expect(autoscaler.poll(now: 0, queued: 9, running: 0, replicas: 0, workers: []) == [.scaleOut(to: 3)])
        // 200 queued: the maximum, at the next poll, with no waiting.
        #expect(autoscaler.poll(now: 10 * Self.second, queued: 200, running: 0, replicas: 3, workers: Self.idle("a", "b", "c")) == [.scaleOut(to: 10)])
        #expect(autoscaler.poll(now: 20 * Self.second, queued: 170, running: 30, replicas: 10, workers: []) == [])
    }

    @Test func scalesInOnlyAfterTheCooldownAndToTheWindowsHighest() {
        var autoscaler = scaler()
        let workers = (1...8).map { Autoscaler.Worker(name: "w\($0)", busy: false) }
        #expect(autoscaler.poll(now: 0, queued: 32, running: 0, replicas: 0, workers: []) == [.scaleOut(to: 8)])
        // The load falls to 2 workers' worth: nothing for 30 s.
        #expect(autoscaler.poll(now: 10 * Self.second, queued: 0, running: 8, replicas: 8, workers: workers) == [])
        #expect(autoscaler.poll(now: 20 * Self.second, queued: 0, running: 8, replicas: 8, workers: workers) == [])
        #expect(autoscaler.poll(now: 30 * Self.second, queued: 0, running: 8, replicas: 8, workers: workers) == [])
        // 30 s after the last high poll (t=0): down to the window's highest, 2.
        let actions = autoscaler.poll(now: 40 * Self.second, queued: 0, running: 8, replicas: 8, workers: workers)
        #expect(actions == [.scaleIn(to: 2, victims: ["w1", "w2", "w3", "w4", "w5", "w6"])])
    }

    /// Real polls come a little late each time (a tick, then the API): the
    /// window must still fill. Found by the end-to-end test, which never
    /// scaled in with 1.009 s polls and a 5 s cooldown.
    @Test func latePollsStillScaleInAfterTheCooldown() {
        var autoscaler = Autoscaler(configuration: .init(minReplicas: 0, maxReplicas: 10, tasksPerWorker: 4, pollingIntervalSeconds: 1, cooldownSeconds: 5))
        let workers = Self.idle("a", "b")
        _ = autoscaler.poll(now: 0, queued: 8, running: 0, replicas: 2, workers: workers)
        var scaledInAt: Int?
        for step in 1...20 where scaledInAt == nil {
            let actions = autoscaler.poll(now: Int64(step) * 1_009_000, queued: 0, running: 0, replicas: 2, workers: workers)
            if actions == [.scaleIn(to: 0, victims: ["a", "b"])] { scaledInAt = step }
        }
        // The high poll (t=0) leaves the 5 s window at the fifth late poll (5.045 s).
        #expect(scaledInAt == 5)
    }

    @Test func aBriefDipDoesNotScaleIn() {
        var autoscaler = scaler()
        let workers = Self.idle("a", "b", "c")
        _ = autoscaler.poll(now: 0, queued: 12, running: 0, replicas: 0, workers: [])
        for step in 1...6 {
            // Every third poll is busy again: the window always holds a 3.
            let queued = step % 3 == 0 ? 12 : 0
            let actions = autoscaler.poll(now: Int64(step) * 10 * Self.second, queued: queued, running: 0, replicas: 3, workers: workers)
            #expect(actions.allSatisfy { if case .scaleIn = $0 { false } else { true } }, "step \(step): \(actions)")
        }
    }

    @Test func neverNamesABusyWorker() {
        var autoscaler = scaler()
        let workers = [
            Autoscaler.Worker(name: "a", busy: true), Autoscaler.Worker(name: "b", busy: false),
            Autoscaler.Worker(name: "c", busy: true), Autoscaler.Worker(name: "d", busy: false, draining: true),
        ]
        _ = autoscaler.poll(now: 0, queued: 0, running: 2, replicas: 4, workers: workers)
        _ = autoscaler.poll(now: 10 * Self.second, queued: 0, running: 2, replicas: 4, workers: workers)
        _ = autoscaler.poll(now: 20 * Self.second, queued: 0, running: 2, replicas: 4, workers: workers)
        // Desired is 1 but only b is idle (d is already draining): one step, b.
        #expect(autoscaler.poll(now: 30 * Self.second, queued: 0, running: 2, replicas: 4, workers: workers) == [.scaleIn(to: 3, victims: ["b"])])
        // All that is left is busy: nothing more, however long.
        let busy = [Autoscaler.Worker(name: "a", busy: true), Autoscaler.Worker(name: "c", busy: true)]
        #expect(autoscaler.poll(now: 40 * Self.second, queued: 0, running: 2, replicas: 3, workers: busy + [.init(name: "b", busy: false)]) == [])
        #expect(autoscaler.poll(now: 50 * Self.second, queued: 0, running: 2, replicas: 2, workers: busy) == [])
        // They finish. One worker's worth of load (the two tasks) has been
        // the highest for 30 s: down to 1 at once, by an idle worker.
        let done = Self.idle("a", "c")
        #expect(autoscaler.poll(now: 60 * Self.second, queued: 0, running: 0, replicas: 2, workers: done) == [.scaleIn(to: 1, victims: ["a"])])
        // To the minimum only when the last of that load is 30 s old (t=50).
        #expect(autoscaler.poll(now: 70 * Self.second, queued: 0, running: 0, replicas: 1, workers: Self.idle("c")) == [])
        #expect(autoscaler.poll(now: 80 * Self.second, queued: 0, running: 0, replicas: 1, workers: Self.idle("c")) == [])
        #expect(autoscaler.poll(now: 90 * Self.second, queued: 0, running: 0, replicas: 1, workers: Self.idle("c")) == [.scaleIn(to: 0, victims: ["c"])])
    }

    @Test func keepsTheMinimum() {
        var autoscaler = scaler(min: 2)
        #expect(autoscaler.poll(now: 0, queued: 0, running: 0, replicas: 0, workers: []) == [.scaleOut(to: 2)])
        // Someone set 4 replicas: after 30 s of no load, back to 2, never below.
        for step in 1...10 {
            let actions = autoscaler.poll(
                now: Int64(step) * 10 * Self.second, queued: 0, running: 0, replicas: step <= 3 ? 4 : 2,
                workers: step <= 3 ? Self.idle("a", "b", "c", "d") : Self.idle("c", "d"))
            if step == 3 { #expect(actions == [.scaleIn(to: 2, victims: ["a", "b"])]) } else { #expect(actions == [], "step \(step)") }
        }
    }

    @Test func aVictimStillServingLongAfterIsReleased() {
        var autoscaler = scaler()
        let workers = Self.idle("a", "b")
        _ = autoscaler.poll(now: 0, queued: 0, running: 0, replicas: 2, workers: workers)
        _ = autoscaler.poll(now: 10 * Self.second, queued: 0, running: 0, replicas: 2, workers: workers)
        _ = autoscaler.poll(now: 20 * Self.second, queued: 0, running: 0, replicas: 2, workers: workers)
        #expect(autoscaler.poll(now: 30 * Self.second, queued: 0, running: 0, replicas: 2, workers: workers) == [.scaleIn(to: 0, victims: ["a", "b"])])
        // a goes; b stays (the ReplicaSet removed another pod) and is released
        // once releaseAfter (30 s here) has passed.
        #expect(autoscaler.poll(now: 40 * Self.second, queued: 0, running: 0, replicas: 0, workers: Self.idle("b")) == [])
        #expect(autoscaler.victims.keys.sorted() == ["b"])
        #expect(autoscaler.poll(now: 70 * Self.second, queued: 0, running: 0, replicas: 0, workers: Self.idle("b")) == [.release(["b"])])
        #expect(autoscaler.victims.isEmpty)
    }

    @Test func loadReturningReleasesVictimsAndScalesOut() {
        var autoscaler = scaler()
        let workers = Self.idle("a", "b")
        for step in 0...2 { _ = autoscaler.poll(now: Int64(step) * 10 * Self.second, queued: 0, running: 0, replicas: 2, workers: workers) }
        #expect(autoscaler.poll(now: 30 * Self.second, queued: 0, running: 0, replicas: 2, workers: workers) == [.scaleIn(to: 0, victims: ["a", "b"])])
        // Still there, not yet draining, when work arrives again.
        #expect(autoscaler.poll(now: 40 * Self.second, queued: 8, running: 0, replicas: 0, workers: workers) == [.release(["a", "b"]), .scaleOut(to: 2)])
    }

    @Test func aDrainingVictimIsLeftToGo() {
        var autoscaler = scaler()
        let workers = Self.idle("a")
        for step in 0...2 { _ = autoscaler.poll(now: Int64(step) * 10 * Self.second, queued: 0, running: 0, replicas: 1, workers: workers) }
        #expect(autoscaler.poll(now: 30 * Self.second, queued: 0, running: 0, replicas: 1, workers: workers) == [.scaleIn(to: 0, victims: ["a"])])
        let draining = [Autoscaler.Worker(name: "a", busy: false, draining: true)]
        #expect(autoscaler.poll(now: 100 * Self.second, queued: 0, running: 0, replicas: 0, workers: draining) == [])
        #expect(autoscaler.poll(now: 110 * Self.second, queued: 0, running: 0, replicas: 0, workers: []) == [])
        #expect(autoscaler.victims.isEmpty)
    }

    @Test func settingsDefaultsAndErrors() throws {
        let defaults = try ScalerSettings.parse([:], executor: "scaled-pool").get()
        #expect(defaults == ScalerSettings())
        #expect(defaults.pollingIntervalSeconds == 10 && defaults.cooldownSeconds == 30 && defaults.maxReplicas == 10)
        #expect(defaults.minReplicas == 0 && defaults.tasksPerWorker == 4 && defaults.deployment == "trellis-worker")
        let set = try ScalerSettings.parse(["deployment": .string("workers"), "max_replicas": .integer(3), "autoscale": .boolean(false)], executor: "scaled-pool").get()
        #expect(set.deployment == "workers" && set.maxReplicas == 3 && !set.autoscale)
        guard case .failure(let error) = ScalerSettings.parse(["min_replicas": .integer(5), "max_replicas": .integer(2)], executor: "scaled-pool") else {
            Issue.record("min above max was accepted"); return
        }
        #expect(error.message == "scaled-pool: min_replicas (5) is above max_replicas (2)")
        guard case .failure(let bad) = ScalerSettings.parse(["tasks_per_worker": .integer(0)], executor: "scaled-pool") else {
            Issue.record("0 tasks per worker was accepted"); return
        }
        #expect(bad.message.contains("setting 'tasks_per_worker' must be a whole number from 1 to 10000, got the number 0"))
    }
}
