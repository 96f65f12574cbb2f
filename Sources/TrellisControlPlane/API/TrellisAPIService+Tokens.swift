import Foundation
import TrellisProto
import TrellisStore
import TrellisWire

/// API token methods (admin only). The secret is in `CreateToken`'s answer
/// and nowhere else; the authenticator is refreshed after each change.
extension TrellisAPIService {
    func createToken(_ request: Trellis_V1_CreateTokenRequest, _ caller: APICaller) async throws -> Trellis_V1_CreateTokenResponse {
        let name = request.name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty else { throw WireError(.invalidArgument, "name is empty: give the token a name to list and revoke it by") }
        guard let role = TokenRole(rawValue: request.role) else {
            throw WireError(.invalidArgument, "role '\(request.role)' is not one of \(TokenRole.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if try await store.tokens().contains(where: { $0.name == name }) {
            throw WireError(.alreadyExists, "a token named '\(name)' already exists (revoked tokens keep their names)")
        }
        // A concurrent creation of the same name fails on the unique
        // constraint: ALREADY_EXISTS through APIErrors.
        let secret = try await store.createToken(name: name, role: role)
        try await tokens?.refresh()
        var response = Trellis_V1_CreateTokenResponse()
        if let record = try await store.tokens().first(where: { $0.name == name }) { response.token = APIMapping.token(record) }
        response.secret = secret
        return response
    }

    func listTokens(_ request: Trellis_V1_ListTokensRequest, _ caller: APICaller) async throws -> Trellis_V1_ListTokensResponse {
        var response = Trellis_V1_ListTokensResponse()
        response.tokens = try await store.tokens().map(APIMapping.token)
        return response
    }

    func revokeToken(_ request: Trellis_V1_RevokeTokenRequest, _ caller: APICaller) async throws -> Trellis_V1_RevokeTokenResponse {
        guard try await store.revokeToken(name: request.name) else {
            throw APIErrors.notFound("live token", request.name, known: try await store.tokens().filter { $0.revokedAt == nil }.map(\.name))
        }
        try await tokens?.refresh()
        return Trellis_V1_RevokeTokenResponse()
    }
}
