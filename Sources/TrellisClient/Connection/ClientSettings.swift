import Foundation
import Yams

/// Where `trellis` connects and with which API token, resolved from (first
/// wins) command-line flags, the environment (`TRELLIS_ADDRESS`,
/// `TRELLIS_TOKEN`), the config file
/// (`${XDG_CONFIG_HOME:-$HOME/.config}/trellis/config.yaml`, which
/// `trellisd standalone` writes) and the default address.
public struct ClientSettings: Sendable, Hashable {
    public static let defaultAddress = "127.0.0.1:7400"

    public var address: ServerAddress
    /// Empty when no source gave one.
    public var token: String
    /// Where each value came from, for error messages ("flag --address", …).
    public var addressSource: String
    public var tokenSource: String

    /// What the command line gave.
    public struct Flags: Sendable, Hashable {
        public var address: String?
        public var token: String?
        public var tokenFile: String?

        public init(address: String? = nil, token: String? = nil, tokenFile: String? = nil) {
            self.address = address
            self.token = token
            self.tokenFile = tokenFile
        }
    }

    /// Resolves the settings. `readFile` reads a file's text (the token file
    /// and the config file; nil when it does not exist), so tests need no
    /// file system.
    public static func resolve(
        flags: Flags,
        environment: [String: String],
        readFile: (String) throws -> String? = ClientSettings.readFile
    ) throws(ClientError) -> ClientSettings {
        let configPath = ConfigFile.path(environment: environment)
        var config: ConfigFile?
        func loadConfig() throws(ClientError) -> ConfigFile? {
            if config == nil, let path = configPath {
                let text: String?
                do { text = try readFile(path) } catch {
                    throw ClientError(.usage, "cannot read the config file \(path): \(error.localizedDescription)")
                }
                if let text { config = try ConfigFile.parse(text, path: path) }
            }
            return config
        }

        let addressText: String
        let addressSource: String
        if let flag = flags.address, !flag.isEmpty {
            (addressText, addressSource) = (flag, "--address")
        } else if let value = environment["TRELLIS_ADDRESS"], !value.isEmpty {
            (addressText, addressSource) = (value, "TRELLIS_ADDRESS")
        } else if let value = try loadConfig()?.address, !value.isEmpty {
            (addressText, addressSource) = (value, configPath ?? "the config file")
        } else {
            (addressText, addressSource) = (defaultAddress, "the default")
        }
        let address: ServerAddress
        do { address = try ServerAddress(addressText) } catch {
            throw ClientError(.usage, "\(error.message) (from \(addressSource))")
        }

        var token = ""
        var tokenSource = "none"
        if let flag = flags.token, !flag.isEmpty {
            (token, tokenSource) = (flag, "--token")
        } else if let file = flags.tokenFile {
            let text: String?
            do { text = try readFile(file) } catch {
                throw ClientError(.usage, "cannot read the token file \(file): \(error.localizedDescription)")
            }
            guard let text else { throw ClientError(.usage, "the token file \(file) does not exist") }
            (token, tokenSource) = (text.trimmingCharacters(in: .whitespacesAndNewlines), "--token-file \(file)")
        } else if let value = environment["TRELLIS_TOKEN"], !value.isEmpty {
            (token, tokenSource) = (value, "TRELLIS_TOKEN")
        } else if let value = try loadConfig()?.token, !value.isEmpty {
            (token, tokenSource) = (value, configPath ?? "the config file")
        }
        return ClientSettings(address: address, token: token, addressSource: addressSource, tokenSource: tokenSource)
    }

    public init(address: ServerAddress, token: String, addressSource: String = "", tokenSource: String = "") {
        self.address = address
        self.token = token
        self.addressSource = addressSource
        self.tokenSource = tokenSource
    }

    /// Reads a file; nil when it does not exist.
    public static func readFile(_ path: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try String(contentsOfFile: path, encoding: .utf8)
    }
}

/// `HOST:PORT` of a control plane's wire port (`[v6]:PORT` for IPv6; the
/// port defaults to 7400).
public struct ServerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(_ text: String) throws(ClientError) {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        for scheme in ["trellis://", "tcp://"] where rest.hasPrefix(scheme) { rest = rest.dropFirst(scheme.count) }
        let host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else {
                throw ClientError(.usage, "'\(text)' is not an address: expected HOST:PORT, e.g. 127.0.0.1:7400")
            }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw ClientError(.usage, "'\(text)' is not an address: expected HOST:PORT, e.g. 127.0.0.1:7400")
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else {
            throw ClientError(.usage, "'\(text)' is not an address: expected HOST:PORT, e.g. 127.0.0.1:7400")
        }
        var port = 7400
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw ClientError(.usage, "'\(text)' is not an address: the port must be a number from 1 to 65535")
            }
            port = value
        }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The client's config file: exactly `address:` and `token:` (both
/// optional). `trellisd standalone` writes it for the local deployment.
public struct ConfigFile: Sendable, Hashable {
    public var address: String?
    public var token: String?

    public init(address: String? = nil, token: String? = nil) {
        self.address = address
        self.token = token
    }

    /// `${XDG_CONFIG_HOME:-$HOME/.config}/trellis/config.yaml`; nil with
    /// neither variable set.
    public static func path(environment: [String: String]) -> String? {
        if let xdg = environment["XDG_CONFIG_HOME"], !xdg.isEmpty { return xdg + "/trellis/config.yaml" }
        if let home = environment["HOME"], !home.isEmpty { return home + "/.config/trellis/config.yaml" }
        return nil
    }

    public static func parse(_ text: String, path: String) throws(ClientError) -> ConfigFile {
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw ClientError(.usage, "the config file \(path) is not valid YAML: \(error). It holds `address: HOST:PORT` and `token: TOKEN`.")
        }
        guard let node else { return ConfigFile() }
        guard let mapping = node.mapping else {
            throw ClientError(.usage, "the config file \(path) must be a mapping with `address:` and `token:`")
        }
        var file = ConfigFile()
        for (key, value) in mapping {
            guard let name = key.string else { continue }
            switch name {
            case "address": file.address = value.string
            case "token": file.token = value.string
            default: continue  // newer keys are ignored, so old clients keep working
            }
        }
        return file
    }
}
