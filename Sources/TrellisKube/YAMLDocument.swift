import CLibYAML

/// Loads one YAML document into plain values — `String`, `Bool` (for the
/// plain scalars true/false), `[Any]`, `[String: Any]`, nil for null —
/// through libyaml's document loader (anchors and aliases resolved). Enough
/// for kubeconfig files.
enum YAMLDocument {
    struct Problem: Error {
        var message: String
    }

    static func load(_ text: String) throws(Problem) -> Any? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) != 0 else { throw Problem(message: "libyaml could not start") }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        var document = yaml_document_t()
        let loaded = bytes.withUnsafeMutableBufferPointer { buffer -> Int32 in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            return yaml_parser_load(&parser, &document)
        }
        guard loaded != 0 else {
            let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
            throw Problem(message: "\(problem) at line \(parser.problem_mark.line + 1), column \(parser.problem_mark.column + 1)")
        }
        defer { yaml_document_delete(&document) }
        guard let root = yaml_document_get_root_node(&document) else { return nil }
        return value(root, in: &document, depth: 0)
    }

    private static func value(_ node: UnsafeMutablePointer<yaml_node_t>, in document: inout yaml_document_t, depth: Int) -> Any? {
        guard depth < 64 else { return nil }
        switch node.pointee.type {
        case YAML_SCALAR_NODE:
            let scalar = node.pointee.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
            guard scalar.style == YAML_PLAIN_SCALAR_STYLE else { return text }
            switch text {
            case "true", "True", "TRUE": return true
            case "false", "False", "FALSE": return false
            case "null", "Null", "NULL", "~", "": return nil
            default: return text
            }
        case YAML_SEQUENCE_NODE:
            var items: [Any] = []
            var item = node.pointee.data.sequence.items.start
            while let current = item, current != node.pointee.data.sequence.items.top {
                if let child = yaml_document_get_node(&document, current.pointee) {
                    items.append(value(child, in: &document, depth: depth + 1) as Any)
                }
                item = current + 1
            }
            return items
        case YAML_MAPPING_NODE:
            var mapping: [String: Any] = [:]
            var pair = node.pointee.data.mapping.pairs.start
            while let current = pair, current != node.pointee.data.mapping.pairs.top {
                if let keyNode = yaml_document_get_node(&document, current.pointee.key),
                   let valueNode = yaml_document_get_node(&document, current.pointee.value),
                   let key = value(keyNode, in: &document, depth: depth + 1) {
                    let name = (key as? String) ?? String(describing: key)
                    if let child = value(valueNode, in: &document, depth: depth + 1) { mapping[name] = child }
                }
                pair = current + 1
            }
            return mapping
        default:
            return nil
        }
    }
}
