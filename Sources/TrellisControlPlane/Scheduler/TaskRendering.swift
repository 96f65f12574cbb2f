import Foundation
import TrellisCore
import TrellisProto

/// Renders a task's templated fields for one attempt: what the executor
/// receives is the task with every `{{ macro }}` filled in.
enum TaskRendering {
    static func render(_ task: Trellis_V1_TaskSpec, context: TemplateContext) throws(CoreError) -> Trellis_V1_TaskSpec {
        var task = task
        func apply(_ text: String) throws(CoreError) -> String { try Template(parsing: text).render(context) }
        switch task.spec {
        case .process(var process)?:
            process.command = try process.command.map { (text) throws(CoreError) in try apply(text) }
            for index in process.env.indices { process.env[index].value = try apply(process.env[index].value) }
            task.process = process
        case .pod(var pod)?:
            pod.cmds = try pod.cmds.map { (text) throws(CoreError) in try apply(text) }
            pod.arguments = try pod.arguments.map { (text) throws(CoreError) in try apply(text) }
            for index in pod.envVars.indices { pod.envVars[index].value = try apply(pod.envVars[index].value) }
            task.pod = pod
        case nil:
            break
        }
        return task
    }

    /// Whether any templated field of `task` reads an upstream result
    /// (`{{ xcom.TASK_ID }}`), so the dispatcher loads results only then.
    static func readsXcom(_ task: Trellis_V1_TaskSpec) -> Bool {
        let fields: [String] = switch task.spec {
        case .process(let process)?: process.command + process.env.map(\.value)
        case .pod(let pod)?: pod.cmds + pod.arguments + pod.envVars.map(\.value)
        case nil: []
        }
        return fields.contains { field in
            guard field.contains("xcom."), let template = try? Template(parsing: field) else { return false }
            return template.macros.contains { if case .xcom = $0 { true } else { false } }
        }
    }

    /// A result as `{{ xcom.TASK_ID }}` renders it: a JSON string as the
    /// string itself (as Airflow renders a pushed str), anything else as
    /// its compact JSON text.
    static func xcomValue(_ json: String) -> String {
        guard let value = try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed]) else { return json }
        if let text = value as? String { return text }
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) else { return json }
        return String(decoding: data, as: UTF8.self)
    }

    /// The run's params as macros render them: the DAG's defaults overridden
    /// by the run's conf; strings as themselves, anything else as JSON.
    static func params(defaults: String, conf: String) -> [String: String] {
        var merged: [String: String] = [:]
        for json in [defaults, conf] {
            guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else { continue }
            for (key, value) in object {
                if let text = value as? String {
                    merged[key] = text
                } else if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) {
                    merged[key] = String(decoding: data, as: UTF8.self)
                }
            }
        }
        return merged
    }
}
