import Synchronization

/// The metrics trellisd exposes, held in memory and rendered for Prometheus
/// in its text exposition format 0.0.4.
///
/// A family (a name, help text, a type and label names) is registered once;
/// the handle it returns (`Counter`, `Gauge`, `Histogram`) updates one series
/// per set of label values. Every handle may be used from any thread: each
/// family keeps its series behind a lock of its own. `render()` lists the
/// families by name and their series by label values, so two renders of the
/// same state are byte for byte equal.
///
/// Names and label names are checked when registered (Prometheus's
/// `[a-zA-Z_:][a-zA-Z0-9_:]*` and `[a-zA-Z_][a-zA-Z0-9_]*`); passing the
/// wrong number of label values is a programming error and traps.
public final class MetricsRegistry: Sendable {
    private let families = Mutex<[String: MetricFamily]>([:])

    public init() {}

    /// Registers a counter (a value that only goes up), or returns the one
    /// already registered under `name` with the same labels.
    public func counter(_ name: String, help: String, labelNames: [String] = []) -> Counter {
        Counter(family: register(name, help: help, kind: .counter, labelNames: labelNames))
    }

    /// Registers a gauge (a value that goes up and down), or returns the one
    /// already registered under `name` with the same labels.
    public func gauge(_ name: String, help: String, labelNames: [String] = []) -> Gauge {
        Gauge(family: register(name, help: help, kind: .gauge, labelNames: labelNames))
    }

    /// Registers a histogram with the given upper bucket bounds (`+Inf` is
    /// always added), or returns the one already registered under `name`.
    public func histogram(
        _ name: String, help: String, labelNames: [String] = [], buckets: [Double] = Histogram.defaultBuckets
    ) -> Histogram {
        let bounds = Array(Set(buckets.filter { $0.isFinite })).sorted()
        precondition(!labelNames.contains("le"), "metric \(name): a histogram cannot have a label named 'le'")
        return Histogram(family: register(name, help: help, kind: .histogram(bounds: bounds), labelNames: labelNames))
    }

    /// Every family in the Prometheus text exposition format 0.0.4.
    public func render() -> String {
        let snapshot = families.withLock { families in families.values.sorted { $0.name < $1.name } }
        var output = ""
        for family in snapshot {
            family.render(into: &output)
        }
        return output
    }

    private func register(_ name: String, help: String, kind: MetricKind, labelNames: [String]) -> MetricFamily {
        precondition(PrometheusText.isValidMetricName(name), "metric name '\(name)' is not a valid Prometheus name")
        for label in labelNames {
            precondition(PrometheusText.isValidLabelName(label), "metric \(name): label name '\(label)' is not valid")
        }
        precondition(Set(labelNames).count == labelNames.count, "metric \(name): label names repeat")
        return families.withLock { families in
            if let existing = families[name] {
                precondition(
                    existing.kind == kind && existing.labelNames == labelNames,
                    "metric \(name) is already registered with another type or other labels"
                )
                return existing
            }
            let family = MetricFamily(name: name, help: help, kind: kind, labelNames: labelNames)
            families[name] = family
            return family
        }
    }
}

/// A value that only goes up: events counted since the process started.
public struct Counter: Sendable {
    let family: MetricFamily

    /// Adds `amount` (never negative) to the series with these label values,
    /// given in the order of the family's label names.
    public func increment(by amount: Double = 1, labels: [String] = []) {
        precondition(amount >= 0, "counter \(family.name) cannot decrease")
        family.update(labels) { $0.value += amount }
    }

    /// The current value of one series (0 if it was never touched).
    public func value(labels: [String] = []) -> Double {
        family.read(labels) { $0.value }
    }
}

/// A value that goes up and down: a level measured now.
public struct Gauge: Sendable {
    let family: MetricFamily

    /// Sets the series with these label values to `value`.
    public func set(_ value: Double, labels: [String] = []) {
        family.update(labels) { $0.value = value }
    }

    /// Adds `amount` (which may be negative) to one series.
    public func increment(by amount: Double = 1, labels: [String] = []) {
        family.update(labels) { $0.value += amount }
    }

    /// Subtracts `amount` from one series.
    public func decrement(by amount: Double = 1, labels: [String] = []) {
        increment(by: -amount, labels: labels)
    }

    /// Replaces every series at once, so label values that no longer exist
    /// (a deleted pool, an unloaded executor) stop being reported.
    public func replaceAll(_ values: [[String]: Double]) {
        family.replaceAll(values.mapValues { SeriesValue(value: $0) })
    }

