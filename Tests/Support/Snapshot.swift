public import Foundation
public import Testing

/// Compares `actual` with the snapshot file `name` in Snapshots/ beside
/// the calling test file. With TRELLIS_UPDATE_SNAPSHOTS=1 it writes the file instead.
/// A mismatch shows a line diff.
public func expectSnapshot(_ actual: String, named name: String, filePath: String = #filePath, sourceLocation: SourceLocation = #_sourceLocation) {
    let directory = URL(fileURLWithPath: filePath).deletingLastPathComponent().appendingPathComponent("Snapshots")
    let file = directory.appendingPathComponent(name)
    if ProcessInfo.processInfo.environment["TRELLIS_UPDATE_SNAPSHOTS"] == "1" {
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try? Data(actual.utf8).write(to: file)
        return
    }
    guard let expected = try? String(contentsOf: file, encoding: .utf8) else {
        Issue.record("no snapshot \(file.path); run with TRELLIS_UPDATE_SNAPSHOTS=1 to write it:\n\(actual)", sourceLocation: sourceLocation)
        return
    }
    if expected != actual {
        Issue.record("snapshot \(name) differs (- expected, + actual; TRELLIS_UPDATE_SNAPSHOTS=1 rewrites it):\n\(lineDiff(expected, actual))", sourceLocation: sourceLocation)
    }
}

/// A minimal line diff: common lines unmarked, others `-`/`+` (LCS).
public func lineDiff(_ old: String, _ new: String) -> String {
    let a = old.components(separatedBy: "\n"), b = new.components(separatedBy: "\n")
    var lcs = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in stride(from: a.count - 1, through: 0, by: -1) {
        for j in stride(from: b.count - 1, through: 0, by: -1) {
            lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
        }
    }
    var out: [String] = []
    var i = 0, j = 0
    while i < a.count || j < b.count {
        if i < a.count, j < b.count, a[i] == b[j] {
            out.append("  " + a[i]); i += 1; j += 1
        } else if i < a.count, j == b.count || lcs[i + 1][j] >= lcs[i][j + 1] {
            out.append("- " + a[i]); i += 1
        } else {
            out.append("+ " + b[j]); j += 1
        }
    }
    return out.joined(separator: "\n")
}
