import Foundation

/// One benchmark figure, printed as `NAME VALUE UNIT`.
struct Measurement {
    var name: String
    var value: Double
    var unit: String

    var line: String {
        let formatted = value >= 100 || value == value.rounded() ? String(format: "%.0f", value) : String(format: "%.4g", value)
        return "\(name) \(formatted) \(unit)"
    }
}

/// The benchmark runner behind `scripts/bench NAME`. Built in release mode;
/// prints one line per figure.
@main
struct TrellisBench {
    static func benchmark(named name: String) -> (() async throws -> [Measurement])? {
        switch name {
        case "core": { try CoreBenchmark.run() }
        case "wire": { try await WireBenchmark.run() }
        case "store": { try await StoreBenchmark.run() }
        case "scheduler": { try await SchedulerBenchmark.run() }
        case "pool": { try await PoolBenchmark.run() }
        case "pod": { try await PodBenchmark.run() }
        case "agents": { try await AgentsBenchmark.run() }
        case "wire-one": { try await WireBenchmark.runOne(Array(CommandLine.arguments.dropFirst(2))) }
        default: nil
        }
    }

    static let names = ["core", "wire", "store", "scheduler", "pool", "pod", "agents"]

    static func main() async throws {
        let arguments = CommandLine.arguments.dropFirst()
        guard let name = arguments.first, let benchmark = benchmark(named: name) else {
            FileHandle.standardError.write(Data("usage: trellis-bench NAME (one of: \(names.joined(separator: ", "))), or trellis-bench wire-one MODE SHAPE to profile one wire configuration\n".utf8))
            exit(2)
        }
        let measurements: [Measurement]
        do {
            measurements = try await benchmark()
        } catch let error as BenchError {
            FileHandle.standardError.write(Data("trellis-bench \(name): \(error.description)\n".utf8))
            exit(1)
        }
        for measurement in measurements {
            print(measurement.line)
        }
    }
}

/// Why a benchmark could not run.
struct BenchError: Error, CustomStringConvertible {
    var description: String
}
