import Foundation
import PodPerTask
import Testing
import TrellisKube

/// Reading a Pod's status: what ends a task and how.
@Suite struct PodAssessmentTests {
    static func pod(_ status: String) throws -> Pod {
        try JSONDecoder().decode(Pod.self, from: Data("""
            {"apiVersion":"v1","kind":"Pod","metadata":{"name":"p-abcdefgh","namespace":"ns"},
             "spec":{"containers":[{"name":"base","image":"ubuntu:22.04"}],"nodeName":"node-1"},
             "status":\(status)}
            """.utf8))
    }

    func assess(_ status: String, expired: Bool = false) throws -> PodAssessment {
        PodAssessment.assess(try Self.pod(status), startupExpired: expired, startupTimeoutSeconds: 120)
    }

    @Test func succeededAndFailedContainers() throws {
        let done = try assess(#"{"phase":"Succeeded","containerStatuses":[{"name":"base","state":{"terminated":{"exitCode":0,"reason":"Completed","finishedAt":"2026-11-26T04:00:05Z"}}}]}"#)
        #expect(done == .ended(PodEnding(succeeded: true, exitCode: 0, reason: "Completed", message: "container base of pod p-abcdefgh completed", finishedAt: "2026-11-26T04:00:05Z")))

        guard case .ended(let oom) = try assess(#"{"phase":"Failed","containerStatuses":[{"name":"base","state":{"terminated":{"exitCode":137,"reason":"OOMKilled","finishedAt":"2026-11-26T04:00:05Z"}}}]}"#) else {
            Issue.record("an OOMKilled pod did not end its task"); return
        }
        #expect(!oom.succeeded)
        #expect(oom.exitCode == 137)
        #expect(oom.reason == "OOMKilled")
        #expect(oom.message.contains("exited with code 137 (OOMKilled)"))
        #expect(oom.message.contains("more memory than its limit"))

        guard case .ended(let error) = try assess(#"{"phase":"Failed","containerStatuses":[{"name":"base","state":{"terminated":{"exitCode":3,"reason":"Error","message":"disk full"}}}]}"#) else {
            Issue.record("a failed pod did not end its task"); return
        }
        #expect(error.exitCode == 3)
        #expect(error.reason == "Error")
        #expect(error.message.hasSuffix(": disk full"))
    }

    @Test func failedPodWithoutContainerStateSaysWhy() throws {
        guard case .ended(let evicted) = try assess(#"{"phase":"Failed","reason":"Evicted","message":"The node was low on resource: memory."}"#) else {
            Issue.record("an evicted pod did not end its task"); return
        }
        #expect(evicted.reason == "Evicted")
        #expect(evicted.exitCode == nil)
        #expect(evicted.message.contains("low on resource"))
    }

    @Test func runningAndStarting() throws {
        #expect(try assess(#"{"phase":"Running","containerStatuses":[{"name":"base","state":{"running":{"startedAt":"2026-11-26T04:00:00Z"}}}]}"#) == .running(node: "node-1"))
        #expect(try assess(#"{"phase":"Pending","containerStatuses":[{"name":"base","state":{"waiting":{"reason":"ContainerCreating"}}}]}"#) == .starting(waitingFor: "ContainerCreating"))
        #expect(try assess(#"{"phase":"Pending"}"#) == .starting(waitingFor: "Pending"))
    }

    @Test(arguments: ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError"])
    func fatalWaitingReasonsFailAtOnce(reason: String) throws {
        let status = #"{"phase":"Pending","containerStatuses":[{"name":"base","image":"registry.invalid/x:1","state":{"waiting":{"reason":"\#(reason)","message":"pull access denied"}}}]}"#
        guard case .ended(let ending) = try assess(status) else { Issue.record("\(reason) did not end the task"); return }
        #expect(!ending.succeeded)
        #expect(ending.reason == reason)
        #expect(ending.message.contains("cannot start: \(reason) for image registry.invalid/x:1: pull access denied"))
    }

    @Test func unschedulableWaitsForTheStartupTimeout() throws {
        let status = #"{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable","message":"0/3 nodes are available: 3 Insufficient cpu."}]}"#
        #expect(try assess(status) == .starting(waitingFor: "Unschedulable"))
        guard case .ended(let ending) = try assess(status, expired: true) else { Issue.record("an unschedulable pod outlived its startup timeout"); return }
        #expect(ending.reason == "Unschedulable")
        #expect(ending.message.contains("not scheduled within 120 s: 0/3 nodes are available"))
    }

    @Test func slowPullsEndAtTheStartupTimeout() throws {
        let status = #"{"phase":"Pending","containerStatuses":[{"name":"base","state":{"waiting":{"reason":"ContainerCreating"}}}]}"#
        guard case .ended(let ending) = try assess(status, expired: true) else { Issue.record("a pending pod outlived its startup timeout"); return }
        #expect(ending.reason == "StartupTimeout")
        #expect(ending.message.contains("still ContainerCreating"))
        // A running pod is past starting: the startup timeout no longer applies.
        #expect(try assess(#"{"phase":"Running"}"#, expired: true) == .running(node: "node-1"))
    }
}
