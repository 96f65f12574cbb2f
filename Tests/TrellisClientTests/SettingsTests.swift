import Testing
import TrellisClient
import TrellisWire

@Suite struct SettingsTests {
    static let configPath = "/cfg/trellis/config.yaml"
    static let files = [
        configPath: "address: file-host:7401\ntoken: file-token\n",
        "/tokens/ci": "  flag-file-token\n",
    ]

    func resolve(_ flags: ClientSettings.Flags = .init(), env: [String: String] = ["XDG_CONFIG_HOME": "/cfg"], files: [String: String] = files) throws -> ClientSettings {
        try ClientSettings.resolve(flags: flags, environment: env, readFile: { files[$0] })
    }

    @Test func flagsWinOverEnvironmentWhichWinsOverTheFile() throws {
        let env = ["XDG_CONFIG_HOME": "/cfg", "TRELLIS_ADDRESS": "env-host:7402", "TRELLIS_TOKEN": "env-token"]
        let flagged = try resolve(.init(address: "flag-host:7403", token: "flag-token"), env: env)
        #expect(flagged.address == ServerAddress(host: "flag-host", port: 7403))
        #expect(flagged.token == "flag-token")
        #expect(flagged.addressSource == "--address")

        let fromEnvironment = try resolve(env: env)
        #expect(fromEnvironment.address == ServerAddress(host: "env-host", port: 7402))
        #expect(fromEnvironment.token == "env-token")
        #expect(fromEnvironment.tokenSource == "TRELLIS_TOKEN")

        let fromFile = try resolve()
        #expect(fromFile.address == ServerAddress(host: "file-host", port: 7401))
        #expect(fromFile.token == "file-token")
        #expect(fromFile.tokenSource == Self.configPath)
    }

    @Test func aTokenFileFlagWinsOverTheEnvironmentAndIsTrimmed() throws {
        let settings = try resolve(.init(tokenFile: "/tokens/ci"), env: ["XDG_CONFIG_HOME": "/cfg", "TRELLIS_TOKEN": "env-token"])
        #expect(settings.token == "flag-file-token")
        #expect(throws: ClientError.self) { try resolve(.init(tokenFile: "/tokens/missing")) }
    }

    @Test func withoutAnySourceTheDefaultAddressAndNoToken() throws {
        let settings = try resolve(env: ["HOME": "/home/me"], files: [:])
        #expect(settings.address == ServerAddress(host: "127.0.0.1", port: 7400))
        #expect(settings.token.isEmpty)
        #expect(settings.tokenSource == "none")
    }

    @Test func theConfigFileLivesUnderXDGConfigHomeOrHome() {
        #expect(ConfigFile.path(environment: ["XDG_CONFIG_HOME": "/x", "HOME": "/h"]) == "/x/trellis/config.yaml")
        #expect(ConfigFile.path(environment: ["HOME": "/h"]) == "/h/.config/trellis/config.yaml")
        #expect(ConfigFile.path(environment: [:]) == nil)
    }

    @Test func aBrokenConfigFileIsAUsageErrorNamingTheFile() throws {
        let error = #expect(throws: ClientError.self) {
            _ = try resolve(files: [Self.configPath: "address: [unclosed\n"])
        }
        #expect(error?.exitCode == 2)
        #expect(error?.message.contains(Self.configPath) == true)
        // Keys a newer trellisd writes are ignored.
        #expect(try ConfigFile.parse("address: a:1\ntoken: t\nnamespace: x\n", path: "c") == ConfigFile(address: "a:1", token: "t"))
    }

    @Test func addresses() throws {
        #expect(try ServerAddress("localhost") == ServerAddress(host: "localhost", port: 7400))
        #expect(try ServerAddress("10.0.0.1:9000") == ServerAddress(host: "10.0.0.1", port: 9000))
        #expect(try ServerAddress("[::1]:7400") == ServerAddress(host: "::1", port: 7400))
        #expect(try ServerAddress("[::1]:7400").description == "[::1]:7400")
        for bad in ["host:port", "host:0", ":7400", "[::1"] {
            #expect(throws: ClientError.self, "\(bad)") { try ServerAddress(bad) }
        }
    }
}

@Suite struct ExitCodeTests {
    let address = ServerAddress(host: "127.0.0.1", port: 7400)

    func map(_ code: WireError.Code, _ message: String = "x", tokenSource: String = "TRELLIS_TOKEN") -> ClientError {
        ClientError.from(WireError(code, message), verb: "dags list", address: address, tokenSource: tokenSource)
    }

    @Test func eachStatusCodeGetsItsExitCode() {
        #expect(map(.unavailable).exitCode == 3)
        #expect(map(.deadlineExceeded).exitCode == 3)
        #expect(map(.unauthenticated).exitCode == 3)
        #expect(map(.permissionDenied).exitCode == 3)
        #expect(map(.notFound).exitCode == 2)
        #expect(map(.invalidArgument).exitCode == 2)
        #expect(map(.failedPrecondition).exitCode == 2)
        #expect(map(.internal).exitCode == 1)
    }

    @Test func messagesSayWhatToDoNext() {
        let refused = map(.unavailable, "cannot connect to 127.0.0.1:7400: connect(descriptor:addr:size:): Connection refused (errno: 111)")
        #expect(refused.message == """
            cannot reach trellisd at 127.0.0.1:7400: connection refused. Is it running? Start one with \
            `trellisd standalone`, or set --address / TRELLIS_ADDRESS.
            """)
        #expect(map(.unauthenticated, tokenSource: "none").message.contains("no API token was given"))
        #expect(map(.unauthenticated).message.contains("from TRELLIS_TOKEN was refused"))
        let denied = map(.permissionDenied, "SubmitDag requires the admin role; this token is viewer")
        #expect(denied.message.contains("requires the admin role"))
        let missing = map(.notFound, "DAG 'etll' does not exist; did you mean 'etl'? (known: etl)")
        #expect(missing.message == "dags list: DAG 'etll' does not exist; did you mean 'etl'? (known: etl)")
    }
}
