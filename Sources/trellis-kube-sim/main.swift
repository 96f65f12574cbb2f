import Foundation
import KubeSimulator
import TrellisProcess
#if canImport(Glibc)
import Glibc
#endif

// trellis-kube-sim: the Kubernetes API simulator (a test double; see
// KubeSimulator). Usage: trellis-kube-sim [--host H] [--port P] [--history N]
// [--log-dir D] [--unpullable-image IMAGE]... [--start-delay-ms MS]. Faults at run time:
// POST /simulator/faults {"code":500,"count":2,"method":"POST"} and
// POST /simulator/drop-watches.

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
    default:
        FileHandle.standardError.write(Data("trellis-kube-sim: unknown option \(flag)\nusage: trellis-kube-sim [--host H] [--port P] [--history N] [--log-dir D] [--unpullable-image IMAGE]... [--start-delay-ms MS]\n".utf8))
        exit(2)
    }
}

let signals = SignalWaiter([SIGINT, SIGTERM])
let simulator = try KubeSimulator(configuration: configuration)
try await simulator.start()
FileHandle.standardOutput.write(Data("trellis-kube-sim: listening on \(configuration.host):\(simulator.port ?? 0)\n".utf8))
_ = await signals.next()
await simulator.shutdown()
