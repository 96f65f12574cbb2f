import ArgumentParser
import Foundation
import TrellisClient
import TrellisProto

/// `trellis runs …`
struct Runs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, inspect, watch and cancel DAG runs.",
        discussion: """
            A run is named by its DAG and its run id: `trellis runs show DAG RUN`. RUN may be \
            `latest`, the DAG's newest run.

            Examples:
              trellis runs list --dag etl --state failed
              trellis runs show etl manual__2024-05-01T00:00:00+00:00
              trellis runs watch etl latest
              trellis runs cancel etl latest
            """,
        subcommands: [List.self, Show.self, Watch.self, Cancel.self]
    )
}

/// `DAG RUN` of every verb that names a run.
struct RunArguments: ParsableArguments {
    @Argument(help: "The DAG id.") var dag: String
    @Argument(help: "The run id, or `latest` for the DAG's newest run.") var run: String
}

extension Runs {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List runs, newest first.",
            discussion: """
                Examples:
                  trellis runs list
                  trellis runs list --dag etl --state running -o yaml
                """
        )

        @Option(help: "Only runs of this DAG.") var dag: String?
        @Option(help: "Only runs in this state: queued, running, success or failed.") var state: String?
        @Option(help: "At most this many runs.") var limit: Int32 = 100
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func validate() throws {
            if let state, Formatting.runState(named: state) == nil {
                throw ValidationError("--state '\(state)' is not a run state: use queued, running, success or failed")
            }
            guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
        }

        func run() async throws {
            var request = Trellis_V1_ListRunsRequest()
            request.dagID = dag ?? ""
            request.state = state.flatMap(Formatting.runState(named:)) ?? .unspecified
            request.limit = limit
            let response: Trellis_V1_ListRunsResponse = try await connection.with("runs list") { try await $0.call("ListRuns", request) }
            emit(output.output, Views.document(response)) {
                response.runs.isEmpty ? ["No runs. Start one with `trellis dags trigger DAG`."] : Views.table(response).render(terminal)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a run and its task grid.",
            discussion: """
                One row per task: state, try (of max tries), duration, executor, where the latest \
                try ran (agent or pod) and why it failed, or why it cannot start (its pool does not \
                exist or is too small; notes below the grid say how to fix it).

                Examples:
                  trellis runs show etl latest
                  trellis runs show etl manual__2024-05-01T00:00:00+00:00 -o json
                """
        )

        @OptionGroup var target: RunArguments
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response = try await connection.with("runs show") { api in
                try await api.getRun(dag: target.dag, run: try await api.resolveRun(dag: target.dag, run: target.run))
            }
            emit(output.output, Views.document(response)) { Views.text(response, terminal: terminal) }
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow a run live until it ends.",
            discussion: """
                On a terminal: a progress bar with the count per state, redrawn in place. \
                Otherwise (a pipe, a file, CI logs): one line per change. Exits 0 when the run \
                succeeds and 1 when it fails.

                Example:
                  trellis runs watch etl latest
                """
        )

        @OptionGroup var target: RunArguments
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            try await connection.with("runs watch") { api in
                try await follow(api, dag: target.dag, run: try await api.resolveRun(dag: target.dag, run: target.run))
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fail a run: stop its running tasks and skip those not started (operator).",
            discussion: "Example:\n  trellis runs cancel etl latest"
        )

        @OptionGroup var target: RunArguments
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Trellis_V1_CancelRunResponse = try await connection.with("runs cancel") { api in
                var request = Trellis_V1_CancelRunRequest()
                request.dagID = target.dag
                request.runID = try await api.resolveRun(dag: target.dag, run: target.run)
                return try await api.call("CancelRun", request)
            }
            write("run \(response.run.dagID) \(response.run.runID) \(Formatting.name(response.run.state)); "
                + "\(response.cancelledAttempts) running attempt\(response.cancelledAttempts == 1 ? "" : "s") asked to stop\n")
        }
    }
}
