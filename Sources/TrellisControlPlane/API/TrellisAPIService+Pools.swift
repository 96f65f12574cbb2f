import Foundation
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisWire

/// Pool methods: list and get (viewer), set and delete (admin). A pool
/// created or grown wakes the scheduler through `poolChanged`, so tasks
/// that waited for it start at once rather than at the next sweep.
extension TrellisAPIService {
    func listPools(_ request: Trellis_V1_ListPoolsRequest, _ caller: APICaller) async throws -> Trellis_V1_ListPoolsResponse {
        var response = Trellis_V1_ListPoolsResponse()
        response.pools = try await store.pools().map(APIMapping.pool)
        return response
    }

    func getPool(_ request: Trellis_V1_GetPoolRequest, _ caller: APICaller) async throws -> Trellis_V1_GetPoolResponse {
        var response = Trellis_V1_GetPoolResponse()
        response.pool = APIMapping.pool(try await requirePool(request.name))
        return response
    }

    func setPool(_ request: Trellis_V1_SetPoolRequest, _ caller: APICaller) async throws -> Trellis_V1_SetPoolResponse {
        if let problem = identifierProblem(request.name, what: "pool") {
            throw WireError(.invalidArgument, "pool name \(problem)")
        }
        guard request.slots >= Int32(PoolRecord.unlimited) else {
            throw WireError(.invalidArgument, "slots must be 0 or more, or -1 for an unlimited pool (as in Airflow), not \(request.slots)")
        }
        let created = try await store.setPool(
            request.name, slots: Int(request.slots), description: request.hasDescription_p ? request.description_p : nil)
        await poolChanged(request.name)
        var response = Trellis_V1_SetPoolResponse()
        response.pool = APIMapping.pool(try await requirePool(request.name))
        response.created = created
        return response
    }

    func deletePool(_ request: Trellis_V1_DeletePoolRequest, _ caller: APICaller) async throws -> Trellis_V1_DeletePoolResponse {
        if request.name == AirflowDefaults.pool {
            throw WireError(.invalidArgument, """
                \(AirflowDefaults.pool) cannot be deleted: tasks that name no pool use it; \
                change its size instead with \(PoolAdvice.fix(AirflowDefaults.pool))
                """)
        }
        let pool = try await requirePool(request.name)
        // Refused with FAILED_PRECONDITION, naming the DAGs, while unfinished
        // task instances still need the pool.
        try await store.deletePool(pool.name)
        return Trellis_V1_DeletePoolResponse()
    }

    /// The pool, or NOT_FOUND naming the known ones.
    func requirePool(_ name: String) async throws -> PoolRecord {
        guard !name.isEmpty else { throw WireError(.invalidArgument, "pool name is empty") }
        if let pool = try await store.pool(named: name) { return pool }
        throw APIErrors.notFound("pool", name, known: try await store.pools().map(\.name))
    }
}
