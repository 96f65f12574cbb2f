import Foundation
import Testing
import TrellisTestSupport

extension Deploy {
    /// Every kustomization under deploy/ renders in a clean tree, and everything
    /// it renders is a valid object: Kubernetes's own kinds against the 1.35
    /// schemas with kubernetes-validate --strict, KEDA's against a JSON Schema
    /// written from KEDA's CRDs (Schemas/keda.sh-v1alpha1.json), which the tests
    /// below also show rejects the mistakes it is there to catch.
    @Suite struct ManifestValidationTests {
        @Test func everyKustomizationRendersAndValidatesStrictly() async throws {
            let renderings = try await Rendering.all()
            #expect(renderings.map(\.source).contains("deploy/base"))
            #expect(renderings.map(\.source).contains("deploy/overlays/example"))
            #expect(renderings.map(\.source).contains("deploy/overlays/keda"))
            for rendering in renderings {
                for (kind, name) in [("Deployment", "trellisd"), ("DaemonSet", "trellis-agent"), ("Deployment", "trellis-worker"), ("Role", "trellis")] {
                    #expect(rendering.has(kind, name), "\(rendering) has no \(kind) \(name)")
                }
                // Kubernetes's kinds: one run of the tool per rendering.
                let kubernetes = try rendering.kubernetesObjects.map { try $0.jsonData() }
                try await KubernetesValidate.validate(objects: kubernetes, name: rendering.source)
                // KEDA's kinds: our schema.
                let keda = rendering.kedaObjects
                let problems = try await KedaSchema.problems(keda)
                for (object, complaints) in zip(keda, problems) {
                    #expect(complaints.isEmpty, "\(rendering): \(object["kind"]) \(object["metadata"]["name"]): \(complaints)")
                }
            }
        }

        /// KEDA objects appear only where the KEDA component is used, and then
        /// both of them.
        @Test func kedaObjectsComeOnlyWithTheKedaComponent() async throws {
            for rendering in try await Rendering.all() {
                let kinds = Set(rendering.kedaObjects.compactMap { $0["kind"].string })
                let kustomization = try #require(try KubeValue.documents(yaml: try Repository.text(rendering.source + "/kustomization.yaml")).first)
                let usesComponent = kustomization["components"].strings.contains("../../keda")
                #expect(kinds == (usesComponent ? ["ScaledObject", "TriggerAuthentication"] : []), "\(rendering): \(kinds)")
            }
        }

        @Test func theKedaSchemaRejectsWhatTheCRDsWouldNot() async throws {
            let rendering = try await Rendering.render("deploy/overlays/keda")
            let scaledObject = try rendering.one("ScaledObject", "trellis-worker")
            let authentication = try rendering.one("TriggerAuthentication", "trellis-database")
            let trigger = scaledObject["spec"]["triggers"][0]
            func withTrigger(_ changed: KubeValue) -> KubeValue { scaledObject.setting(["spec", "triggers"], to: .array([changed])) }

            let broken: [(String, KubeValue, String)] = [
                ("misspelt spec field", scaledObject.setting(["spec", "pollingIntervall"], to: .int(10)), "pollingIntervall"),
                ("string where an integer belongs", scaledObject.setting(["spec", "cooldownPeriod"], to: .string("30")), "cooldownPeriod"),
                ("negative replica count", scaledObject.setting(["spec", "maxReplicaCount"], to: .int(-1)), "maxReplicaCount"),
                ("no target name", scaledObject.removing(["spec", "scaleTargetRef", "name"]), "name"),
                ("no triggers", scaledObject.setting(["spec", "triggers"], to: .array([])), "triggers"),
                ("numeric metadata value", withTrigger(trigger.setting(["metadata", "targetQueryValue"], to: .int(1))), "targetQueryValue"),
                ("misspelt postgresql key", withTrigger(trigger.removing(["metadata", "targetQueryValue"])
                    .setting(["metadata", "targetQueryvalue"], to: .string("1"))), "targetQueryvalue"),
                ("postgresql without a query", withTrigger(trigger.removing(["metadata", "query"])), "query"),
                ("misspelt authenticationRef field", withTrigger(trigger.setting(["authenticationRef", "nmae"], to: .string("x"))), "nmae"),
                ("unknown spec field of a TriggerAuthentication", authentication.setting(["spec", "secretTargetRefs"], to: .array([])), "secretTargetRefs"),
                ("secret reference without a key", authentication.removing(["spec", "secretTargetRef"])
                    .setting(["spec", "secretTargetRef"], to: .array([.object(["parameter": .string("connection"), "name": .string("trellis-database")])])), "key"),
                ("a kind the schema does not know", scaledObject.setting(["kind"], to: .string("ScaledJob")), "ScaledJob"),
            ]
            let problems = try await KedaSchema.problems(broken.map(\.1))
            for ((what, _, mentioned), complaints) in zip(broken, problems) {
                #expect(!complaints.isEmpty, "the schema accepted a ScaledObject with \(what)")
                #expect(complaints.joined(separator: "\n").contains(mentioned), "\(what): \(complaints)")
            }
            // …and the originals pass.
            #expect(try await KedaSchema.problems([scaledObject, authentication]) == [[], []])
        }

        /// The YAML docs/deploying.md has operators apply is valid too: the Role
        /// for the seed DAG's namespace, and the patch that puts the trial
        /// PostgreSQL on an emptyDir (rendered on a copy of deploy/).
        @Test func theYAMLInTheDeployingGuideIsValid() async throws {
            let docs = try Repository.text("docs/deploying.md")
            let heredoc = try #require(docs.firstMatch(of: /<<'YAML'\n([\s\S]*?)\nYAML\n/)?.output.1)
            try await KubernetesValidate.validate(yaml: String(heredoc), name: "docs/deploying.md: the Role for another namespace")
            let roles = try KubeValue.documents(yaml: String(heredoc))
            #expect(roles.map { $0["kind"].string ?? "" } == ["Role", "RoleBinding"])

            let patches = try #require(docs.firstMatch(of: /# in an overlay's patches:\n([\s\S]*?)\n```/)?.output.1)
            let copy = try Repository.temporaryDirectory("deploy-copy")
            defer { try? FileManager.default.removeItem(at: copy) }
            try FileManager.default.copyItem(atPath: Repository.path("deploy"), toPath: copy.path + "/deploy")
            let overlay = copy.appendingPathComponent("deploy/overlays/docs-emptydir")
            try FileManager.default.createDirectory(at: overlay, withIntermediateDirectories: true)
            try Data("""
                apiVersion: kustomize.config.k8s.io/v1beta1
                kind: Kustomization
                resources:
                  - ../../base
                patches:
                \(patches)

                """.utf8).write(to: overlay.appendingPathComponent("kustomization.yaml"))
            let rendering = try await Rendering.render(overlay.path)
            #expect(!rendering.has("PersistentVolumeClaim", "postgres-data"))
            let data = try #require(Container.podSpec(of: try rendering.one("Deployment", "postgres"))["volumes"].array.first { $0["name"].string == "data" })
            #expect(data["persistentVolumeClaim"].isNull && data["emptyDir"] == .object([:]), "\(data)")
            try await KubernetesValidate.validate(objects: try rendering.kubernetesObjects.map { try $0.jsonData() }, name: "docs/deploying.md: the emptyDir patch")
        }
    }
}
