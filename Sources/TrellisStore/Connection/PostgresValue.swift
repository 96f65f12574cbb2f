public import Foundation
import TrellisCore

/// A Swift value that can be sent as a query parameter, in PostgreSQL's text
/// format. Parameters travel separately from the SQL text (`PQexecParams`),
/// so user data never becomes SQL.
public protocol PostgresEncodable: Sendable {
    /// The text form of the value, or nil for SQL NULL.
    var postgresText: String? { get }
}

/// A Swift value that can be read from a column in PostgreSQL's text format.
public protocol PostgresDecodable: Sendable {
    init(postgresText text: String) throws(PostgresError)
}

extension String: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { self }
    public init(postgresText text: String) { self = text }
}

extension Int: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { String(self) }
    public init(postgresText text: String) throws(PostgresError) {
        guard let value = Int(text) else { throw .decodingFailed(text, as: "Int") }
        self = value
    }
}

extension Int64: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { String(self) }
    public init(postgresText text: String) throws(PostgresError) {
        guard let value = Int64(text) else { throw .decodingFailed(text, as: "Int64") }
        self = value
    }
}

extension Int32: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { String(self) }
    public init(postgresText text: String) throws(PostgresError) {
        guard let value = Int32(text) else { throw .decodingFailed(text, as: "Int32") }
        self = value
    }
}

extension Double: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { String(self) }
    public init(postgresText text: String) throws(PostgresError) {
        guard let value = Double(text) else { throw .decodingFailed(text, as: "Double") }
        self = value
    }
}

extension Bool: PostgresEncodable, PostgresDecodable {
    public var postgresText: String? { self ? "t" : "f" }
    public init(postgresText text: String) throws(PostgresError) {
        switch text {
        case "t", "true": self = true
        case "f", "false": self = false
        default: throw .decodingFailed(text, as: "Bool")
        }
    }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public var postgresText: String? { self?.postgresText }
}

/// `bytea`, sent and read in PostgreSQL's hex format (`\x0a1b…`).
public struct PostgresBytes: PostgresEncodable, PostgresDecodable, Hashable {
    public var bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    public var postgresText: String? {
        var text = [UInt8]()
        text.reserveCapacity(2 + bytes.count * 2)
        text.append(UInt8(ascii: "\\"))
        text.append(UInt8(ascii: "x"))
        for byte in bytes {
            text.append(Self.hexDigits[Int(byte >> 4)])
            text.append(Self.hexDigits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    public init(postgresText text: String) throws(PostgresError) {
        let utf8 = Array(text.utf8)
        guard utf8.count >= 2, utf8[0] == UInt8(ascii: "\\"), utf8[1] == UInt8(ascii: "x"), utf8.count % 2 == 0 else {
            throw .decodingFailed(String(text.prefix(20)), as: "bytea (hex format)")
        }
        func nibble(_ c: UInt8) throws(PostgresError) -> UInt8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: throw .decodingFailed(String(text.prefix(20)), as: "bytea (hex format)")
            }
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity((utf8.count - 2) / 2)
        var index = 2
        while index < utf8.count {
            bytes.append(try nibble(utf8[index]) << 4 | nibble(utf8[index + 1]))
            index += 2
        }
        self.bytes = bytes
    }
}

/// JSON text for `json`/`jsonb` columns, kept as text: callers decode it
/// with the JSON library of their choice.
public struct PostgresJSON: PostgresEncodable, PostgresDecodable, Hashable {
    public var text: String
    public init(_ text: String) { self.text = text }
    public var postgresText: String? { text }
    public init(postgresText text: String) { self.text = text }
}

/// A one-dimensional array parameter (`text[]`, `bigint[]`, `bool[]`), sent
/// as an array literal; elements are quoted, so any string is safe.
public struct PostgresArray<Element: PostgresEncodable>: PostgresEncodable {
    public var elements: [Element]
    public init(_ elements: [Element]) { self.elements = elements }

    public var postgresText: String? {
        var text = "{"
        for (index, element) in elements.enumerated() {
            if index > 0 { text += "," }
            guard let value = element.postgresText else {
                text += "NULL"
                continue
            }
            text += "\""
            for character in value.unicodeScalars {
                if character == "\"" || character == "\\" { text += "\\" }
                text.unicodeScalars.append(character)
            }
            text += "\""
        }
        return text + "}"
    }
}

extension Date: PostgresEncodable, PostgresDecodable {
    /// ISO 8601 in UTC with microseconds, which `timestamptz` reads exactly.
    public var postgresText: String? {
        let micros = Int64((timeIntervalSince1970 * 1_000_000).rounded())
        var days = micros / 86_400_000_000
        var rest = micros % 86_400_000_000
        if rest < 0 {
            rest += 86_400_000_000
            days -= 1
        }
        let civil = WallClock.date(days: Int(days))
        let (year, month, day) = (Int64(civil.year), Int64(civil.month), Int64(civil.day))
        let seconds = rest / 1_000_000
        let fraction = rest % 1_000_000
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(seconds / 3600, 2)):\(pad(seconds / 60 % 60, 2)):\(pad(seconds % 60, 2)).\(pad(fraction, 6))Z"
    }

    /// Reads `timestamptz` output in ISO DateStyle (`2026-11-25 17:16:13.5+00`,
    /// any offset), which every connection of ours selects.
    public init(postgresText text: String) throws(PostgresError) {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ width: Int) throws(PostgresError) -> Int64 {
            guard index + width <= bytes.count else { throw .decodingFailed(text, as: "Date") }
            var value: Int64 = 0
            for _ in 0..<width {
                let digit = bytes[index]
                guard digit >= 48, digit <= 57 else { throw .decodingFailed(text, as: "Date") }
                value = value * 10 + Int64(digit - 48)
                index += 1
            }
            return value
        }
        func expect(_ characters: Set<UInt8>) throws(PostgresError) {
            guard index < bytes.count, characters.contains(bytes[index]) else { throw .decodingFailed(text, as: "Date") }
            index += 1
        }
        let year = try number(4)
        try expect([45])
        let month = try number(2)
        try expect([45])
        let day = try number(2)
        try expect([32, 84])
        let hour = try number(2)
        try expect([58])
        let minute = try number(2)
        try expect([58])
        let second = try number(2)
        var micros: Int64 = 0
        if index < bytes.count, bytes[index] == 46 {
            index += 1
            var scale: Int64 = 100_000
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                micros += Int64(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
        }
        var offsetSeconds: Int64 = 0
        if index < bytes.count {
            if bytes[index] == 90 {  // Z
                index += 1
            } else {
                let sign: Int64 = bytes[index] == 45 ? -1 : 1
                try expect([43, 45])
                var offset = try number(2) * 3600
                if index < bytes.count, bytes[index] == 58 { index += 1 }
                if index + 2 <= bytes.count { offset += try number(2) * 60 }
                if index < bytes.count, bytes[index] == 58 { index += 1 }
                if index + 2 <= bytes.count { offset += try number(2) }
                offsetSeconds = sign * offset
            }
        }
        guard index == bytes.count else { throw .decodingFailed(text, as: "Date") }
        let days = Int64(WallClock.days(year: Int(year), month: Int(month), day: Int(day)))
        let total = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        self.init(timeIntervalSince1970: Double(total) + Double(micros) / 1_000_000)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).

extension PostgresError {
    static func decodingFailed(_ text: String, as type: String) -> PostgresError {
        PostgresError(.decoding, "cannot read '\(text)' as \(type)")
    }
}
