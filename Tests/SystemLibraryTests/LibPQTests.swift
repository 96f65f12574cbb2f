import CLibPQ
import Foundation
import Testing
import TrellisTestSupport

/// libpq is linked and talks to the real test cluster.
@Suite struct LibPQTests {
    @Test func parameterisedQueryRoundTripsValues() throws {
        let connection = PQconnectdb(try TestDatabase.url)
        defer { PQfinish(connection) }
        #expect(PQstatus(connection) == CONNECTION_OK, "\(String(cString: PQerrorMessage(connection)))")

        // A value that would break SQL if it were spliced into the text.
        let tricky = "O'Reilly; DROP TABLE x; -- ünïcødé"
        let parameters = ["40", "2", tricky]
        let result = withCStrings(parameters) { values in
            PQexecParams(connection, "SELECT $1::int + $2::int, $3::text, length($3::text)", 3, nil, values, nil, nil, 0)
        }
        defer { PQclear(result) }

        #expect(PQresultStatus(result) == PGRES_TUPLES_OK, "\(String(cString: PQresultErrorMessage(result)))")
        #expect(PQntuples(result) == 1)
        #expect(String(cString: PQgetvalue(result, 0, 0)) == "42")
        #expect(String(cString: PQgetvalue(result, 0, 1)) == tricky)
        #expect(String(cString: PQgetvalue(result, 0, 2)) == String(tricky.count))
    }

    @Test func serverErrorsCarrySQLState() throws {
        let connection = PQconnectdb(try TestDatabase.url)
        defer { PQfinish(connection) }
        let result = PQexec(connection, "SELECT * FROM no_such_table")
        defer { PQclear(result) }

        #expect(PQresultStatus(result) == PGRES_FATAL_ERROR)
        let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        #expect(sqlState == "42P01")  // undefined_table
    }

    @Test func badConnectionStringIsReportedNotCrashed() {
        let connection = PQconnectdb("postgresql://127.0.0.1:1/none?connect_timeout=2")
        defer { PQfinish(connection) }
        #expect(PQstatus(connection) == CONNECTION_BAD)
        #expect(!String(cString: PQerrorMessage(connection)).isEmpty)
    }
}

/// Calls `body` with the strings as a C array of NUL-terminated strings.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let duplicated = strings.map { strdup($0) }
    defer { duplicated.forEach { free($0) } }
    return body(duplicated.map { UnsafePointer($0) })
}
