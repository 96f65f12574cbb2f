import Foundation
import Testing

@testable import TrellisCore

@Suite struct DurationTextTests {
    @Test(arguments: [
        ("30s", 30_000), ("5m", 300_000), ("23h", 82_800_000), ("1d", 86_400_000), ("2w", 1_209_600_000),
        ("300", 300_000), ("0", 0), ("0s", 0), ("1h30m", 5_400_000), ("1d2h3m4s", 93_784_000),
        ("250ms", 250), ("1m30s500ms", 90_500), (" 45s ", 45_000),
    ] as [(String, Int64)])
    func parses(text: String, millis: Int64) throws {
        #expect(try DurationText.millis(text) == millis)
    }

    @Test(arguments: ["", "-5s", "5x", "1h30", "h", "5 m", "1h1h", "1.5h", "99999999999999d", "s5"])
    func rejects(text: String) {
        #expect(throws: CoreError.self) { try DurationText.millis(text) }
    }

    @Test func formatsShortest() {
        #expect(DurationText.format(millis: 0) == "0s")
        #expect(DurationText.format(millis: 5_400_000) == "1h30m")
        #expect(DurationText.format(millis: 90_500) == "1m30s500ms")
        #expect(DurationText.format(millis: 86_400_000 * 3) == "3d")
    }
}

@Suite struct DateTextTests {
    static let berlin = TimeZone(identifier: "Europe/Berlin")!

    @Test func naiveDatesAreReadInTheDagsZone() throws {
        // 2024-07-01 00:00 in Berlin (CEST, +02:00) is 2024-06-30T22:00Z.
        let date = try DateText.parse("2024-07-01", in: Self.berlin)
        #expect(UTCFormat.timestamp(date) == "2024-06-30T22:00:00+00:00")
    }

    @Test func explicitOffsetsWin() throws {
        #expect(UTCFormat.timestamp(try DateText.parse("2024-07-01T12:30:00Z", in: Self.berlin)) == "2024-07-01T12:30:00+00:00")
        #expect(UTCFormat.timestamp(try DateText.parse("2024-07-01 12:30+05:30", in: Self.berlin)) == "2024-07-01T07:00:00+00:00")
    }

    @Test(arguments: ["2024-13-01", "2024-02-30", "2023-02-29", "24-01-01", "2024-01-01T25:00", "2024-01-01X", "yesterday"])
    func rejects(text: String) {
        #expect(throws: CoreError.self) { try DateText.parse(text, in: Self.berlin) }
    }

    @Test func leapDayExists() throws {
        #expect(UTCFormat.date(try DateText.parse("2024-02-29", in: TimeZone(identifier: "UTC")!)) == "2024-02-29")
    }
}

