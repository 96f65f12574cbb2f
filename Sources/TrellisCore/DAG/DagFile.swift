import Foundation
import TrellisProto
import Yams

/// Reads one DAG file (YAML, Airflow's option names) into a validated
/// `DagDefinition`, or reports every problem in it at once.
public enum DagFile {
    /// What validation needs to know about the deployment.
    public struct Options: Sendable {
        /// The executor for tasks that name none. Without one, every task
        /// must name its executor, or its spec (image or command) decides.
        public var defaultExecutor: String?

        public init(defaultExecutor: String? = nil) {
            self.defaultExecutor = defaultExecutor
        }
    }

    /// The DAG-level keys of a file.
    static let dagKeys: [String] = [
        "dag_id", "description", "schedule", "timezone", "start_date", "end_date", "catchup",
        "max_active_runs", "max_active_tasks", "default_args", "params", "tags", "tasks", "dependencies",
    ]

    /// Renamed or retired Airflow spellings, with what to write instead.
    static let retiredKeys: [String: String] = [
        "schedule_interval": "Airflow 2.4 renamed it 'schedule'",
        "timetable": "write a cron expression or preset in 'schedule'",
        "concurrency": "Airflow renamed it 'max_active_tasks'",
        "task_concurrency": "Airflow renamed it 'max_active_tis_per_dag'; Trellis limits tasks with pools",
        "execution_date": "Airflow renamed it 'logical_date'",
        "upstream_task_ids": "write 'upstream'",
        "depends_on": "write 'upstream'",
    ]

    /// Parses and validates `yaml`; `file` names it in problems.
    public static func parse(_ yaml: String, file: String, options: Options = Options()) throws(DagValidationError) -> DagDefinition {
        let problems = ProblemCollector(file: file)
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml, .basic)
        } catch {
            throw DagValidationError(problems: [yamlProblem(error, file: file)])
        }
        guard let root else {
            throw DagValidationError(problems: [DagProblem(file: file, message: "the file is empty; a DAG needs at least dag_id and tasks")])
        }
        var parser = Parser(problems: problems, options: options)
        let definition = parser.parse(root)
        if let definition, problems.problems.isEmpty { return definition }
        // In file order, as a reader goes through them; stable for equal positions.
        let ordered = problems.problems.enumerated().sorted {
            ($0.element.line ?? 0, $0.element.column ?? 0, $0.offset) < ($1.element.line ?? 0, $1.element.column ?? 0, $1.offset)
        }
        throw DagValidationError(problems: ordered.map(\.element))
    }

    private static func yamlProblem(_ error: any Error, file: String) -> DagProblem {
        switch error {
        case YamlError.scanner(let context, let problem, let mark, _),
             YamlError.parser(let context, let problem, let mark, _),
             YamlError.composer(let context, let problem, let mark, _):
            let detail = context.map { "\($0.text) (line \($0.mark.line)): " } ?? ""
            return DagProblem(file: file, line: mark.line, column: mark.column, message: "not valid YAML: \(detail)\(problem)")
        case YamlError.duplicatedKeysInMapping(let duplicates, let context):
            return DagProblem(file: file, line: context.mark.line, column: context.mark.column,
                              message: "duplicate key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in a mapping")
        case YamlError.reader(let problem, _, _, _):
            return DagProblem(file: file, message: "not readable as YAML: \(problem)")
        default:
            return DagProblem(file: file, message: "not valid YAML: \(error)")
        }
    }
}

/// One pass over a DAG file's YAML tree.
private struct Parser {
    let problems: ProblemCollector
    let options: DagFile.Options

    private var timeZone = TimeZone(identifier: "UTC")!
    private var paramNames: Set<String> = []

    init(problems: ProblemCollector, options: DagFile.Options) {
        self.problems = problems
        self.options = options
    }

