import Foundation
import Testing
import Yams

@testable import TrellisCore

/// docs/dag-file.schema.json describes the format the parser reads: every
/// example validates against it, invalid shapes do not, and its field names
/// are exactly the parser's.
@Suite struct DagFileSchemaTests {
    static var schema: [String: Any] {
        get throws {
            let text = try RepositoryFiles.read("docs/dag-file.schema.json")
            return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        }
    }

    @Test(arguments: try RepositoryFiles.list("examples", suffix: ".yaml"))
    func everyExampleMatchesTheSchema(path: String) throws {
        let document = try #require(try Yams.load(yaml: try RepositoryFiles.read(path)))
        let errors = SchemaValidator(root: try Self.schema).errors(document)
        #expect(errors.isEmpty, "\(path): \(errors.joined(separator: "; "))")
    }

    @Test func invalidShapesAreRejected() throws {
        let cases = [
            "tasks: [{task_id: t}]",  // no dag_id
            "dag_id: x\ntasks: []",  // empty task list
            "dag_id: x\nretires: 3\ntasks: [{task_id: t}]",  // unknown DAG key
            "dag_id: x\ntasks: [{task_id: t, retires: 3}]",  // unknown task key
            "dag_id: x\ntasks: [{task_id: t, trigger_rule: sometimes}]",
            "dag_id: x\ntasks: [{task_id: t, retry_delay: 5x}]",
            "dag_id: 'my dag'\ntasks: [{task_id: t}]",
        ]
        for yaml in cases {
            let document = try #require(try Yams.load(yaml: yaml))
            #expect(!SchemaValidator(root: try Self.schema).errors(document).isEmpty, "accepted: \(yaml)")
        }
    }

    @Test func fieldNamesMatchTheParser() throws {
        let schema = try Self.schema
        let properties = try #require(schema["properties"] as? [String: Any])
        #expect(Set(properties.keys) == Set(DagFile.dagKeys))

        let definitions = try #require(schema["definitions"] as? [String: Any])
        let taskFields = try #require((definitions["taskFields"] as? [String: Any])?["properties"] as? [String: Any])
        let parserTaskKeys = TaskFields.commonKeys + TaskFields.processKeys + TaskFields.podKeys
        #expect(Set(taskFields.keys) == Set(parserTaskKeys))
        let names = try #require((definitions["taskFieldName"] as? [String: Any])?["enum"] as? [String])
        #expect(Set(names) == Set(parserTaskKeys))
    }
}

/// The subset of JSON Schema draft-07 the DAG file schema uses: type, enum,
/// pattern, minimum, minItems, properties, required, additionalProperties,
/// propertyNames, items, allOf, anyOf and local $ref.
struct SchemaValidator {
    let root: [String: Any]

    func errors(_ value: Any) -> [String] {
        var errors: [String] = []
        check(value, against: root, at: "$", errors: &errors)
        return errors
    }

    private func resolve(_ schema: [String: Any]) -> [String: Any] {
        guard let reference = schema["$ref"] as? String, reference.hasPrefix("#/") else { return schema }
        var node: Any = root
        for part in reference.dropFirst(2).split(separator: "/") {
            node = (node as? [String: Any])?[String(part)] ?? [:]
        }
        var merged = node as? [String: Any] ?? [:]
        for (key, value) in schema where key != "$ref" { merged[key] = value }
        return merged
    }

    private func check(_ value: Any, against raw: [String: Any], at path: String, errors: inout [String]) {
        let schema = resolve(raw)
        if let types = schema["type"] {
            let allowed = (types as? [String]) ?? [types as? String ?? ""]
            if !allowed.contains(where: { matches(value, type: $0) }) {
                errors.append("\(path): expected \(allowed.joined(separator: " or ")), got \(Swift.type(of: value))")
                return
            }
        }
        if let choices = schema["enum"] as? [Any], !choices.contains(where: { "\($0)" == "\(value)" }) {
            errors.append("\(path): '\(value)' is not one of \(choices)")
        }
        if let pattern = schema["pattern"] as? String, let text = value as? String,
           text.range(of: pattern, options: .regularExpression) == nil {
            errors.append("\(path): '\(text)' does not match \(pattern)")
        }
        if let minimum = schema["minimum"] as? Double, let number = value as? Int, Double(number) < minimum {
            errors.append("\(path): \(number) is below \(minimum)")
        }
        for sub in schema["allOf"] as? [[String: Any]] ?? [] {
            check(value, against: sub, at: path, errors: &errors)
        }
        if let options = schema["anyOf"] as? [[String: Any]] {
            let passing = options.contains { option in
                var scratch: [String] = []
                check(value, against: option, at: path, errors: &scratch)
                return scratch.isEmpty
            }
            if !passing { errors.append("\(path): '\(value)' matches none of the allowed forms") }
        }
        if let array = value as? [Any] {
            if let minimum = schema["minItems"] as? Int, array.count < minimum {
                errors.append("\(path): needs at least \(minimum) items")
            }
            if let items = schema["items"] as? [String: Any] {
                for (position, item) in array.enumerated() { check(item, against: items, at: "\(path)[\(position)]", errors: &errors) }
            }
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for key in schema["required"] as? [String] ?? [] where object[key] == nil {
                errors.append("\(path): '\(key)' is required")
            }
            if let names = schema["propertyNames"] as? [String: Any] {
                for key in object.keys { check(key, against: names, at: "\(path) key", errors: &errors) }
            }
            for (key, item) in object {
                if let property = properties[key] as? [String: Any] {
                    check(item, against: property, at: "\(path).\(key)", errors: &errors)
                } else if let additional = schema["additionalProperties"] as? Bool, !additional {
                    errors.append("\(path): unknown key '\(key)'")
                } else if let additional = schema["additionalProperties"] as? [String: Any] {
                    check(item, against: additional, at: "\(path).\(key)", errors: &errors)
                }
            }
        }
    }

    private func matches(_ value: Any, type: String) -> Bool {
        switch type {
        case "object": value is [String: Any]
        case "array": value is [Any]
        // YAML timestamps arrive as dates; in the file they are text.
        case "string": value is String || value is Date
        case "integer": value is Int
        case "number": value is Int || value is Double
        case "boolean": value is Bool
        case "null": value is NSNull || "\(value)" == "nil"
        default: false
        }
    }
}
