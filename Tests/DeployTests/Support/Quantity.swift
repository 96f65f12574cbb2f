import Foundation

/// A Kubernetes resource quantity (`250m`, `2`, `512Mi`, `1G`) as a number,
/// to compare requests with limits.
enum Quantity {
    private static let suffixes: [(String, Double)] = [
        ("Ki", 1024), ("Mi", 1024 * 1024), ("Gi", 1024 * 1024 * 1024), ("Ti", 1024 * 1024 * 1024 * 1024),
        ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("m", 1e-3),
    ]

    static func value(_ value: KubeValue) -> Double? {
        if let int = value.int { return Double(int) }
        guard let text = value.string else { return nil }
        for (suffix, factor) in suffixes where text.hasSuffix(suffix) {
            return Double(text.dropLast(suffix.count)).map { $0 * factor }
        }
        return Double(text)
    }
}
