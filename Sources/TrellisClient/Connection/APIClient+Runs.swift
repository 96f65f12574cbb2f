import Foundation
public import TrellisProto

extension APIClient {
    /// The run id `run` stands for: itself, or for `latest` the DAG's newest run.
    public func resolveRun(dag: String, run: String) async throws(ClientError) -> String {
        guard run == "latest" else { return run }
        var request = Trellis_V1_ListRunsRequest()
        request.dagID = dag
        request.limit = 1
        let runs: Trellis_V1_ListRunsResponse = try await call("ListRuns", request)
        guard let newest = runs.runs.first else {
            throw ClientError(.usage, "\(verb): DAG '\(dag)' has no runs yet; trigger one with `trellis dags trigger \(dag)`")
        }
        return newest.runID
    }

    /// Follows a run through WatchRun until it ends: on a terminal one
    /// progress line redrawn in place, otherwise one plain line per change.
    /// Returns the final progress (the run's end state decides the exit code).
    public func watch(
        dag: String, run: String, terminal: Terminal, write: @escaping @Sendable (String) -> Void
    ) async throws(ClientError) -> RunProgress {
        var request = Trellis_V1_WatchRunRequest()
        request.dagID = dag
        request.runID = run
        var progress: RunProgress?
        let redraw = terminal.isTerminal
        do {
            for try await update in stream("WatchRun", request, as: Trellis_V1_RunUpdate.self) {
                if progress == nil {
                    guard case .snapshot(let snapshot) = update.kind else { continue }
                    progress = RunProgress(snapshot)
                    if !redraw {
                        write("watching run \(dag) \(run): \(Formatting.name(snapshot.run.state)), \(snapshot.tasks.count) tasks\n")
                    }
                } else if let change = progress!.apply(update), !redraw {
                    write(RunProgress.describe(change, at: Date()) + "\n")
                }
                if redraw, let progress {
                    write("\r\u{1B}[2K" + progress.line(width: terminal.width - 1, colour: terminal.colour))
                }
                if progress?.isFinished == true { break }
            }
        } catch let error as ClientError {
            if redraw { write("\n") }
            throw error
        } catch {
            if redraw { write("\n") }
            throw ClientError(.failed, "\(verb): \(error)")
        }
        if redraw { write("\n") }
        guard let progress else { throw ClientError(.failed, "\(verb): the watch of \(dag) \(run) ended before it began") }
        // The stream ends when the run ends; a last GetRun gives end dates.
        var final = progress
        if let grid = try? await getRun(dag: dag, run: run) { final = RunProgress(grid) }
        return final
    }

    public func getRun(dag: String, run: String) async throws(ClientError) -> Trellis_V1_GetRunResponse {
        var request = Trellis_V1_GetRunRequest()
        request.dagID = dag
        request.runID = run
        return try await call("GetRun", request)
    }
}
