import ArgumentParser
import Foundation
import TrellisCore

extension Dags {
    /// `trellis dags validate FILE…`: checks DAG files locally, with no
    /// control plane, and prints every problem of every file.
    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check DAG files without submitting them.",
            discussion: """
                Reads each file, validates it exactly as the control plane would (cycles, unknown \
                upstream tasks, cron syntax, durations, Kubernetes names, templates, unknown keys) and \
                prints every problem as FILE:LINE:COLUMN: task 'ID': FIELD: MESSAGE. Exits 2 if any \
                file is invalid.
                """
        )

        @Argument(help: "DAG files (YAML).", completion: .file(extensions: ["yaml", "yml"]))
        var files: [String]

        @Option(help: "The executor for tasks that name none, as the control plane is configured.")
        var defaultExecutor: String?

        func run() async throws {
            var invalid = 0
            for file in files {
                let text: String
                do {
                    text = try String(contentsOfFile: file, encoding: .utf8)
                } catch {
                    printError("\(file): cannot read: \(error.localizedDescription)")
                    invalid += 1
                    continue
                }
                do {
                    let dag = try DagFile.parse(text, file: file, options: .init(defaultExecutor: defaultExecutor))
                    print("\(file): ok — DAG '\(dag.spec.dagID)', \(describe(dag))")
                } catch {
                    invalid += 1
                    for problem in error.problems { printError(problem.description) }
                }
            }
            if invalid > 0 {
                printError("\(invalid) of \(files.count) file\(files.count == 1 ? "" : "s") invalid")
                throw TrellisExit.invalid
            }
        }

        private func describe(_ dag: DagDefinition) -> String {
            let tasks = dag.spec.tasks.count
            let schedule = dag.spec.schedule.isEmpty ? "manual runs only" : "schedule '\(dag.spec.schedule)' (\(dag.spec.timezone))"
            let roots = dag.graph.upstream.filter(\.isEmpty).count
            return "\(tasks) task\(tasks == 1 ? "" : "s") (\(roots) without upstream), \(schedule)"
        }
    }
}

