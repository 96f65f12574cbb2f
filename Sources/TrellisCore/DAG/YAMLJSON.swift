import Foundation
import Yams

/// Converts YAML values (a DAG's `params`, a task's `executor_config`) to
/// JSON text, keeping the user's key order so the stored text is stable.
enum YAMLJSON {
    struct Unsupported: Error {
        var message: String
        var mark: Mark?
    }

    static func json(_ node: Node) throws(Unsupported) -> String {
        var output = ""
        try write(node, into: &output)
        return output
    }

    private static func write(_ node: Node, into output: inout String) throws(Unsupported) {
        switch node {
        case .scalar(let scalar):
            if node.isNull {
                output += "null"
            } else if let bool = node.plainBool {
                output += bool ? "true" : "false"
            } else if let int = node.plainInt {
                output += String(int)
            } else if let double = node.plainDouble {
                guard double.isFinite else { throw Unsupported(message: "'\(scalar.string)' has no JSON form", mark: node.mark) }
                output += String(double)
            } else {
                output += JSONString.quoted(scalar.string)
            }
        case .sequence(let sequence):
            output += "["
            for (position, item) in sequence.enumerated() {
                if position > 0 { output += "," }
                try write(item, into: &output)
            }
            output += "]"
        case .mapping(let mapping):
            output += "{"
            for (position, pair) in mapping.enumerated() {
                guard case .scalar(let key) = pair.key else {
                    throw Unsupported(message: "keys must be strings, not \(pair.key.kindDescription)", mark: pair.key.mark)
                }
                if position > 0 { output += "," }
                output += JSONString.quoted(key.string) + ":"
                try write(pair.value, into: &output)
            }
            output += "}"
        case .alias:
            throw Unsupported(message: "YAML aliases are not supported here", mark: node.mark)
        }
    }
}

/// A string as a JSON string literal, quotes and escapes included: for the
/// JSON texts Trellis writes by hand (params, executor settings).
public enum JSONString {
    public static func quoted(_ string: String) -> String {
        var output = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output + "\""
    }
}