    mutating func parse(_ root: Node) -> DagDefinition? {
        let dag = YAMLFieldReader(root, what: "a DAG file", problems: problems)
        guard dag.mapping != nil else { return nil }
        var spec = Trellis_V1_DagSpec()

        if let id = dag.string("dag_id") {
            if let problem = identifierProblem(id.value, what: "dag_id") { dag.report(dag.node("dag_id"), "dag_id", problem) }
            spec.dagID = id.value
        } else {
            problems.add(at: dag.mark, field: "dag_id", "is required")
        }
        spec.description_p = dag.string("description")?.value ?? ""

        spec.timezone = AirflowDefaults.timezone
        if let zone = dag.string("timezone") {
            do {
                timeZone = try ScheduleTimeZone(identifier: zone.value).timeZone
                spec.timezone = zone.value
            } catch {
                dag.report(dag.node("timezone"), "timezone", error.message)
            }
        }

        if let schedule = dag.string("schedule") {
            spec.schedule = schedule.value.trimmingWhitespace()
            if let problem = ScheduleValidation.problem(spec.schedule) {
                dag.report(dag.node("schedule"), "schedule", problem)
            }
        }

        let startDate = date(dag, "start_date")
        let endDate = date(dag, "end_date")
        if let startDate { spec.startDate = .with { $0.unixMicros = micros(startDate) } }
        if let endDate { spec.endDate = .with { $0.unixMicros = micros(endDate) } }
        if let startDate, let endDate, endDate < startDate {
            dag.report(dag.node("end_date"), "end_date", "is before start_date; no run could ever happen")
        }
        if !spec.schedule.isEmpty, startDate == nil, dag.node("start_date") == nil {
            problems.add(at: dag.mark, field: "start_date", "is required when the DAG has a schedule (the first interval starts there)")
        }

        spec.catchup = dag.bool("catchup")?.value ?? AirflowDefaults.catchup
        spec.maxActiveRuns = Int32(dag.int("max_active_runs", in: 1...10_000)?.value ?? AirflowDefaults.maxActiveRuns)
        spec.maxActiveTasks = Int32(dag.int("max_active_tasks", in: 1...100_000)?.value ?? AirflowDefaults.maxActiveTasks)

        if let params = dag.node("params") {
            if case .mapping(let mapping) = params {
                for key in mapping.keys { if case .scalar(let name) = key { paramNames.insert(name.string) } }
                do {
                    spec.paramsJson = try YAMLJSON.json(params)
                } catch {
                    problems.add(at: error.mark, field: "params", error.message)
                }
            } else {
                dag.report(params, "params", "must be a mapping of names to values, not \(params.kindDescription)")
            }
        }
        if spec.paramsJson.isEmpty { spec.paramsJson = "{}" }

        if let tags = dag.stringList("tags") { spec.tags = tags.value.map(\.value) }

        let defaults: TaskFields? = dag.node("default_args").map { node in
            let reader = YAMLFieldReader(node, what: "default_args", problems: problems, prefix: "default_args.")
            let fields = TaskFields(reading: reader, problems: problems)
            reader.reportUnknownKeys(hint: { key in
                ["task_id", "upstream"].contains(key) ? "'\(key)' belongs on each task, not in default_args" : DagFile.retiredKeys[key]
            })
            return fields
        }

        var tasks: [ParsedTask] = []
        if let node = dag.node("tasks") {
            if case .sequence(let sequence) = node {
                if sequence.isEmpty { dag.report(node, "tasks", "is empty; a DAG needs at least one task") }
                for (position, item) in sequence.enumerated() {
                    if let task = parseTask(item, position: position, defaults: defaults) { tasks.append(task) }
                }
            } else {
                dag.report(node, "tasks", "must be a list of tasks (each starting with '- task_id: ...'), not \(node.kindDescription)")
            }
        } else {
            problems.add(at: dag.mark, field: "tasks", "is required; a DAG needs at least one task")
        }

        if let dependencies = dag.stringList("dependencies") {
            let known = Set(tasks.map(\.spec.taskID))
            for entry in dependencies.value {
                do {
                    for edge in try BitshiftDependencies.edges(entry.value) {
                        var unknown = false
                        for id in [edge.upstream, edge.downstream] where !known.contains(id) {
                            unknown = true
                            var message = "'\(id)' in \"\(entry.value)\" is not a task of this DAG"
                            if let close = closestMatch(id, in: known.sorted()) { message += " (did you mean '\(close)'?)" }
                            problems.add(at: entry.mark, field: "dependencies", message)
                        }
                        guard !unknown, let child = tasks.firstIndex(where: { $0.spec.taskID == edge.downstream }) else { continue }
                        if !tasks[child].spec.upstream.contains(edge.upstream) {
                            tasks[child].spec.upstream.append(edge.upstream)
                            tasks[child].upstreamMarks.append(entry.mark)
                        }
                    }
                } catch {
                    problems.add(at: entry.mark, field: "dependencies", error.message)
                }
            }
        }

        dag.reportUnknownKeys(hint: { key in
            if let retired = DagFile.retiredKeys[key] { return retired }
            if TaskFields.commonKeys.contains(key) || TaskFields.podKeys.contains(key) || TaskFields.processKeys.contains(key) {
                return "'\(key)' is a task field; put it on a task or in default_args"
            }
            return nil
        })

        let graph = buildGraph(tasks)
        if let graph { checkTemplates(tasks, graph: graph) }
        spec.tasks = tasks.map(\.spec)
        guard let graph else { return nil }
        return DagDefinition(spec: spec, graph: graph)
    }

