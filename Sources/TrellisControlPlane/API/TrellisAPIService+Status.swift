import Foundation
import TrellisProto
import TrellisStore
import TrellisWire

/// Read-only views of the deployment: ping, status, agents, executors.
extension TrellisAPIService {
    func ping(_ request: Trellis_V1_PingRequest, _ caller: APICaller) async throws -> Trellis_V1_PingResponse {
        var response = Trellis_V1_PingResponse()
        response.payload = request.payload
        return response
    }

    func serverStatus(_ request: Trellis_V1_ServerStatusRequest, _ caller: APICaller) async throws -> Trellis_V1_ServerStatusResponse {
        let info = await statusProvider()
        var response = Trellis_V1_ServerStatusResponse()
        response.serverVersion = info.serverVersion
        response.startedAt = APIMapping.timestamp(info.startedAt)
        response.connectedAgents = UInt32(clamping: info.connectedAgents)
        response.connectedClients = UInt32(clamping: info.connectedClients)
        response.leader = info.leader
        response.schemaVersion = Int32(clamping: info.schemaVersion)
        response.replica = info.replica
        response.callerRole = caller.role.rawValue
        return response
    }

    func listAgents(_ request: Trellis_V1_ListAgentsRequest, _ caller: APICaller) async throws -> Trellis_V1_ListAgentsResponse {
        let running = try await store.runningAttemptsByAgent()
        var response = Trellis_V1_ListAgentsResponse()
        response.agents = try await store.agents().map { record in
            var agent = Trellis_V1_Agent()
            agent.name = record.name
            agent.labels = APIMapping.labels(record.labels)
            agent.slots = Int32(record.slots)
            agent.connected = record.isConnected
            agent.registeredAt = APIMapping.timestamp(record.registeredAt)
            agent.lastHeartbeatAt = APIMapping.timestamp(record.lastHeartbeatAt)
            agent.running = Int32(running[record.name] ?? 0)
            agent.pool = record.pool
            agent.draining = record.isDraining
            agent.version = record.version
            agent.node = record.node
            return agent
        }
        return response
    }

    func listExecutors(_ request: Trellis_V1_ListExecutorsRequest, _ caller: APICaller) async throws -> Trellis_V1_ListExecutorsResponse {
        var counts: [String: (queued: Int, running: Int)] = [:]
        for (name, count) in try await store.activeTaskCounts() {
            // Instances that name no executor run on the default one.
            let executor = name.isEmpty ? (settings.defaultExecutor ?? "") : name
            let previous = counts[executor] ?? (0, 0)
            counts[executor] = (previous.queued + count.queued, previous.running + count.running)
        }
        var response = Trellis_V1_ListExecutorsResponse()
        response.executors = executors.loaded.map { loaded in
            var executor = Trellis_V1_Executor()
            executor.name = loaded.name
            executor.version = loaded.version
            executor.path = loaded.path
            executor.queued = Int32(counts[loaded.name]?.queued ?? 0)
            executor.running = Int32(counts[loaded.name]?.running ?? 0)
            return executor
        }
        response.problems = executorLoadProblems
        return response
    }
}
