import Foundation
import TrellisCore
import Yams

/// Structured output for `-o json` and `-o yaml`: a tree with ordered keys,
/// so both formats show the same snake_case fields (the proto JSON names)
/// in the same order, run after run.
public indirect enum Document: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case list([Document])
    case object([Field])

    public struct Field: Sendable, Hashable {
        public var key: String
        public var value: Document

        public init(_ key: String, _ value: Document) {
            self.key = key
            self.value = value
        }
    }

    /// An object from ordered pairs.
    public static func object(_ pairs: KeyValuePairs<String, Document>) -> Document {
        .object(pairs.map { Field($0.key, $0.value) })
    }

    public static func string(_ value: String?) -> Document { value.map { .string($0) } ?? .null }
    public static func int(_ value: Int) -> Document { .int(Int64(value)) }
    public static func int(_ value: Int32) -> Document { .int(Int64(value)) }
    public static func strings(_ values: [String]) -> Document { .list(values.map { .string($0) }) }

    /// The value of `key` in an object.
    public subscript(key: String) -> Document? {
        guard case .object(let fields) = self else { return nil }
        return fields.first { $0.key == key }?.value
    }

    // MARK: JSON

    /// Pretty JSON with two-space indentation and a final newline.
    public func json() -> String {
        var out = ""
        writeJSON(into: &out, indent: 0)
        return out + "\n"
    }

    private func writeJSON(into out: inout String, indent: Int) {
        let pad = String(repeating: "  ", count: indent + 1)
        let closePad = String(repeating: "  ", count: indent)
        switch self {
        case .null: out += "null"
        case .bool(let value): out += value ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value): out += value.isFinite ? "\(value)" : "null"
        case .string(let value): out += JSONString.quoted(value)
        case .list(let items):
            guard !items.isEmpty else { out += "[]"; return }
            out += "[\n"
            for (index, item) in items.enumerated() {
                out += pad
                item.writeJSON(into: &out, indent: indent + 1)
                out += index == items.count - 1 ? "\n" : ",\n"
            }
            out += closePad + "]"
        case .object(let fields):
            guard !fields.isEmpty else { out += "{}"; return }
            out += "{\n"
            for (index, field) in fields.enumerated() {
                out += pad + JSONString.quoted(field.key) + ": "
                field.value.writeJSON(into: &out, indent: indent + 1)
                out += index == fields.count - 1 ? "\n" : ",\n"
            }
            out += closePad + "}"
        }
    }

    // MARK: YAML

    /// Block-style YAML; strings that would read as another type are quoted.
    public func yaml() -> String {
        do {
            return try YAMLEncoder().encode(YAMLValue(self))
        } catch {
            // Encoding a tree of plain values does not fail; keep output anyway.
            return json()
        }
    }
}

/// Encodes a `Document` through Yams' encoder, which keeps key order and
/// quotes ambiguous strings ("123", "yes", "null").
private struct YAMLValue: Encodable {
    let document: Document

    init(_ document: Document) { self.document = document }

    struct Key: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        switch document {
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .int(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .double(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .list(let items):
            var container = encoder.unkeyedContainer()
            for item in items { try container.encode(YAMLValue(item)) }
        case .object(let fields):
            var container = encoder.container(keyedBy: Key.self)
            for field in fields { try container.encode(YAMLValue(field.value), forKey: Key(stringValue: field.key)) }
        }
    }
}

/// How a reading verb prints what it read.
public enum OutputFormat: String, Sendable, CaseIterable {
    case table, json, yaml

    /// The text for a document in this format (nil for `table`, which each
    /// verb renders its own way).
    public func render(_ document: Document) -> String? {
        switch self {
        case .table: nil
        case .json: document.json()
        case .yaml: document.yaml()
        }
    }
}
