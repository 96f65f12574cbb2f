import Foundation
import SwiftProtobuf
import Testing
import TrellisPluginSDK
import TrellisProto

/// The C plugin SDK (protoc-c code compiled by this package, linked against
/// libprotobuf-c) and swift-protobuf agree on the bytes of the messages that
/// cross the executor ABI, in both directions.
@Suite struct ProtobufCTests {
    @Test func eventPackedInCDecodesInSwift() throws {
        let arena = CStringArena()
        var attempt = Trellis__V1__AttemptRef()
        trellis__v1__attempt_ref__init(&attempt)
        attempt.attempt_id = arena.copy("att-7f3a")
        attempt.fencing_token = 9_007_199_254_740_993  // above 2^53: no double rounding anywhere

        var at = Trellis__V1__Timestamp()
        trellis__v1__timestamp__init(&at)
        at.unix_micros = -1_234_567  // before the epoch

        var finished = Trellis__V1__AttemptFinished()
        trellis__v1__attempt_finished__init(&finished)
        finished.outcome = TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_FAILED
        finished.exit_case = TRELLIS__V1__ATTEMPT_FINISHED__EXIT_SIGNAL
        finished.signal = 9
        finished.reason = arena.copy("OOMKilled")
        finished.message = arena.copy("container used more than 512Mi — ünïcødé")

        var event = Trellis__V1__ExecutorEvent()
        trellis__v1__executor_event__init(&event)
        let bytes = withUnsafeMutablePointer(to: &attempt) { attemptPointer in
            withUnsafeMutablePointer(to: &at) { atPointer in
                withUnsafeMutablePointer(to: &finished) { finishedPointer in
                    event.attempt = attemptPointer
                    event.at = atPointer
                    event.event_case = TRELLIS__V1__EXECUTOR_EVENT__EVENT_FINISHED
                    event.finished = finishedPointer
                    var out = [UInt8](repeating: 0, count: trellis__v1__executor_event__get_packed_size(&event))
                    let written = trellis__v1__executor_event__pack(&event, &out)
                    return Array(out.prefix(written))
                }
            }
        }

        let decoded = try Trellis_V1_ExecutorEvent(serializedBytes: bytes)
        #expect(decoded.attempt.attemptID == "att-7f3a")
        #expect(decoded.attempt.fencingToken == 9_007_199_254_740_993)
        #expect(decoded.at.unixMicros == -1_234_567)
        guard case .finished(let result) = decoded.event else {
            Issue.record("expected a finished event, got \(String(describing: decoded.event))")
            return
        }
        #expect(result.outcome == .failed)
        #expect(result.exit == .signal(9))
        #expect(result.reason == "OOMKilled")
        #expect(result.message == "container used more than 512Mi — ünïcødé")
        #expect(result.xcomJson.isEmpty)

        // The same message built in Swift has exactly the same bytes.
        var same = Trellis_V1_ExecutorEvent()
        same.attempt = .with { $0.attemptID = "att-7f3a"; $0.fencingToken = 9_007_199_254_740_993 }
        same.at = .with { $0.unixMicros = -1_234_567 }
        same.finished = .with {
            $0.outcome = .failed
            $0.signal = 9
            $0.reason = "OOMKilled"
            $0.message = "container used more than 512Mi — ünïcødé"
        }
        #expect(try same.serializedBytes() as [UInt8] == bytes)
    }

    @Test func assignmentSerializedInSwiftUnpacksInC() throws {
        var assignment = Trellis_V1_TaskAssignment()
        assignment.attempt = .with { $0.attemptID = "att-1"; $0.fencingToken = 3 }
        assignment.dagID = "example_using_k8s_pod_operator"
        assignment.runID = "scheduled__2020-08-07T01:00:00+00:00"
        assignment.taskID = "task-1-echo"
        assignment.tryNumber = 2
        assignment.task = .with {
            $0.taskID = "task-1-echo"
            $0.upstream = ["extract", "load"]
            $0.triggerRule = .noneFailedMinOneSuccess
            $0.executionTimeout = .with { $0.millis = 90_000 }
            $0.process = .with {
                $0.command = ["bash", "-c", "echo \"$GREETING\""]
                $0.env = [.with { $0.name = "GREETING"; $0.value = "hello" }]
                $0.workingDir = "/tmp"
                $0.queue = "gpu=true"
            }
        }
        let bytes: [UInt8] = try assignment.serializedBytes()

        let unpacked = try #require(bytes.withUnsafeBufferPointer {
            trellis__v1__task_assignment__unpack(nil, $0.count, $0.baseAddress)
        })
        defer { trellis__v1__task_assignment__free_unpacked(unpacked, nil) }

        let c = unpacked.pointee
        #expect(String(cString: c.attempt.pointee.attempt_id) == "att-1")
        #expect(c.attempt.pointee.fencing_token == 3)
        #expect(String(cString: c.dag_id) == "example_using_k8s_pod_operator")
        #expect(String(cString: c.run_id) == "scheduled__2020-08-07T01:00:00+00:00")
        #expect(c.try_number == 2)
        #expect(c.logical_date == nil)  // absent in Swift, absent in C

        let task = c.task.pointee
        #expect(String(cString: task.task_id) == "task-1-echo")
        #expect(strings(task.upstream, count: task.n_upstream) == ["extract", "load"])
        #expect(task.trigger_rule == TRELLIS__V1__TRIGGER_RULE__TRIGGER_RULE_NONE_FAILED_MIN_ONE_SUCCESS)
        #expect(task.execution_timeout.pointee.millis == 90_000)
        #expect(task.retry_delay == nil)
        #expect(task.spec_case == TRELLIS__V1__TASK_SPEC__SPEC_PROCESS)

        let process = task.process.pointee
        #expect(strings(process.command, count: process.n_command) == ["bash", "-c", "echo \"$GREETING\""])
        #expect(process.n_env == 1)
        #expect(String(cString: process.env[0]!.pointee.name) == "GREETING")
        #expect(String(cString: process.env[0]!.pointee.value) == "hello")
        #expect(String(cString: process.working_dir) == "/tmp")
        #expect(String(cString: process.queue) == "gpu=true")

        // Packing the unpacked C message again gives the very same bytes.
        var repacked = [UInt8](repeating: 0, count: trellis__v1__task_assignment__get_packed_size(unpacked))
        let written = trellis__v1__task_assignment__pack(unpacked, &repacked)
        #expect(Array(repacked.prefix(written)) == bytes)
    }

    @Test func garbageIsRejectedByBothSides() {
        // A field header announcing a 1 GiB length-delimited field with 3 bytes after it.
        let garbage: [UInt8] = [0x0A, 0x80, 0x80, 0x80, 0x80, 0x04, 0x01, 0x02, 0x03]
        let unpacked = garbage.withUnsafeBufferPointer {
            trellis__v1__task_assignment__unpack(nil, $0.count, $0.baseAddress)
        }
        #expect(unpacked == nil)
        #expect(throws: (any Error).self) { try Trellis_V1_TaskAssignment(serializedBytes: garbage) }
    }
}

/// The strings of a protoc-c repeated string field.
private func strings(_ pointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, count: Int) -> [String] {
    (0..<count).map { String(cString: pointer![$0]!) }
}

/// Owns C strings handed to protoc-c structs until the test ends.
private final class CStringArena {
    private var strings: [UnsafeMutablePointer<CChar>] = []

    func copy(_ string: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(string)!
        strings.append(copy)
        return copy
    }

    deinit { strings.forEach { free($0) } }
}
