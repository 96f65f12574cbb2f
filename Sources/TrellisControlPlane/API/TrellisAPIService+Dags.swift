import Foundation
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisWire

/// DAG methods: submit, list, get, pause, delete.
extension TrellisAPIService {
    func submitDag(_ request: Trellis_V1_SubmitDagRequest, _ caller: APICaller) async throws -> Trellis_V1_SubmitDagResponse {
        let file = request.fileName.isEmpty ? "<submitted>" : request.fileName
        let dag: DagDefinition
        do {
            dag = try DagFile.parse(request.yaml, file: file, options: .init(defaultExecutor: settings.defaultExecutor))
        } catch {
            throw Self.validationError(error.problems)
        }
        let stored = try await store.submitDag(dag, sourceFile: request.fileName, pausedIfNew: request.paused)
        var response = Trellis_V1_SubmitDagResponse()
        response.dagID = stored.dagID
        response.version = Int32(stored.version)
        response.changed = stored.isNew
        response.taskCount = Int32(dag.spec.tasks.count)
        let pools = Dictionary(try await store.pools().map { ($0.name, $0.slots) }, uniquingKeysWith: { first, _ in first })
        response.warnings = PoolAdvice.submissionWarnings(dag.spec.tasks, pools: pools)
        return response
    }

    /// INVALID_ARGUMENT listing every problem, one per line, with the
    /// problems as a `ValidationProblems` in the details.
    static func validationError(_ problems: [DagProblem]) -> WireError {
        var details = Trellis_V1_ValidationProblems()
        details.problems = problems.map { problem in
            var item = Trellis_V1_ValidationProblem()
            item.text = problem.description
            item.line = Int32(problem.line ?? 0)
            item.column = Int32(problem.column ?? 0)
            return item
        }
        let bytes = (try? details.serializedBytes()) ?? [UInt8]()
        return WireError(.invalidArgument, problems.map(\.description).joined(separator: "\n"), details: bytes)
    }

    func listDags(_ request: Trellis_V1_ListDagsRequest, _ caller: APICaller) async throws -> Trellis_V1_ListDagsResponse {
        let wanted = Set(request.tags)
        var response = Trellis_V1_ListDagsResponse()
        response.dags = try await store.dagSummaries()
            .filter { wanted.isSubset(of: $0.spec.tags) }
            .map(APIMapping.dagSummary)
        return response
    }

    func getDag(_ request: Trellis_V1_GetDagRequest, _ caller: APICaller) async throws -> Trellis_V1_GetDagResponse {
        let dag = try await requireDag(request.dagID)
        guard request.version >= 0 else { throw WireError(.invalidArgument, "version must be 0 (the latest) or positive, not \(request.version)") }
        let version = request.version == 0 ? dag.latestVersion : Int(request.version)
        guard version <= dag.latestVersion else {
            throw WireError(.notFound, "DAG '\(dag.dagID)' has no version \(version) (versions 1 to \(dag.latestVersion))")
        }
        guard let summary = try await store.dagSummaries(dagID: dag.dagID).first else {
            throw WireError(.notFound, "DAG '\(dag.dagID)' was deleted meanwhile")
        }
        var response = Trellis_V1_GetDagResponse()
        response.dag = APIMapping.dagSummary(summary)
        response.spec = try await store.dagSpec(dag.dagID, version: version)
        response.version = Int32(version)
        return response
    }

    func setDagPaused(_ request: Trellis_V1_SetDagPausedRequest, _ caller: APICaller) async throws -> Trellis_V1_SetDagPausedResponse {
        let dag = try await requireDag(request.dagID)
        var response = Trellis_V1_SetDagPausedResponse()
        response.changed = try await store.setPaused(dag.dagID, request.paused)
        if response.changed, !request.paused { await dagUnpaused(dag.dagID) }
        return response
    }

    func deleteDag(_ request: Trellis_V1_DeleteDagRequest, _ caller: APICaller) async throws -> Trellis_V1_DeleteDagResponse {
        let dag = try await requireDag(request.dagID)
        let deleted = try await store.deleteDag(dag.dagID)
        cancel(deleted.inFlight, reason: "DAG '\(dag.dagID)' was deleted")
        var response = Trellis_V1_DeleteDagResponse()
        response.deletedRuns = Int64(deleted.deletedRuns)
        return response
    }
}
