import ArgumentParser
import Foundation
import TrellisClient
import TrellisProto

/// `trellis pools …`: Airflow's `airflow pools` on the control plane.
struct Pools: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage pools: named slots that limit concurrent tasks.",
        discussion: """
            A task takes `pool_slots` (default 1) of its `pool` (default default_pool) while it \
            is queued or running; when the pool has no open slot it waits. A task whose pool \
            does not exist never runs: `trellis dags submit` warns about it and `trellis runs \
            show` says which tasks wait for which pool. Reading needs the viewer role, set and \
            delete need admin.

            Examples:
              trellis pools list
              trellis pools set etl 8 --description "ETL jobs"
              trellis pools get etl -o json
              trellis pools delete etl
            """,
        subcommands: [List.self, Get.self, SetSlots.self, Delete.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List pools with their slots: running, queued, scheduled (waiting) and open.",
            discussion: "Examples:\n  trellis pools list\n  trellis pools list -o yaml"
        )
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Trellis_V1_ListPoolsResponse = try await connection.with("pools list") {
                try await $0.call("ListPools", Trellis_V1_ListPoolsRequest())
            }
            emit(output.output, Views.document(response)) {
                response.pools.isEmpty ? ["No pools. Create one with `trellis pools set NAME SLOTS`."] : Views.table(response.pools).render(terminal)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show one pool and its slots.",
            discussion: "Examples:\n  trellis pools get default_pool\n  trellis pools get etl -o json"
        )
        @Argument(help: "The pool's name.") var name: String
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var request = Trellis_V1_GetPoolRequest()
            request.name = name
            let response: Trellis_V1_GetPoolResponse = try await connection.with("pools get") { try await $0.call("GetPool", request) }
            emit(output.output, Views.document(response.pool)) { Views.table([response.pool]).render(terminal) }
        }
    }

    /// `set` (named apart from Swift's `Set`).
    struct SetSlots: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Create a pool, or change its slots (admin).",
            discussion: """
                SLOTS is 0 or more (0 holds every task of the pool back), or `unlimited` \
                (Airflow's -1, which `-- -1` also gives). Making a pool smaller than what it \
                has in use stops nothing: no new task starts until enough slots are free. \
                Without --description an existing pool keeps its own.

                Examples:
                  trellis pools set etl 8 --description "ETL jobs"
                  trellis pools set default_pool 256
                  trellis pools set sensors unlimited
                """
        )
        @Argument(help: "The pool's name: letters, digits, '_', '-' and '.'.") var name: String
        @Argument(help: ArgumentHelp("How many slots it has, or unlimited.", valueName: "slots")) var slots: String
        @Option(help: ArgumentHelp("What the pool is for.", valueName: "text")) var description: String?
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        /// `slots` as the API takes it: -1 for unlimited.
        var count: Int32? {
            if slots == "unlimited" { return -1 }
            guard let number = Int32(slots), number >= -1 else { return nil }
            return number
        }

        func validate() throws {
            guard count != nil else {
                throw ValidationError("SLOTS must be 0 or more, or unlimited (-1), not '\(slots)'")
            }
        }

        func run() async throws {
            var request = Trellis_V1_SetPoolRequest()
            request.name = name
            request.slots = count ?? 0
            if let description { request.description_p = description }
            let response: Trellis_V1_SetPoolResponse = try await connection.with("pools set") { try await $0.call("SetPool", request) }
            let pool = response.pool
            emit(output.output, .object(["pool": Views.document(pool), "created": .bool(response.created)])) {
                let size = pool.slots == -1 ? "unlimited slots" : "\(pool.slots) slot\(pool.slots == 1 ? "" : "s") (\(pool.openSlots) open)"
                return ["pool \(pool.name) \(response.created ? "created" : "set") with \(size)"]
            }
            if pool.slots != -1, pool.openSlots < 0 {
                let used = pool.runningSlots + pool.queuedSlots
                printError("note: pool \(pool.name) has \(used) slot\(used == 1 ? "" : "s") in use, more than its \(pool.slots); tasks already queued or running go on, and no new task of the pool starts until it has open slots")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a pool (admin).",
            discussion: """
                default_pool cannot be deleted, nor a pool that unfinished task instances still \
                need: the error names their DAGs; let their runs finish or cancel them first.

                Example:
                  trellis pools delete etl
                """
        )
        @Argument(help: "The pool's name.") var name: String
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var request = Trellis_V1_DeletePoolRequest()
            request.name = name
            let _: Trellis_V1_DeletePoolResponse = try await connection.with("pools delete") { try await $0.call("DeletePool", request) }
            write("pool \(name) deleted\n")
        }
    }
}
