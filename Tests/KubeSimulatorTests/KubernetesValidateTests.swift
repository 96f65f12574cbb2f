import Foundation
import Testing
import TrellisTestSupport

/// The schema check itself: it must pass a valid object and fail the
/// invalid ones with a message that names the field, or the simulator's
/// checks through it would prove nothing.
@Suite("kubernetes-validate (offline schemas)", .timeLimit(.minutes(1)))
struct KubernetesValidateTests {
    let validPod = """
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ok", "labels": {"app": "x"}},
         "spec": {"restartPolicy": "Never", "containers": [{"name": "base", "image": "busybox", "command": ["sh", "-c", "true"]}]}}
        """

    func failure(_ json: String, schema: String? = nil) async -> String? {
        do {
            try await KubernetesValidate.validate(json: Data(json.utf8), name: "the test object", schema: schema)
            return nil
        } catch let invalid as KubernetesValidate.Invalid {
            return invalid.output
        } catch {
            return "unexpected: \(error)"
        }
    }

    @Test func aValidPodPasses() async throws {
        try await KubernetesValidate.validate(json: Data(validPod.utf8), name: "a valid Pod")
        try await KubernetesValidate.validate(yaml: """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: web}
            spec:
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec: {containers: [{name: web, image: nginx}]}
            """, name: "a valid Deployment")
    }

    @Test func anUnknownFieldFailsNamingIt() async throws {
        let output = try #require(await failure(validPod.replacingOccurrences(of: #""image": "busybox""#, with: #""image": "busybox", "imagePullPolice": "Always""#)))
        #expect(output.contains("imagePullPolice"), "\(output)")
        #expect(output.contains("spec.containers.0"), "\(output)")
    }

    @Test func aWrongTypeFailsNamingTheField() async throws {
        let output = try #require(await failure(validPod.replacingOccurrences(of: #""command": ["sh", "-c", "true"]"#, with: #""command": "sh -c true""#)))
        #expect(output.contains("spec.containers.0.command"), "\(output)")
        #expect(output.contains("is not of type 'array'"), "\(output)")
    }

    @Test func aBadItemOfAListFailsNamingIt() async throws {
        let list = #"{"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": [\#(validPod.replacingOccurrences(of: #""labels""#, with: #""lables""#))]}"#
        let output = try #require(await failure(list))
        #expect(output.contains("lables"), "\(output)")
        #expect(output.contains("['items'][0]['metadata']"), "\(output)")
    }

    @Test func statusesAgainstTheMetaV1Schema() async throws {
        let status = #"{"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "no", "reason": "NotFound", "code": 404, "details": {"name": "x", "kind": "pods"}}"#
        try await KubernetesValidate.validate(json: Data(status.utf8), name: "a Status", schema: "status-meta-v1")
        let output = try #require(await failure(status.replacingOccurrences(of: #""code": 404"#, with: #""code": "404""#), schema: "status-meta-v1"))
        #expect(output.contains("code: '404' is not of type 'integer'"), "\(output)")
        // Without the schema named, a Status (no schema of its own) is an error, not a pass.
        #expect(await failure(status) != nil)
    }

    @Test func aKindWithoutASchemaIsNotAPass() async throws {
        let output = try #require(await failure(#"{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}"#))
        #expect(output.contains("Couldn't find schema"), "\(output)")
    }
}
