/// One thing wrong with a DAG file, located as precisely as the YAML parser
/// allows. Validation collects every problem of a file, so a user fixes them
/// all in one pass.
public struct DagProblem: Sendable, Hashable, CustomStringConvertible {
    /// The file as the user named it.
    public var file: String
    /// 1-based line and column, where known.
    public var line: Int?
    public var column: Int?
    /// The task the problem is in, if any.
    public var taskID: String?
    /// The field path (`retry_delay`, `container_resources.limits.cpu`), if any.
    public var field: String?
    /// What is wrong and, where it helps, what would be right.
    public var message: String

    public init(file: String, line: Int? = nil, column: Int? = nil, taskID: String? = nil, field: String? = nil, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.taskID = taskID
        self.field = field
        self.message = message
    }

    /// `file:line:column: task 'id': field: message`, the shape compilers use,
    /// so editors and terminals make it clickable.
    public var description: String {
        var text = file
        if let line {
            text += ":\(line)"
            if let column { text += ":\(column)" }
        }
        text += ": "
        if let taskID { text += "task '\(taskID)': " }
        if let field { text += "\(field): " }
        return text + message
    }
}

/// Every problem of a DAG file that failed validation.
public struct DagValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [DagProblem]

    public init(problems: [DagProblem]) {
        self.problems = problems
    }

    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
