import Foundation
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisWire

/// Run methods: trigger, list, get, cancel.
extension TrellisAPIService {
    func triggerRun(_ request: Trellis_V1_TriggerRunRequest, _ caller: APICaller) async throws -> Trellis_V1_TriggerRunResponse {
        let dag = try await requireDag(request.dagID)
        let conf = try Self.validatedConf(request.confJson)
        var response = Trellis_V1_TriggerRunResponse()
        if !request.runID.isEmpty, let existing = try await store.run(dagID: dag.dagID, runID: request.runID) {
            response.run = try await runMessage(existing)
            response.created = false
            return response
        }
        let logicalDate = request.hasLogicalDate ? APIMapping.date(request.logicalDate) : Date()
        let runID = request.runID.isEmpty ? RunIDs.generate(runType: DagRunType.manual.rawValue, logicalDate: logicalDate) : request.runID
        let outcome = await Self.result { [store] () async throws(PostgresError) in
            try await store.createRun(dagID: dag.dagID, logicalDate: logicalDate, runType: .manual, runID: runID, conf: conf)
        }
        if case .failure(let error) = outcome, error.sqlState == Self.invalidJSONState {
            // PostgreSQL's JSON is stricter than Foundation's (no trailing commas).
            throw WireError(.invalidArgument, "conf_json is not valid JSON: \(error.detail ?? error.message)")
        }
        let (run, created) = try outcome.get()
        response.run = try await runMessage(run)
        response.created = created
        if created { await runChanged(run.id) }
        return response
    }

    /// The outcome of a store call as a value (a `do`/`catch` with a pattern
    /// on a typed error crashes Swift 6.3's SIL ownership verifier here).
    static func result<T>(_ body: () async throws(PostgresError) -> T) async -> Result<T, PostgresError> {
        do {
            return .success(try await body())
        } catch {
            return .failure(error)
        }
    }

    /// SQLSTATE invalid_text_representation, what jsonb input raises.
    static let invalidJSONState = "22P02"

    /// The conf as a JSON object's text ("{}" when empty); INVALID_ARGUMENT
    /// with the parser's position otherwise.
    static func validatedConf(_ text: String) throws(WireError) -> String {
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return "{}" }
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
        } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? "\(error)"
            throw WireError(.invalidArgument, "conf_json is not valid JSON: \(reason)")
        }
        guard value is [String: Any] else {
            throw WireError(.invalidArgument, "conf_json must be a JSON object ({\"key\": value, …}), not \(text.prefix(40))")
        }
        return text
    }

    func listRuns(_ request: Trellis_V1_ListRunsRequest, _ caller: APICaller) async throws -> Trellis_V1_ListRunsResponse {
        guard request.limit >= 0 else { throw WireError(.invalidArgument, "limit must be 0 (the default, 100) or positive, not \(request.limit)") }
        let state = try APIMapping.runState(request.state)
        if !request.dagID.isEmpty { _ = try await requireDag(request.dagID) }
        let limit = min(request.limit == 0 ? 100 : Int(request.limit), settings.maximumRunsListed)
        let runs = try await store.listRuns(dagID: request.dagID.isEmpty ? nil : request.dagID, state: state, limit: limit)
        let counts = try await store.taskCounts(runIDs: runs.map(\.id))
        var response = Trellis_V1_ListRunsResponse()
        response.runs = runs.map { APIMapping.run($0, counts: counts[$0.id] ?? [:]) }
        return response
    }

    func getRun(_ request: Trellis_V1_GetRunRequest, _ caller: APICaller) async throws -> Trellis_V1_GetRunResponse {
        let run = try await requireRun(dagID: request.dagID, runID: request.runID)
        return try await runSnapshot(run, spec: try await store.dagSpec(run.dagID, version: run.dagVersion))
    }

    /// The run and its grid in the DAG's task order.
    func runSnapshot(_ run: DagRunRecord, spec: Trellis_V1_DagSpec) async throws -> Trellis_V1_GetRunResponse {
        let rows = try await store.taskGrid(runID: run.id)
        var response = Trellis_V1_GetRunResponse()
        var counts: [TaskState: Int] = [:]
        for row in rows { counts[row.instance.state, default: 0] += 1 }
        response.run = APIMapping.run(run, counts: counts)
        response.tasks = APIMapping.grid(rows, spec: spec, defaultExecutor: settings.defaultExecutor)
        return response
    }

    func cancelRun(_ request: Trellis_V1_CancelRunRequest, _ caller: APICaller) async throws -> Trellis_V1_CancelRunResponse {
        let run = try await requireRun(dagID: request.dagID, runID: request.runID)
        let (ended, result) = try await store.cancelRun(run.id)
        cancel(result.inFlight, reason: "run '\(run.runID)' was cancelled by \(caller.name.isEmpty ? "a user" : caller.name)")
        await runChanged(run.id)
        var response = Trellis_V1_CancelRunResponse()
        response.run = try await runMessage(ended)
        response.cancelledAttempts = Int32(result.inFlight.count)
        return response
    }
}
