/// The rows a query returned, copied out of libpq's result so they can cross
/// threads and tasks freely.
public struct PostgresRows: Sendable, RandomAccessCollection {
    /// Column names, in order.
    public let columns: [String]
    let values: [[String?]]
    /// The number of rows an INSERT, UPDATE or DELETE touched.
    public let affectedRows: Int

    init(columns: [String], values: [[String?]], affectedRows: Int) {
        self.columns = columns
        self.values = values
        self.affectedRows = affectedRows
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { values.count }
    public subscript(position: Int) -> PostgresRow {
        PostgresRow(columns: columns, values: values[position])
    }
}

/// One row: values decoded by column position or name into Swift types.
public struct PostgresRow: Sendable {
    public let columns: [String]
    let values: [String?]

    /// Whether the column is NULL.
    public func isNull(_ column: Int) -> Bool { values[column] == nil }

    /// The column's value as `T`; NULL is an error.
    public func decode<T: PostgresDecodable>(_ column: Int, as type: T.Type = T.self) throws(PostgresError) -> T {
        guard column < values.count else {
            throw PostgresError(.decoding, "the row has \(values.count) columns, not \(column + 1)")
        }
        guard let text = values[column] else {
            throw PostgresError(.decoding, "column '\(columns[column])' is NULL, expected \(T.self)")
        }
        return try T(postgresText: text)
    }

    /// The column's value as `T`, or nil when it is NULL.
    public func decodeIfPresent<T: PostgresDecodable>(_ column: Int, as type: T.Type = T.self) throws(PostgresError) -> T? {
        guard column < values.count else {
            throw PostgresError(.decoding, "the row has \(values.count) columns, not \(column + 1)")
        }
        guard let text = values[column] else { return nil }
        return try T(postgresText: text)
    }

    /// The value of the column named `name` as `T`.
    public func decode<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) throws(PostgresError) -> T {
        try decode(try index(of: name), as: type)
    }

    /// The value of the column named `name` as `T`, or nil when it is NULL.
    public func decodeIfPresent<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) throws(PostgresError) -> T? {
        try decodeIfPresent(try index(of: name), as: type)
    }

    private func index(of name: String) throws(PostgresError) -> Int {
        guard let index = columns.firstIndex(of: name) else {
            throw PostgresError(.decoding, "no column named '\(name)' (columns: \(columns.joined(separator: ", ")))")
        }
        return index
    }
}
