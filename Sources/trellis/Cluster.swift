import ArgumentParser
import Foundation
import TrellisClient
import TrellisProto

/// `trellis agents …`
struct Agents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The agents connected to the control plane.",
        subcommands: [List.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List agents: pool, status, slots, running attempts, last heartbeat.",
            discussion: "Examples:\n  trellis agents list\n  trellis agents list -o json"
        )
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Trellis_V1_ListAgentsResponse = try await connection.with("agents list") {
                try await $0.call("ListAgents", Trellis_V1_ListAgentsRequest())
            }
            emit(output.output, Views.document(response)) {
                response.agents.isEmpty ? ["No agents. Start one with `trellis-agent --control-plane HOST:PORT`."] : Views.table(response).render(terminal)
            }
        }
    }
}

/// `trellis executors …`
struct Executors: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The executor plugins the control plane loaded.",
        subcommands: [List.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List executors with their queued and running task counts.",
            discussion: "Plugin files that failed to load are listed after the table.\n\nExample:\n  trellis executors list"
        )
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Trellis_V1_ListExecutorsResponse = try await connection.with("executors list") {
                try await $0.call("ListExecutors", Trellis_V1_ListExecutorsRequest())
            }
            emit(output.output, Views.document(response)) {
                Views.table(response).render(terminal) + response.problems.map { "problem: \($0)" }
            }
        }
    }
}

/// `trellis tokens …`
struct Tokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage API tokens (admin).",
        discussion: """
            Roles are Airflow's: viewer reads; operator also pauses DAGs, triggers and cancels \
            runs, clears and marks tasks; admin also submits and deletes DAGs and manages pools \
            and tokens.

            Examples:
              trellis tokens create ci --role operator
              trellis tokens list
              trellis tokens revoke ci
            """,
        subcommands: [Create.self, List.self, Revoke.self]
    )

    enum Role: String, ExpressibleByArgument, CaseIterable {
        case viewer, `operator`, admin
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a token; prints its secret, which is never shown again.",
            discussion: "Example:\n  trellis tokens create ci --role operator > ci.token"
        )
        @Argument(help: "A name for the token.") var name: String
        @Option(help: "viewer, operator or admin.") var role: Role
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var request = Trellis_V1_CreateTokenRequest()
            request.name = name
            request.role = role.rawValue
            let response: Trellis_V1_CreateTokenResponse = try await connection.with("tokens create") { try await $0.call("CreateToken", request) }
            emit(output.output, .object(["token": Views.document(response.token), "secret": .string(response.secret)])) {
                printError("token \(response.token.name) (\(response.token.role)) created; its secret follows and is not shown again")
                return [response.secret]
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List tokens (never their secrets).",
            discussion: "Example:\n  trellis tokens list"
        )
        @OptionGroup var output: OutputOptions
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            let response: Trellis_V1_ListTokensResponse = try await connection.with("tokens list") {
                try await $0.call("ListTokens", Trellis_V1_ListTokensRequest())
            }
            emit(output.output, Views.document(response)) { Views.table(response).render(terminal) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a token: connections with it are refused from now on.",
            discussion: "Example:\n  trellis tokens revoke ci"
        )
        @Argument(help: "The token's name.") var name: String
        @OptionGroup var connection: ConnectionOptions

        func run() async throws {
            var request = Trellis_V1_RevokeTokenRequest()
            request.name = name
            let _: Trellis_V1_RevokeTokenResponse = try await connection.with("tokens revoke") { try await $0.call("RevokeToken", request) }
            write("token \(name) revoked\n")
        }
    }
}

/// `trellis status`
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the connection: server version, leadership, connected agents, your role.",
        discussion: "Exits 3 if the control plane cannot be reached or refuses the token.\n\nExample:\n  trellis status"
    )
    @OptionGroup var output: OutputOptions
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let settings = try connection.settings()
        let response: Trellis_V1_ServerStatusResponse = try await connection.with("status") {
            try await $0.call("ServerStatus", Trellis_V1_ServerStatusRequest())
        }
        let address = settings.address.description
        emit(output.output, Views.document(response, address: address)) { Views.text(response, address: address) }
    }
}
