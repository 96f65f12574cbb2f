import ArgumentParser
import Foundation
import TrellisClient
import TrellisCore
import TrellisProto

/// `trellis dags …`
struct Dags: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with DAG files and the DAGs on the control plane.",
        discussion: """
            Examples:
              trellis dags validate dags/*.yaml       # check files locally, no server needed
              trellis dags submit dags/etl.yaml       # validate, then store a new version
              trellis dags list
              trellis dags show etl                   # tasks and dependencies as a tree
              trellis dags trigger etl --conf '{"day": "2024-05-01"}' --wait
              trellis dags pause etl
            """,
        subcommands: [Validate.self, Submit.self, List.self, Show.self, Pause.self, Unpause.self, Delete.self, Trigger.self]
    )
}

extension Dags {
    struct Submit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate DAG files locally, then store each on the control plane (admin).",
            discussion: """
                Every file is validated first, exactly as `trellis dags validate` does; if any file \
                has a problem, every problem is printed as FILE:LINE:COLUMN: MESSAGE and nothing is \
                submitted (exit 2). A file equal to the DAG's current version keeps that version. \
                A DAG whose tasks name a pool that does not exist (or is too small for their \
                pool_slots) is stored, with a `warning:` on stderr saying how to fix the pool.

                Examples:
                  trellis dags submit etl.yaml reports.yaml
                  trellis dags submit --paused new-dag.yaml
                """
        )

        @Argument(help: "DAG files (YAML).", completion: .file(extensions: ["yaml", "yml"]))
        var files: [String]

        @Flag(help: "Create new DAGs paused (existing DAGs keep their state).")
        var paused = false

        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var texts: [(file: String, text: String)] = []
            var problems: [String] = []
            for file in files {
                do {
                    let text = try String(contentsOfFile: file, encoding: .utf8)
                    do {
                        _ = try DagFile.parse(text, file: file)
                        texts.append((file, text))
                    } catch {
                        problems += error.problems.map(\.description)
                    }
                } catch {
                    problems.append("\(file): cannot read: \(error.localizedDescription)")
                }
            }
            guard problems.isEmpty else {
                for problem in problems { printError(problem) }
                throw ClientError(.usage, "nothing submitted: \(files.count - texts.count) of \(files.count) file\(files.count == 1 ? "" : "s") invalid")
            }
            try await connection.with("dags submit") { api in
                for (file, text) in texts {
                    var request = Trellis_V1_SubmitDagRequest()
                    request.yaml = text
                    request.fileName = file
                    request.paused = paused
                    let response: Trellis_V1_SubmitDagResponse = try await api.call("SubmitDag", request)
                    let what = response.changed ? "stored as version \(response.version)" : "unchanged (version \(response.version))"
                    write("dag \(response.dagID) \(what), \(response.taskCount) task\(response.taskCount == 1 ? "" : "s") (\(file))\n")
                    for warning in response.warnings { printError("warning: \(file): \(warning)") }
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the DAGs with their schedule and newest run.",
            discussion: """
                Examples:
                  trellis dags list
                  trellis dags list --tag nightly -o json
                """
        )

        @Option(name: .customLong("tag"), help: "Only DAGs with this tag (repeat for several: all must match).")
        var tags: [String] = []

        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var request = Trellis_V1_ListDagsRequest()
            request.tags = tags
            let response: Trellis_V1_ListDagsResponse = try await connection.with("dags list") { try await $0.call("ListDags", request) }
            emit(output.output, Views.document(response)) {
                response.dags.isEmpty ? ["No DAGs. Submit one with `trellis dags submit FILE`."] : Views.table(response).render(terminal)
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a DAG: its settings and its tasks as a dependency tree.",
            discussion: """
                Every task without upstream tasks is a root; downstream tasks hang below. A task \
                with several upstream tasks appears under each, drawn in full once.

                Examples:
                  trellis dags show etl
                  trellis dags show etl --version 2 -o yaml
                """
        )

        @Argument(help: "The DAG id.") var dag: String
        @Option(help: "A version of the DAG (default: the latest).") var version: Int32 = 0
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var request = Trellis_V1_GetDagRequest()
            request.dagID = dag
            request.version = version
            let response: Trellis_V1_GetDagResponse = try await connection.with("dags show") { try await $0.call("GetDag", request) }
            emit(output.output, Views.document(response)) { Views.text(response, terminal: terminal) }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause a DAG: no new scheduled runs (operator).",
            discussion: "Runs already going carry on; manual triggers still work.\n\nExample:\n  trellis dags pause etl"
        )
        @Argument(help: "The DAG id.") var dag: String
        @OptionGroup var connection: ConnectionOptions

        func run() async throws { try await setPaused(dag, true, connection) }
    }

    struct Unpause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Unpause a DAG: the scheduler creates its runs again (operator).",
            discussion: "Example:\n  trellis dags unpause etl"
        )
        @Argument(help: "The DAG id.") var dag: String
        @OptionGroup var connection: ConnectionOptions

        func run() async throws { try await setPaused(dag, false, connection) }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a DAG with all its versions, runs and logs (admin).",
            discussion: "Example:\n  trellis dags delete old-etl"
        )
        @Argument(help: "The DAG id.") var dag: String
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var request = Trellis_V1_DeleteDagRequest()
            request.dagID = dag
            let response: Trellis_V1_DeleteDagResponse = try await connection.with("dags delete") { try await $0.call("DeleteDag", request) }
            write("dag \(dag) deleted with \(response.deletedRuns) run\(response.deletedRuns == 1 ? "" : "s")\n")
        }
    }

    struct Trigger: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a manual run of a DAG (operator).",
            discussion: """
                Triggering is idempotent per logical date: a second trigger for the same date \
                reports the existing run. With --wait, follows the run like `trellis runs watch` \
                and exits 1 if it fails.

                Examples:
                  trellis dags trigger etl
                  trellis dags trigger etl --conf '{"table": "orders"}' --logical-date 2024-05-01
                  trellis dags trigger etl --wait
                """
        )

        @Argument(help: "The DAG id.") var dag: String
        @Option(help: ArgumentHelp("A JSON object merged over the DAG's params.", valueName: "json")) var conf: String?
        @Option(help: ArgumentHelp(
            "The run's logical date, ISO 8601 (2024-05-01T00:00:00Z, or 2024-05-01 for midnight UTC). Default: now.",
            valueName: "iso"))
        var logicalDate: String?
        @Flag(help: "Follow the run until it ends; exit 1 if it fails.") var wait = false
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func validate() throws {
            if let conf {
                let object = try? JSONSerialization.jsonObject(with: Data(conf.utf8))
                guard object is [String: Any] else {
                    throw ValidationError("--conf must be a JSON object, e.g. '{\"key\": \"value\"}'")
                }
            }
            if let logicalDate, Formatting.parseDate(logicalDate) == nil {
                throw ValidationError("--logical-date '\(logicalDate)' is not ISO 8601: use 2024-05-01T00:00:00Z or 2024-05-01")
            }
            if wait, output.output != .table {
                throw ValidationError("--wait prints progress; use it without -o \(output.output.rawValue)")
            }
        }

        func run() async throws {
            var request = Trellis_V1_TriggerRunRequest()
            request.dagID = dag
            request.confJson = conf ?? ""
            if let logicalDate, let date = Formatting.parseDate(logicalDate) { request.logicalDate = Formatting.timestamp(date) }
            try await connection.with("dags trigger") { api in
                let response: Trellis_V1_TriggerRunResponse = try await api.call("TriggerRun", request)
                let run = response.run
                emit(output.output, .object(["run": Views.document(run), "created": .bool(response.created)])) {
                    [response.created
                        ? "triggered \(run.dagID) run \(run.runID) (logical date \(Formatting.shortDate(Formatting.date(run.logicalDate))))"
                        : "\(run.dagID) run \(run.runID) already exists (\(Formatting.name(run.state))); triggering is idempotent per logical date"]
                }
                if run.state == .queued {
                    // A paused DAG's runs wait: say so rather than let --wait hang unexplained.
                    var dagRequest = Trellis_V1_GetDagRequest()
                    dagRequest.dagID = run.dagID
                    if let dag: Trellis_V1_GetDagResponse = try? await api.call("GetDag", dagRequest), dag.dag.paused {
                        printError("note: DAG \(run.dagID) is paused, so the run stays queued until `trellis dags unpause \(run.dagID)`")
                    }
                }
                guard wait else { return }
                try await follow(api, dag: run.dagID, run: run.runID)
            }
        }
    }
}

private func setPaused(_ dag: String, _ paused: Bool, _ connection: ConnectionOptions) async throws {
    var request = Trellis_V1_SetDagPausedRequest()
    request.dagID = dag
    request.paused = paused
    let verb = paused ? "dags pause" : "dags unpause"
    let response: Trellis_V1_SetDagPausedResponse = try await connection.with(verb) { try await $0.call("SetDagPaused", request) }
    write("dag \(dag) \(paused ? "paused" : "unpaused")\(response.changed ? "" : " (it already was)")\n")
}

/// Follows a run to its end and exits 1 if it failed.
func follow(_ api: APIClient, dag: String, run: String) async throws {
    let final = try await api.watch(dag: dag, run: run, terminal: terminal, write: write)
    write(final.summary() + "\n")
    if final.run.state == .failed {
        let failed = final.tasks.filter { $0.state == .failed }.map(\.taskID)
        throw ClientError(.failed, "run \(dag) \(run) failed" + (failed.isEmpty ? "" : "; failed tasks: \(failed.joined(separator: ", ")). Read a log with `trellis tasks logs \(dag) \(run) \(failed[0])`"))
    }
}
