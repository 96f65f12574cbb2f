import Foundation
import TrellisStore
import TrellisTestSupport

/// A fresh, migrated database of the test's own and a pool on it, closed
/// however the body ends.
enum StoreDatabase {
    static func with<T>(_ body: (PostgresPool) async throws -> T) async throws -> T {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 2)
            do {
                let value = try await body(pool)
                await pool.close()
                return value
            } catch {
                await pool.close()
                throw error
            }
        }
    }

    /// The same, with the database's URL too (for programs run against it).
    static func with<T>(_ body: (String, PostgresPool) async throws -> T) async throws -> T {
        try await FreshDatabase.with { url in
            let pool = PostgresPool(url, maximumConnections: 2)
            do {
                let value = try await body(url, pool)
                await pool.close()
                return value
            } catch {
                await pool.close()
                throw error
            }
        }
    }
}