    // MARK: Tasks

    /// A task's resolved spec plus where its pieces were written.
    struct ParsedTask {
        var spec: Trellis_V1_TaskSpec
        var mark: Mark?
        var upstreamMarks: [Mark?]
        /// Every templated string of the task, with its field and location.
        var templated: [(field: String, text: Located<String>)]
    }

    private func parseTask(_ node: Node, position: Int, defaults: TaskFields?) -> ParsedTask? {
        let label: String? = if case .mapping(let mapping) = node {
            mapping.first { if case .scalar(let key) = $0.key { key.string == "task_id" } else { false } }
                .flatMap { if case .scalar(let value) = $0.value { value.string } else { nil } }
        } else {
            nil
        }
        let reader = YAMLFieldReader(node, what: "a task", problems: problems, task: label ?? "#\(position + 1)")
        guard reader.mapping != nil else { return nil }

        var spec = Trellis_V1_TaskSpec()
        if let id = reader.string("task_id") {
            if let problem = identifierProblem(id.value, what: "task_id") { reader.report(reader.node("task_id"), "task_id", problem) }
            spec.taskID = id.value
        } else {
            reader.report(node, "task_id", "is required")
        }
        let upstream = reader.stringList("upstream")
        var fields = TaskFields(reading: reader, problems: problems)
        reader.reportUnknownKeys(hint: { DagFile.retiredKeys[$0] })

        let task = TaskResolver(problems: problems, task: reader, options: options)
        let kind = task.kind(own: fields, defaults: defaults)
        if let defaults { fields.inherit(from: defaults, kind: kind) }
        guard let resolved = task.resolve(fields, kind: kind, into: &spec) else { return nil }

        spec.upstream = upstream?.value.map(\.value) ?? []
        return ParsedTask(spec: spec, mark: node.mark, upstreamMarks: upstream?.value.map(\.mark) ?? [], templated: resolved)
    }

    // MARK: Graph