    /// The current value of one series (0 if it was never set).
    public func value(labels: [String] = []) -> Double {
        family.read(labels) { $0.value }
    }
}

/// Observations counted into cumulative buckets, with their sum and count:
/// durations, latencies.
public struct Histogram: Sendable {
    let family: MetricFamily

    /// Prometheus's default buckets, in seconds.
    public static let defaultBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// Records one observation in the series with these label values.
    /// NaN is ignored.
    public func observe(_ value: Double, labels: [String] = []) {
        guard !value.isNaN else { return }
        guard case .histogram(let bounds) = family.kind else { return }
        let index = bounds.firstIndex { value <= $0 } ?? bounds.count
        family.update(labels) { series in
            series.bucketCounts[index] += 1
            series.value += value
            series.count += 1
        }
    }

    /// How many observations one series has (0 if none).
    public func count(labels: [String] = []) -> UInt64 {
        family.read(labels) { $0.count }
    }

    /// The sum of one series' observations.
    public func sum(labels: [String] = []) -> Double {
        family.read(labels) { $0.value }
    }
}

/// The type of a family, as `# TYPE` names it.
enum MetricKind: Equatable, Sendable {
    case counter, gauge
    case histogram(bounds: [Double])

    var typeName: String {
        switch self {
        case .counter: "counter"
        case .gauge: "gauge"
        case .histogram: "histogram"
        }
    }
}

/// One series' state: a counter's or gauge's value, or a histogram's sum
/// (`value`), count and per-bucket (not yet cumulative) counts.
struct SeriesValue: Sendable {
    var value: Double = 0
    var count: UInt64 = 0
    var bucketCounts: [UInt64] = []
}

/// A registered family and its series, each keyed by its label values.
final class MetricFamily: Sendable {
    let name: String
    let help: String
    let kind: MetricKind
    let labelNames: [String]
    private let series: Mutex<[[String]: SeriesValue]>

    init(name: String, help: String, kind: MetricKind, labelNames: [String]) {
        self.name = name
        self.help = help
        self.kind = kind
        self.labelNames = labelNames
        // A family without labels has exactly one series, reported from the start.
        self.series = Mutex(labelNames.isEmpty ? [[]: MetricFamily.emptySeries(kind)] : [:])
    }

    private static func emptySeries(_ kind: MetricKind) -> SeriesValue {
        if case .histogram(let bounds) = kind {
            return SeriesValue(bucketCounts: Array(repeating: 0, count: bounds.count + 1))
        }
        return SeriesValue()
    }

    func update(_ labels: [String], _ body: (inout SeriesValue) -> Void) {
        precondition(labels.count == labelNames.count, "metric \(name) takes \(labelNames.count) label values, got \(labels.count)")
        let kind = kind
        series.withLock { series in
            body(&series[labels, default: MetricFamily.emptySeries(kind)])
        }
    }

    func read<T>(_ labels: [String], _ body: (SeriesValue) -> T) -> T {
        let kind = kind
        return series.withLock { series in body(series[labels] ?? MetricFamily.emptySeries(kind)) }
    }

    func replaceAll(_ values: [[String]: SeriesValue]) {
        for labels in values.keys {
            precondition(labels.count == labelNames.count, "metric \(name) takes \(labelNames.count) label values, got \(labels.count)")
        }
        series.withLock { $0 = values }
    }

    func render(into output: inout String) {
        let rows = series.withLock { series in
            series.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        }
        output += "# HELP \(name) \(PrometheusText.escapeHelp(help))\n"
        output += "# TYPE \(name) \(kind.typeName)\n"
        for (labels, value) in rows {
            let pairs = zip(labelNames, labels).map { ($0, $1) }
            switch kind {
            case .counter, .gauge:
                output += name + PrometheusText.labelSet(pairs) + " " + PrometheusText.number(value.value) + "\n"
            case .histogram(let bounds):
                var cumulative: UInt64 = 0
                for (index, bound) in bounds.enumerated() {
                    cumulative += value.bucketCounts[index]
                    output += name + "_bucket" + PrometheusText.labelSet(pairs + [("le", PrometheusText.number(bound))])
                        + " \(cumulative)\n"
                }
                output += name + "_bucket" + PrometheusText.labelSet(pairs + [("le", "+Inf")]) + " \(value.count)\n"
                output += name + "_sum" + PrometheusText.labelSet(pairs) + " " + PrometheusText.number(value.value) + "\n"
                output += name + "_count" + PrometheusText.labelSet(pairs) + " \(value.count)\n"
            }
        }
    }
}