@Suite struct TemplateTests {
    static let context = TemplateContext(
        dagID: "etl", taskID: "load", runID: "scheduled__2024-03-10T01:00:00+00:00", tryNumber: 2,
        logicalDate: Date(timeIntervalSince1970: 1_710_032_400),  // 2024-03-10T01:00:00Z
        dataIntervalStart: Date(timeIntervalSince1970: 1_710_032_400),
        dataIntervalEnd: Date(timeIntervalSince1970: 1_710_118_800),
        params: ["region": "eu", "limit": "1000"],
        xcom: ["count": #"{"rows": 42}"#]
    )

    @Test func rendersAirflowMacros() throws {
        let template = try Template(parsing: "{{ds}} {{ ds_nodash }} {{ ts }} {{ ts_nodash }} {{ logical_date }} {{ data_interval_start }}..{{ data_interval_end }} {{ run_id }} {{ dag_id }}.{{ task_id }} #{{ try_number }} {{ params.region }}/{{ params.limit }} {{ xcom.count }}")
        #expect(try template.render(Self.context) == """
            2024-03-10 20240310 2024-03-10T01:00:00+00:00 20240310T010000 2024-03-10T01:00:00+00:00 \
            2024-03-10T01:00:00+00:00..2024-03-11T01:00:00+00:00 scheduled__2024-03-10T01:00:00+00:00 etl.load #2 eu/1000 {"rows": 42}
            """)
    }

    @Test func textWithoutMacrosIsUnchanged() throws {
        let template = try Template(parsing: "echo 'single { braces } stay'")
        #expect(template.parts == [.text("echo 'single { braces } stay'")])
        #expect(try template.render(Self.context) == "echo 'single { braces } stay'")
    }

    @Test func listsItsMacros() throws {
        #expect(try Template(parsing: "{{ params.a }}-{{ xcom.t-1 }}-{{ ds }}").macros == [.param("a"), .xcom("t-1"), .ds])
    }

    @Test(arguments: ["{{ execution_date }}", "{{ ds | upper }}", "{{ ds", "{{ }}", "{{ params. }}", "{{ var.value.x }}"])
    func rejects(text: String) {
        #expect(throws: CoreError.self) { try Template(parsing: text) }
    }

    @Test func missingValuesAreErrorsWhenRendering() throws {
        #expect(throws: CoreError.self) { try Template(parsing: "{{ params.missing }}").render(Self.context) }
        #expect(throws: CoreError.self) { try Template(parsing: "{{ xcom.other }}").render(Self.context) }
    }
}

@Suite struct KubernetesNamesTests {
    @Test func dnsLabels() {
        #expect(KubernetesNames.dns1123LabelProblem("airflow-k8spodoperator") == nil)
        #expect(KubernetesNames.dns1123LabelProblem("a") == nil)
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", String(repeating: "a", count: 64)] {
            #expect(KubernetesNames.dns1123LabelProblem(bad) != nil, "\(bad)")
        }
    }

    @Test func subdomains() {
        #expect(KubernetesNames.dns1123SubdomainProblem("test-using-k8spodoperator-task-1") == nil)
        #expect(KubernetesNames.dns1123SubdomainProblem("a.b-c.d") == nil)
        for bad in ["", "a..b", ".a", "My_Pod", String(repeating: "a", count: 254)] {
            #expect(KubernetesNames.dns1123SubdomainProblem(bad) != nil, "\(bad)")
        }
    }

    @Test func labelKeysAndValues() {
        #expect(KubernetesNames.qualifiedNameProblem("app.kubernetes.io/name") == nil)
        #expect(KubernetesNames.qualifiedNameProblem("foo") == nil)
        for bad in ["", "/x", "a/b/c", "Bad_Prefix/x", "x/", "-x"] {
            #expect(KubernetesNames.qualifiedNameProblem(bad) != nil, "\(bad)")
        }
        #expect(KubernetesNames.labelValueProblem("") == nil)
        #expect(KubernetesNames.labelValueProblem("Bar_1.0") == nil)
        #expect(KubernetesNames.labelValueProblem("has space") != nil)
        #expect(KubernetesNames.labelValueProblem("-x") != nil)
    }

    @Test func quantities() {
        for good in ["500m", "2", "1.5", "256Mi", "1Gi", "1e3", ".5", "+1", "100k"] {
            #expect(KubernetesNames.quantityProblem(good) == nil, "\(good)")
        }
        for bad in ["half", "", "1GB", "m", "1.2.3", "1e"] {
            #expect(KubernetesNames.quantityProblem(bad) != nil, "\(bad)")
        }
    }
}

@Suite struct BitshiftDependenciesTests {
    typealias Edge = BitshiftDependencies.Edge

    @Test func chainsListsAndBothDirections() throws {
        #expect(try BitshiftDependencies.edges("task_1 >> task_2") == [Edge(upstream: "task_1", downstream: "task_2")])
        #expect(try BitshiftDependencies.edges("a >> [b, c] >> d") == [
            Edge(upstream: "a", downstream: "b"), Edge(upstream: "a", downstream: "c"),
            Edge(upstream: "b", downstream: "d"), Edge(upstream: "c", downstream: "d"),
        ])
        #expect(try BitshiftDependencies.edges("d << c") == [Edge(upstream: "c", downstream: "d")])
        #expect(try BitshiftDependencies.edges("a>>b<<c") == [Edge(upstream: "a", downstream: "b"), Edge(upstream: "c", downstream: "b")])
    }

    @Test(arguments: ["", "a", "a >>", ">> a", "a > b", "[a, b", "a >> [b,] >> c", "a, b >> c", "a >> >> b"])
    func rejects(text: String) {
        #expect(throws: CoreError.self) { try BitshiftDependencies.edges(text) }
    }
}
