import Testing

@testable import TrellisCore

@Suite struct DagGraphTests {
    @Test func diamondIsIndexedAndSorted() throws {
        let graph = try DagGraph(tasks: [
            ("join", ["left", "right"]),
            ("left", ["start"]),
            ("start", []),
            ("right", ["start", "start"]),
        ])
        #expect(graph.taskIDs == ["join", "left", "start", "right"])
        #expect(graph.upstream == [[1, 3], [2], [], [2]])
        #expect(graph.downstream == [[], [0], [1, 3], [0]])
        #expect(graph.topologicalOrder.map { graph.taskIDs[$0] } == ["start", "left", "right", "join"])
    }

    @Test func everyProblemIsListed() {
        let problems = DagGraph.problems(of: [
            ("a", ["c"]),
            ("b", ["a"]),
            ("c", ["b"]),
            ("d", ["d", "ghost"]),
            ("a", []),
            ("e", ["f"]),
            ("f", ["e"]),
        ])
        // Cycles read in the direction work flows: a runs before b (b's upstream is a).
        #expect(problems == [
            .duplicateTask("a"),
            .selfDependency("d"),
            .unknownUpstream(task: "d", upstream: "ghost"),
            .cycle(["a", "b", "c", "a"]),
            .cycle(["e", "f", "e"]),
        ])
    }

    @Test func cycleBehindAnotherIsFound() throws {
        // x depends on the cycle but is not part of it; only the cycle is reported.
        let problems = DagGraph.problems(of: [("x", ["p"]), ("p", ["q"]), ("q", ["p"])])
        #expect(problems == [.cycle(["p", "q", "p"])])
    }

    @Test func deepChainDoesNotOverflow() throws {
        let count = 50_000
        var tasks: [(id: String, upstream: [String])] = [("t0", [])]
        for i in 1..<count { tasks.append(("t\(i)", ["t\(i - 1)"])) }
        tasks[0].upstream = ["t\(count - 1)"]  // close the loop
        let problems = DagGraph.problems(of: tasks)
        guard case .cycle(let ids) = problems.first else {
            Issue.record("expected a cycle, got \(problems)")
            return
        }
        #expect(ids.count == count + 1)
    }
}
