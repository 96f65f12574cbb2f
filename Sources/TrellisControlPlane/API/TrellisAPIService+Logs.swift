import Foundation
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisWire

/// `GetTaskLog`: one try's log chunks from the database, optionally
/// followed until the try ends.
extension TrellisAPIService {
    /// Chunks read per query.
    static let logBatch = 256

    func getTaskLog(
        _ request: Trellis_V1_GetTaskLogRequest, _ caller: APICaller, _ send: (Trellis_V1_TaskLogChunk) async throws -> Void
    ) async throws {
        let run = try await requireRun(dagID: request.dagID, runID: request.runID)
        guard request.tryNumber >= 0 else { throw WireError(.invalidArgument, "try_number must be 0 (the latest) or positive") }
        guard request.afterChunk >= 0 else { throw WireError(.invalidArgument, "after_chunk must be 0 (from the start) or positive") }
        try await requireTasks([request.taskID], of: run)
        guard let instance = try await store.taskInstances(runID: run.id).first(where: { $0.taskID == request.taskID }) else {
            throw WireError(.notFound, "task '\(request.taskID)' has no instance in run '\(run.runID)'")
        }
        let attempts = try await store.attempts(taskInstanceID: instance.id)
        let chosen: AttemptRecord?
        if request.tryNumber == 0 {
            chosen = attempts.last
        } else {
            chosen = attempts.last { $0.tryNumber == Int(request.tryNumber) }
        }
        guard let attempt = chosen else {
            let tries = Set(attempts.map(\.tryNumber)).sorted().map(String.init).joined(separator: ", ")
            throw WireError(.notFound, attempts.isEmpty
                ? "task '\(request.taskID)' of run '\(run.runID)' has not been tried yet (state \(instance.state.rawValue))"
                : "task '\(request.taskID)' of run '\(run.runID)' has no try \(request.tryNumber) (tries: \(tries))")
        }

        var after = Int(request.afterChunk)
        while true {
            // Whether the attempt had ended is read before its chunks, so an
            // ended attempt's last chunks are always in the read that follows.
            let ended = try await store.attempt(attempt.id).state == .ended
            let chunks = try await store.logChunks(attemptID: attempt.id, afterSequence: after, limit: Self.logBatch)
            for chunk in chunks {
                var item = Trellis_V1_TaskLogChunk()
                item.tryNumber = Int32(attempt.tryNumber)
                item.chunk = Int32(chunk.sequence)
                item.data = Data(chunk.data)
                try await send(item)
                after = chunk.sequence
            }
            if chunks.count == Self.logBatch { continue }
            if !request.follow || ended { return }
            try await Task.sleep(for: settings.pollInterval)
        }
    }
}
