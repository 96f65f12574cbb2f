import Foundation

/// The PostgreSQL cluster that scripts/test starts for the suite.
public enum TestDatabase {
    /// The libpq connection URL of the test cluster.
    ///
    /// scripts/test exports it as TRELLIS_TEST_DATABASE_URL; a run without it
    /// is a mistake (plain `swift test`), not a reason to skip.
    public static var url: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["TRELLIS_TEST_DATABASE_URL"], !url.isEmpty else {
                throw MissingDatabase()
            }
            return url
        }
    }

    public struct MissingDatabase: Error, CustomStringConvertible {
        public var description: String {
            "TRELLIS_TEST_DATABASE_URL is not set: run the suite with ./scripts/test, which starts a throwaway PostgreSQL"
        }
    }
}