    private func buildGraph(_ tasks: [ParsedTask]) -> DagGraph? {
        let list = tasks.map { (id: $0.spec.taskID, upstream: $0.spec.upstream) }
        let structural = DagGraph.problems(of: list)
        let known = tasks.map(\.spec.taskID).filter { !$0.isEmpty }
        for problem in structural {
            switch problem {
            case .duplicateTask(let id):
                let marks = tasks.filter { $0.spec.taskID == id }.map(\.mark)
                for mark in marks.dropFirst() {
                    problems.add(at: mark, task: id, field: "task_id", "duplicate task id; the first '\(id)' is at line \(marks[0]?.line ?? 0)")
                }
            case .unknownUpstream(let id, let upstream):
                let task = tasks.first { $0.spec.taskID == id }
                let mark = task.flatMap { task in zip(task.spec.upstream, task.upstreamMarks).first { $0.0 == upstream }?.1 } ?? task?.mark
                var message = "'\(upstream)' is not a task of this DAG"
                if let close = closestMatch(upstream, in: known) { message += " (did you mean '\(close)'?)" }
                problems.add(at: mark, task: id, field: "upstream", message)
            case .selfDependency(let id):
                let task = tasks.first { $0.spec.taskID == id }
                problems.add(at: task?.mark, task: id, field: "upstream", "a task cannot depend on itself")
            case .cycle(let ids):
                let first = tasks.first { $0.spec.taskID == ids[0] }
                problems.add(at: first?.mark, "dependency cycle: \(ids.joined(separator: " >> "))")
            }
        }
        guard structural.isEmpty, !tasks.isEmpty else { return nil }
        return try? DagGraph(tasks: list)
    }

    // MARK: Templates

    /// Every macro must be known; `params.NAME` must be a declared param and
    /// `xcom.TASK` an upstream (direct or not) of the task using it.
    private func checkTemplates(_ tasks: [ParsedTask], graph: DagGraph) {
        for (position, task) in tasks.enumerated() {
            var ancestors: Set<Int>?
            for (field, text) in task.templated {
                let template: Template
                do {
                    template = try Template(parsing: text.value)
                } catch {
                    problems.add(at: text.mark, task: task.spec.taskID, field: field, error.message)
                    continue
                }
                for macro in template.macros {
                    switch macro {
                    case .param(let name) where !paramNames.contains(name):
                        var message = "'{{ params.\(name) }}' names no param of this DAG"
                        if let close = closestMatch(name, in: paramNames.sorted()) { message += " (did you mean 'params.\(close)'?)" }
                        problems.add(at: text.mark, task: task.spec.taskID, field: field, message + "; declare it under params:")
                    case .xcom(let source):
                        if ancestors == nil { ancestors = graph.ancestors(of: position) }
                        guard let sourcePosition = graph.index[source] else {
                            problems.add(at: text.mark, task: task.spec.taskID, field: field, "'{{ xcom.\(source) }}' names no task of this DAG")
                            continue
                        }
                        if !ancestors!.contains(sourcePosition) {
                            problems.add(at: text.mark, task: task.spec.taskID, field: field,
                                         "'{{ xcom.\(source) }}' reads the result of '\(source)', which is not upstream of this task, so it may not have run yet")
                        }
                    default:
                        continue
                    }
                }
            }
        }
    }

    // MARK: Values

    private func date(_ reader: YAMLFieldReader, _ key: String) -> Date? {
        guard let text = reader.string(key) else { return nil }
        do {
            return try DateText.parse(text.value, in: timeZone)
        } catch {
            reader.report(reader.node(key), key, error.message)
            return nil
        }
    }

    private func micros(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }
}

/// Airflow's rule for dag_id, task_id and pool names: letters, digits, '_',
/// '-', '.'; at most 250 characters. The problem with `value`, or nil if it
/// is a valid identifier. The client API checks pool names with it too.
public func identifierProblem(_ value: String, what: String) -> String? {
    guard !value.isEmpty else { return "must not be empty" }
    guard value.utf8.count <= 250 else { return "is longer than 250 characters" }
    let allowed = value.unicodeScalars.allSatisfy {
        $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_-.".unicodeScalars.contains($0))
    }
    guard allowed else { return "'\(value)' may only contain letters, digits, '_', '-' and '.'" }
    return nil
}

extension DagGraph {
    /// Every task that must finish before `position` can start.
    func ancestors(of position: Int) -> Set<Int> {
        var seen = Set<Int>()
        var stack = upstream[position]
        while let next = stack.popLast() {
            if seen.insert(next).inserted { stack.append(contentsOf: upstream[next]) }
        }
        return seen
    }
}
