import Foundation
import Testing

@testable import TrellisCore

/// Every file in Resources/bad-dags is an invalid DAG whose trailing
/// `# expect: ` comment lines list, in order, exactly the problems it must
/// produce. Adding a case is adding a file.
@Suite struct BadDagTests {
    static let files: [String] = {
        let directory = (try? TestResources.url("bad-dags").path) ?? ""
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasSuffix(".yaml") }
            .sorted()
    }()

    @Test func thereAreAtLeastFortyCases() {
        #expect(Self.files.count >= 40)
    }

    @Test(arguments: files)
    func reportsExactlyTheExpectedProblems(file: String) throws {
        let text = try TestResources.read("bad-dags/\(file)")
        let expected = text.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { $0.hasPrefix("# expect: ") }
            .map { String($0.dropFirst("# expect: ".count)) }
        #expect(!expected.isEmpty, "\(file) has no '# expect: ' lines")

        do {
            let dag = try DagFile.parse(text, file: file)
            Issue.record("\(file) was accepted as DAG '\(dag.spec.dagID)'")
        } catch {
            let actual = error.problems.map(\.description)
            #expect(actual == expected, "\(file) reported:\n\(actual.map { "# expect: \($0)" }.joined(separator: "\n"))")
        }
    }
}
