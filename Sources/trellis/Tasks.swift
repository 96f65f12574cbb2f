import ArgumentParser
import Foundation
import TrellisClient
import TrellisProto

/// `trellis tasks …`
struct Tasks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read task logs; clear or mark task instances.",
        discussion: """
            A task instance is named by DAG, run and task: `trellis tasks logs DAG RUN TASK`. RUN \
            may be `latest`, the DAG's newest run.

            Examples:
              trellis tasks logs etl latest extract --follow
              trellis tasks clear etl latest transform --downstream
              trellis tasks mark etl latest load success
            """,
        subcommands: [Logs.self, Clear.self, Mark.self]
    )
}

/// `DAG RUN TASK` of every verb that names a task instance.
struct TaskArguments: ParsableArguments {
    @Argument(help: "The DAG id.") var dag: String
    @Argument(help: "The run id, or `latest` for the DAG's newest run.") var run: String
    @Argument(help: "The task id.") var task: String
}

extension Tasks {
    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a task's log (stdout and stderr of one try).",
            discussion: """
                Examples:
                  trellis tasks logs etl latest extract
                  trellis tasks logs etl latest extract --try 1
                  trellis tasks logs etl latest extract --follow   # until the try ends
                """
        )

        @OptionGroup var target: TaskArguments
        @Option(name: .customLong("try"), help: "The try number (default: the latest).") var tryNumber: Int32 = 0
        @Flag(name: [.short, .long], help: "Keep printing new output until the try ends.") var follow = false
        @OptionGroup var connection: ConnectionOptions

        func validate() throws {
            guard tryNumber >= 0 else { throw ValidationError("--try must be 1 or more") }
        }

        func run() async throws {
            try await connection.with("tasks logs") { api in
                var request = Trellis_V1_GetTaskLogRequest()
                request.dagID = target.dag
                request.runID = try await api.resolveRun(dag: target.dag, run: target.run)
                request.taskID = target.task
                request.tryNumber = tryNumber
                request.follow = follow
                for try await chunk in api.stream("GetTaskLog", request, as: Trellis_V1_TaskLogChunk.self) {
                    FileHandle.standardOutput.write(chunk.data)
                }
            }
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Clear a task instance so it runs again with fresh retries (operator).",
            discussion: """
                Like Airflow's clear: the instance goes back to no state; a finished run runs again.

                Examples:
                  trellis tasks clear etl latest transform
                  trellis tasks clear etl latest transform --downstream
                """
        )

        @OptionGroup var target: TaskArguments
        @Flag(help: "Also clear every task downstream of it.") var downstream = false
        @Flag(help: "Only clear instances that failed (failed, upstream_failed).") var onlyFailed = false
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Trellis_V1_ClearTasksResponse = try await connection.with("tasks clear") { api in
                var request = Trellis_V1_ClearTasksRequest()
                request.dagID = target.dag
                request.runID = try await api.resolveRun(dag: target.dag, run: target.run)
                request.taskIds = [target.task]
                request.downstream = downstream
                request.onlyFailed = onlyFailed
                return try await api.call("ClearTasks", request)
            }
            write(response.cleared.isEmpty
                ? "nothing cleared\n"
                : "cleared \(response.cleared.count) task instance\(response.cleared.count == 1 ? "" : "s"): \(response.cleared.joined(separator: ", "))\n")
        }
    }

    struct Mark: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mark a task instance success or failed (operator).",
            discussion: """
                Examples:
                  trellis tasks mark etl latest load success
                  trellis tasks mark etl latest load failed
                """
        )

        enum Outcome: String, ExpressibleByArgument, CaseIterable {
            case success, failed
        }

        @OptionGroup var target: TaskArguments
        @Argument(help: "success or failed.") var state: Outcome
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Trellis_V1_MarkTaskResponse = try await connection.with("tasks mark") { api in
                var request = Trellis_V1_MarkTaskRequest()
                request.dagID = target.dag
                request.runID = try await api.resolveRun(dag: target.dag, run: target.run)
                request.taskID = target.task
                request.state = state == .success ? .success : .failed
                return try await api.call("MarkTask", request)
            }
            write("task \(response.task.taskID) marked \(Formatting.name(response.task.state))\n")
        }
    }
}
