import Foundation
import KubeSimulator
import TrellisProcess
#if canImport(Glibc)
import Glibc
#endif

// trellis-kube-sim: the Kubernetes API simulator (a test double; see
// KubeSimulator). Usage: trellis-kube-sim [--host H] [--port P] [--history N]
// [--log-dir D] [--unpullable-image IMAGE]... [--start-delay-ms MS]
// [--token TOKEN | --token-file PATH]. With a token every API request needs
// `Authorization: Bearer TOKEN` (401 Unauthorized otherwise); a token file is
// read again on every request, so it can be rotated. Faults at run time:
// POST /simulator/faults {"code":500,"count":2,"method":"POST"} and
// POST /simulator/drop-watches; GET /simulator/requests counts the API
// requests per method and path, and the connections accepted.

var configuration = KubeSimulator.Configuration()
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst() else {
        FileHandle.standardError.write(Data("trellis-kube-sim: \(flag) needs a value\n".utf8))
        exit(2)
    }
    switch flag {
    case "--host": configuration.host = value
    case "--port": configuration.port = Int(value) ?? 0
    case "--history": configuration.historyLimit = Int(value) ?? 1000
    case "--log-dir": configuration.logDirectory = value
    case "--unpullable-image": configuration.unpullableImages.insert(value)
    case "--start-delay-ms": configuration.startDelay = .milliseconds(Int(value) ?? 0)
    case "--token": configuration.bearerToken = value
    case "--token-file": configuration.bearerTokenFile = value
    default:
        FileHandle.standardError.write(Data("trellis-kube-sim: unknown option \(flag)\nusage: trellis-kube-sim [--host H] [--port P] [--history N] [--log-dir D] [--unpullable-image IMAGE]... [--start-delay-ms MS] [--token TOKEN | --token-file PATH]\n".utf8))
        exit(2)
    }
}

let signals = SignalWaiter([SIGINT, SIGTERM])
let simulator = try KubeSimulator(configuration: configuration)
try await simulator.start()
FileHandle.standardOutput.write(Data("trellis-kube-sim: listening on \(configuration.host):\(simulator.port ?? 0)\n".utf8))
_ = await signals.next()
await simulator.shutdown()
