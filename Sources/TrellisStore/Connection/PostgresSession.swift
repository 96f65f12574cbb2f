import CLibPQ
import Foundation

/// Synchronous access to one open libpq connection, handed to the closures
/// that `PostgresConnection.withSession` runs on the connection's own thread.
/// Only valid inside that closure; a whole transaction runs in one call, so it
/// costs one thread hop however many statements it has.
public final class PostgresSession {
    let handle: OpaquePointer
    /// Prepared statement names by SQL text, for this physical connection.
    var prepared: [String: String]

    init(handle: OpaquePointer, prepared: [String: String]) {
        self.handle = handle
        self.prepared = prepared
    }

    /// Runs one statement with parameters (`$1`, `$2`, … in `sql`) and returns
    /// its rows. The statement is prepared once per connection and reused.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresEncodable] = []) throws(PostgresError) -> PostgresRows {
        let name: String
        if let existing = prepared[sql] {
            name = existing
        } else {
            name = "trellis_\(prepared.count + 1)"
            let result = PQprepare(handle, name, sql, Int32(parameters.count), nil)
            defer { PQclear(result) }
            try check(result, sql: sql)
            prepared[sql] = name
        }
        let texts = parameters.map { $0.postgresText }
        let result = withCStringArray(texts) { values in
            PQexecPrepared(handle, name, Int32(texts.count), values, nil, nil, 0)
        }
        defer { PQclear(result) }
        try check(result, sql: sql)
        return rows(of: result)
    }

    /// Runs SQL text that may hold several statements and takes no
    /// parameters (migration files, BEGIN/COMMIT). Never pass user data here.
    public func execute(script sql: String) throws(PostgresError) {
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        try check(result, sql: sql)
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if
    /// it throws.
    public func transaction<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        try execute(script: "BEGIN")
        do {
            let value = try body(self)
            try execute(script: "COMMIT")
            return value
        } catch {
            if PQstatus(handle) == CONNECTION_OK { try? execute(script: "ROLLBACK") }
            throw error
        }
    }

    /// The server process serving this connection (`pg_backend_pid()`).
    public var backendPID: Int32 { PQbackendPID(handle) }

    private func check(_ result: OpaquePointer?, sql: String) throws(PostgresError) {
        let status = result.map(PQresultStatus) ?? PGRES_FATAL_ERROR
        switch status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return
        default:
            throw PostgresSession.error(from: result, connection: handle)
        }
    }

    static func error(from result: OpaquePointer?, connection: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let result, let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        let sqlState = field("C")
        let lost = PQstatus(connection) != CONNECTION_OK
            || sqlState.map { $0.hasPrefix("08") || $0 == "57P01" || $0 == "57P02" || $0 == "57P03" } ?? false
        let message = field("M")
            ?? String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
        return PostgresError(
            lost ? .connectionLost : .server,
            message.isEmpty ? "the server closed the connection" : message,
            sqlState: sqlState, detail: field("D"), hint: field("H")
        )
    }

    private func rows(of result: OpaquePointer?) -> PostgresRows {
        guard let result else { return PostgresRows(columns: [], values: [], affectedRows: 0) }
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        let columns = (0..<columnCount).map { String(cString: PQfname(result, Int32($0))) }
        var values: [[String?]] = []
        values.reserveCapacity(rowCount)
        for row in 0..<Int32(rowCount) {
            var rowValues: [String?] = []
            rowValues.reserveCapacity(columnCount)
            for column in 0..<Int32(columnCount) {
                if PQgetisnull(result, row, column) == 1 {
                    rowValues.append(nil)
                } else {
                    rowValues.append(String(cString: PQgetvalue(result, row, column)))
                }
            }
            values.append(rowValues)
        }
        let affected = Int(String(cString: PQcmdTuples(result))) ?? 0
        return PostgresRows(columns: columns, values: values, affectedRows: affected)
    }
}

/// Calls `body` with the strings as a C array of NUL-terminated strings
/// (nil entries are SQL NULL).
func withCStringArray<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let duplicated = strings.map { $0.map { strdup($0) } ?? nil }
    defer { duplicated.forEach { free($0) } }
    return body(duplicated.map { $0.map { UnsafePointer($0) } })
}
