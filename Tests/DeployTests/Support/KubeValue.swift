import Foundation
import Yams

/// One value of a rendered manifest (YAML read as JSON's data model), with
/// lenient accessors: a missing key or a value of another type reads as
/// `.null`, so checks read like the paths they test.
enum KubeValue: Sendable, Hashable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([KubeValue])
    case object([String: KubeValue])

    /// Every document of a YAML stream (empty documents skipped).
    static func documents(yaml: String) throws -> [KubeValue] {
        var documents: [KubeValue] = []
        for document in try Yams.load_all(yaml: yaml) {
            let value = try KubeValue(any: document)
            if value != .null { documents.append(value) }
        }
        return documents
    }

    init(any: Any?) throws {
        switch any {
        case nil, is NSNull: self = .null
        case let value as Bool: self = .bool(value)
        case let value as Int: self = .int(value)
        case let value as Double: self = .double(value)
        case let value as String: self = .string(value)
        case let value as [Any]: self = .array(try value.map { try KubeValue(any: $0) })
        case let value as [AnyHashable: Any]:
            var object: [String: KubeValue] = [:]
            for (key, element) in value {
                guard let key = key.base as? String else { throw Unsupported(description: "a mapping key that is not a string: \(key)") }
                object[key] = try KubeValue(any: element)
            }
            self = .object(object)
        case let value?: throw Unsupported(description: "a YAML value of type \(type(of: value)): \(value)")
        }
    }

    struct Unsupported: Error, CustomStringConvertible { var description: String }

    subscript(key: String) -> KubeValue {
        if case .object(let object) = self { return object[key] ?? .null }
        return .null
    }

    subscript(index: Int) -> KubeValue {
        if case .array(let array) = self, array.indices.contains(index) { return array[index] }
        return .null
    }

    var string: String? { if case .string(let value) = self { return value }; return nil }
    var int: Int? { if case .int(let value) = self { return value }; return nil }
    var bool: Bool? { if case .bool(let value) = self { return value }; return nil }
    /// The elements, or none when this is not an array.
    var array: [KubeValue] { if case .array(let value) = self { return value }; return [] }
    var object: [String: KubeValue]? { if case .object(let value) = self { return value }; return nil }
    var isNull: Bool { self == .null }
    /// The strings of an array of strings.
    var strings: [String] { array.compactMap(\.string) }

    /// Foundation's form, for JSONSerialization.
    var any: Any {
        switch self {
        case .null: NSNull()
        case .bool(let value): value
        case .int(let value): value
        case .double(let value): value
        case .string(let value): value
        case .array(let value): value.map(\.any)
        case .object(let value): value.mapValues(\.any)
        }
    }

    func jsonData() throws -> Data {
        try JSONSerialization.data(withJSONObject: any, options: [.sortedKeys])
    }

    /// A copy with `value` at `path` (objects created on the way).
    func setting(_ path: [String], to value: KubeValue) -> KubeValue {
        guard let key = path.first else { return value }
        var object = self.object ?? [:]
        object[key] = (object[key] ?? .null).setting(Array(path.dropFirst()), to: value)
        return .object(object)
    }

    /// A copy without the key at `path`.
    func removing(_ path: [String]) -> KubeValue {
        guard let key = path.first, var object = self.object else { return self }
        if path.count == 1 { object[key] = nil } else { object[key] = (object[key] ?? .null).removing(Array(path.dropFirst())) }
        return .object(object)
    }

    var description: String {
        guard let data = try? JSONSerialization.data(withJSONObject: any, options: [.sortedKeys, .fragmentsAllowed]) else { return "\(any)" }
        return String(decoding: data, as: UTF8.self)
    }
}
