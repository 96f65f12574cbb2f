import Foundation
import TrellisCore
import TrellisProto
import TrellisStore
import TrellisWire

/// `WatchRun`: a snapshot, then the run's changes as they are recorded.
///
/// Polls `event_log` (indexed by run and id) for rows after the last one
/// seen, every `Settings.pollInterval`: cheap, and it works on every
/// replica, leader or not. Each tick reads the run first and the events
/// second, so when the run is seen finished, every change that led there
/// is already visible and goes out before the final `run` item.
extension TrellisAPIService {
    func watchRun(
        _ request: Trellis_V1_WatchRunRequest, _ caller: APICaller, _ send: (Trellis_V1_RunUpdate) async throws -> Void
    ) async throws {
        let run = try await requireRun(dagID: request.dagID, runID: request.runID)
        let spec = try await store.dagSpec(run.dagID, version: run.dagVersion)
        let upstream = Dictionary(spec.tasks.map { ($0.taskID, $0.upstream) }, uniquingKeysWith: { first, _ in first })
        // Read the event position before the snapshot: a change in between
        // is sent twice rather than never.
        var lastEvent = try await store.lastEventID(runID: run.id)
        var snapshot = Trellis_V1_RunUpdate()
        snapshot.snapshot = try await runSnapshot(try await store.run(run.id), spec: spec)
        try await send(snapshot)
        var lastState = snapshot.snapshot.run.state
        if Self.isFinished(lastState) { return }

        while true {
            try await Task.sleep(for: settings.pollInterval)
            let current = try await store.run(run.id)
            let events = try await store.events(runID: run.id, afterID: lastEvent)
            if let last = events.last {
                lastEvent = last.id
                var seen = Set<Int64>()
                let changed = events.map(\.taskInstanceID).filter { seen.insert($0).inserted }
                for row in try await store.taskGrid(runID: run.id, taskInstanceIDs: changed) {
                    var update = Trellis_V1_RunUpdate()
                    update.task = APIMapping.taskInstance(
                        row, upstream: upstream[row.instance.taskID] ?? [], defaultExecutor: settings.defaultExecutor)
                    try await send(update)
                }
            }
            let state = APIMapping.runState(current.state)
            if state != lastState {
                lastState = state
                var update = Trellis_V1_RunUpdate()
                update.run = try await runMessage(current)
                try await send(update)
            }
            if Self.isFinished(state) { return }
        }
    }

    static func isFinished(_ state: Trellis_V1_DagRunState) -> Bool {
        state == .success || state == .failed
    }
}
