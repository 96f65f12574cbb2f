import Foundation
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisWire

/// Task-instance actions: clear and mark.
extension TrellisAPIService {
    func clearTasks(_ request: Trellis_V1_ClearTasksRequest, _ caller: APICaller) async throws -> Trellis_V1_ClearTasksResponse {
        let run = try await requireRun(dagID: request.dagID, runID: request.runID)
        guard !request.taskIds.isEmpty else { throw WireError(.invalidArgument, "task_ids is empty: name the tasks to clear") }
        try await requireTasks(request.taskIds, of: run)
        let result = try await store.clearTasks(
            runID: run.id, taskIDs: request.taskIds, downstream: request.downstream, onlyFailed: request.onlyFailed)
        cancel(result.inFlight, reason: "cleared by \(caller.name.isEmpty ? "a user" : caller.name)")
        if !result.applied.isEmpty { await runChanged(run.id) }
        var response = Trellis_V1_ClearTasksResponse()
        response.cleared = result.changedTaskIDs
        return response
    }

    func markTask(_ request: Trellis_V1_MarkTaskRequest, _ caller: APICaller) async throws -> Trellis_V1_MarkTaskResponse {
        guard request.state == .success || request.state == .failed else {
            throw WireError(.invalidArgument, "a task is marked SUCCESS or FAILED, not \(request.state)")
        }
        let run = try await requireRun(dagID: request.dagID, runID: request.runID)
        guard !request.taskID.isEmpty else { throw WireError(.invalidArgument, "task_id is empty") }
        let spec = try await requireTasks([request.taskID], of: run)
        let result = try await store.markTask(runID: run.id, taskID: request.taskID, state: request.state == .success ? .success : .failed)
        cancel(result.inFlight, reason: "marked \(request.state == .success ? "success" : "failed") by \(caller.name.isEmpty ? "a user" : caller.name)")
        if !result.applied.isEmpty { await runChanged(run.id) }
        let rows = try await store.taskGrid(runID: run.id)
        var response = Trellis_V1_MarkTaskResponse()
        if let task = APIMapping.grid(rows, spec: spec, defaultExecutor: settings.defaultExecutor).first(where: { $0.taskID == request.taskID }) {
            response.task = task
        }
        return response
    }

    /// The spec of the run's DAG version, after checking every task id is
    /// in it (NOT_FOUND with "did you mean" otherwise).
    @discardableResult
    func requireTasks(_ taskIDs: [String], of run: DagRunRecord) async throws -> Trellis_V1_DagSpec {
        let spec = try await store.dagSpec(run.dagID, version: run.dagVersion)
        let known = spec.tasks.map(\.taskID)
        for taskID in taskIDs where !known.contains(taskID) {
            throw APIErrors.notFound("task", taskID, known: known, in: " in DAG '\(run.dagID)' version \(run.dagVersion)")
        }
        return spec
    }
}
