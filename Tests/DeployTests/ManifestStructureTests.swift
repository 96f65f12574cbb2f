import Foundation
import Testing
import TrellisCore

extension Deploy {
    /// What the schemas cannot say about the rendered manifests: every container
    /// is locked down and sized, RBAC is one namespaced Role with exactly the
    /// verbs Trellis uses, and the names and settings that must agree across
    /// objects (pools, slots, ports, token files, the worker Deployment, the
    /// autoscaler) do. Checked on the base and on every overlay.
    @Suite struct ManifestStructureTests {
        static let clusterScopedKinds: Set<String> = [
            "Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass", "CustomResourceDefinition",
            "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "PriorityClass", "ClusterTriggerAuthentication",
        ]

        @Test func everythingLivesInOneNamespaceAndNothingIsClusterWide() async throws {
            for rendering in try await Rendering.all() {
                let kinds = Set(rendering.objects.compactMap { $0["kind"].string })
                #expect(kinds.isDisjoint(with: Self.clusterScopedKinds), "\(rendering): \(kinds.intersection(Self.clusterScopedKinds))")
                let namespaces = Set(rendering.objects.map { $0["metadata"]["namespace"].string ?? "(none)" })
                #expect(namespaces.count == 1 && !namespaces.contains("(none)"), "\(rendering): namespaces \(namespaces)")
            }
            let base = try await Rendering.render("deploy/base")
            #expect(Set(base.objects.compactMap { $0["metadata"]["namespace"].string }) == ["trellis"])
        }

        @Test func everyContainerIsNonRootReadOnlyAndWithoutPrivileges() async throws {
            for rendering in try await Rendering.all() {
                #expect(!rendering.containers.isEmpty)
                for container in rendering.containers {
                    // PostgreSQL's official image runs as its own user, 999
                    // (deploy/base/postgres.yaml says why); everything else as
                    // Trellis's 50000.
                    let isPostgresServer = container.workloadName == "postgres" && container.name == "postgres"
                    let uid = isPostgresServer ? 999 : 50000
                    #expect(container.effectiveSecurity("runAsNonRoot").bool == true, "\(rendering): \(container)")
                    #expect(container.effectiveSecurity("runAsUser").int == uid, "\(rendering): \(container)")
                    #expect(container.effectiveSecurity("runAsGroup").int == uid, "\(rendering): \(container)")
                    #expect(container.effectiveSecurity("seccompProfile")["type"].string == "RuntimeDefault", "\(rendering): \(container)")
                    // Container-only fields.
                    let security = container.spec["securityContext"]
                    #expect(security["allowPrivilegeEscalation"].bool == false, "\(rendering): \(container)")
                    #expect(security["readOnlyRootFilesystem"].bool == true, "\(rendering): \(container)")
                    #expect(security["capabilities"]["drop"].strings == ["ALL"], "\(rendering): \(container)")
                    #expect(security["capabilities"]["add"].isNull, "\(rendering): \(container)")
                    #expect(security["privileged"].bool != true, "\(rendering): \(container)")
                    // A read-only root: /tmp is a volume of its own.
                    #expect(container.volume(mountedAt: "/tmp")?["emptyDir"].isNull == false, "\(rendering): \(container) has no emptyDir on /tmp")
                    #expect(container.spec["ports"].array.allSatisfy { $0["hostPort"].isNull }, "\(rendering): \(container)")
                }
                for workload in rendering.workloads {
                    let pod = Container.podSpec(of: workload)
                    let name = "\(rendering): \(workload["kind"]) \(workload["metadata"]["name"])"
                    for field in ["hostNetwork", "hostPID", "hostIPC"] { #expect(pod[field].bool != true, "\(name): \(field)") }
                    #expect(pod["volumes"].array.allSatisfy { $0["hostPath"].isNull }, "\(name) mounts a hostPath")
                    #expect(pod["enableServiceLinks"].bool == false, "\(name): service links fill the environment with every Service")
                }
            }
        }

        @Test func everyContainerHasRequestsAndLimits() async throws {
            for rendering in try await Rendering.all() {
                for container in rendering.containers {
                    for resource in ["cpu", "memory"] {
                        let request = Quantity.value(container.spec["resources"]["requests"][resource])
                        let limit = Quantity.value(container.spec["resources"]["limits"][resource])
                        #expect(request != nil && limit != nil, "\(rendering): \(container): \(resource) request and limit")
                        if let request, let limit {
                            #expect(request > 0 && request <= limit, "\(rendering): \(container): \(resource) request \(request) > limit \(limit)")
                        }
                    }
                }
            }
        }

        /// The one Role, exactly: every verb trellisd's executors use, in its
        /// own namespace, and nothing else (deploy/base/rbac.yaml says which
        /// executor needs which).
        @Test func rbacIsOneNamespacedRoleWithExactlyTheVerbsTrellisUses() async throws {
            for rendering in try await Rendering.all() {
                let namespace = try #require(rendering.objects.first?["metadata"]["namespace"].string)
                #expect(rendering.all("Role").count == 1, "\(rendering)")
                #expect(rendering.all("RoleBinding").count == 1, "\(rendering)")
                let trellisd = try rendering.container("Deployment", "trellisd", "trellisd")
                let workerDeployment = Settings.scaledPool(trellisd, "deployment")
                let role = try rendering.one("Role", "trellis")
                struct Rule: Hashable { var groups: [String]; var resources: [String]; var verbs: [String]; var names: [String] }
                let rules = Set(role["rules"].array.map {
                    Rule(groups: $0["apiGroups"].strings.sorted(), resources: $0["resources"].strings.sorted(),
                         verbs: $0["verbs"].strings.sorted(), names: $0["resourceNames"].strings.sorted())
                })
                #expect(rules == [
                    Rule(groups: [""], resources: ["pods"], verbs: ["create", "delete", "get", "list", "patch", "watch"], names: []),
                    Rule(groups: [""], resources: ["pods/log"], verbs: ["get"], names: []),
                    Rule(groups: [""], resources: ["events"], verbs: ["list"], names: []),
                    Rule(groups: ["apps"], resources: ["deployments/scale"], verbs: ["get", "patch"], names: [workerDeployment]),
                ], "\(rendering): \(role["rules"])")
                #expect(role["rules"].array.count == rules.count, "\(rendering): a rule given twice")

                let binding = try rendering.one("RoleBinding", "trellis")
                #expect(binding["roleRef"] == .object(["apiGroup": .string("rbac.authorization.k8s.io"), "kind": .string("Role"), "name": .string("trellis")]))
                #expect(binding["subjects"] == .array([.object(["kind": .string("ServiceAccount"), "name": .string("trellis"), "namespace": .string(namespace)])]),
                        "\(rendering): \(binding["subjects"])")
                #expect(rendering.has("ServiceAccount", "trellis"))

                // Only trellisd runs as that ServiceAccount; Pods that run user
                // tasks (agents, workers) or PostgreSQL get no token at all.
                for workload in rendering.workloads {
                    let pod = Container.podSpec(of: workload)
                    let name = workload["metadata"]["name"].string ?? ""
                    if name == "trellisd" {
                        #expect(pod["serviceAccountName"].string == "trellis")
                        #expect(pod["automountServiceAccountToken"].bool != false, "pod-per-task and scaled-pool need the token")
                    } else {
                        #expect(pod["serviceAccountName"].string != "trellis", "\(rendering): \(name) runs as trellis")
                        #expect(pod["automountServiceAccountToken"].bool == false, "\(rendering): \(name) mounts an API token")
                    }
                }
            }
        }

        @Test func trellisdRunsTwoReplicasGatedOnLeadershipWithMigrationsFirst() async throws {
            for rendering in try await Rendering.all() {
                let deployment = try rendering.one("Deployment", "trellisd")
                #expect(deployment["spec"]["replicas"].int == 2)
                // Only the leader is ready: a rolling update would deadlock
                // (trellisd.yaml), and so would a PodDisruptionBudget.
                #expect(deployment["spec"]["strategy"]["type"].string == "Recreate", "\(rendering)")
                #expect(rendering.all("PodDisruptionBudget").isEmpty)

                let pod = Container.podSpec(of: deployment)
                #expect(pod["initContainers"].array.map { $0["name"].string ?? "" } == ["migrate"])
                let migrate = try rendering.container("Deployment", "trellisd", "migrate")
                #expect(migrate.spec["command"].strings == ["/usr/bin/trellisd", "migrate"])
                #expect(migrate.env("TRELLIS_DATABASE_URL")["valueFrom"]["secretKeyRef"] == .object(["name": .string("trellis-database"), "key": .string("database-url")]))

                let trellisd = try rendering.container("Deployment", "trellisd", "trellisd")
                #expect(trellisd.spec["command"].strings == ["/usr/bin/trellisd", "serve"])
                #expect(trellisd.spec["args"].strings.contains("--replica-name=$(POD_NAME)"))
                // $(POD_NAME) in args expands from the container's environment.
                #expect(trellisd.env("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"].string == "metadata.name")
                #expect(trellisd.env("TRELLIS_DATABASE_URL") == migrate.env("TRELLIS_DATABASE_URL"))
                #expect(trellisd.envValue("TRELLIS_PLUGIN_DIRS") == "/usr/lib/trellis/executors")
                // The admin token comes from the Secret through the init
                // container, not trellisd's bootstrap file (it would never
                // register an existing file's token).
                #expect(!trellisd.envNames.contains("TRELLIS_BOOTSTRAP_ADMIN_TOKEN_FILE"))

                // Ports: the addresses trellisd binds are the container's named
                // ports; probes and the Service use those names.
                let ports = Dictionary(uniqueKeysWithValues: trellisd.spec["ports"].array.map { ($0["name"].string ?? "", $0["containerPort"].int ?? 0) })
                #expect(trellisd.envValue("TRELLIS_RPC_ADDRESS") == "0.0.0.0:\(ports["rpc"] ?? -1)")
                #expect(trellisd.envValue("TRELLIS_HTTP_ADDRESS") == "0.0.0.0:\(ports["http"] ?? -1)")
                #expect(trellisd.spec["readinessProbe"]["httpGet"] == .object(["path": .string("/readyz"), "port": .string("http")]))
                #expect(trellisd.spec["livenessProbe"]["httpGet"] == .object(["path": .string("/healthz"), "port": .string("http")]))
                #expect(trellisd.spec["startupProbe"]["httpGet"]["path"].string == "/healthz")
                let service = try rendering.one("Service", "trellisd")
                #expect(service["spec"]["ports"] == .array([.object(["name": .string("rpc"), "port": .int(ports["rpc"] ?? -1), "targetPort": .string("rpc")])]))
                #expect(service["spec"]["publishNotReadyAddresses"].bool != true, "the Service must route to the leader only")
                // The Service selects trellisd's Pods, and only them.
                let selector = try #require(service["spec"]["selector"].object)
                for workload in rendering.workloads {
                    let labels = workload["spec"]["template"]["metadata"]["labels"].object ?? [:]
                    let selected = selector.allSatisfy { labels[$0.key] == $0.value }
                    #expect(selected == (workload["metadata"]["name"].string == "trellisd"), "\(rendering): \(workload["metadata"]["name"])")
                }
            }
        }

        /// Agents reach trellisd, present the token trellisd expects, serve the
        /// pools the executors dispatch to, and are given the time to drain.
        @Test func agentsAndWorkersAgreeWithTrellisd() async throws {
            for rendering in try await Rendering.all() {
                let trellisd = try rendering.container("Deployment", "trellisd", "trellisd")
                let service = try rendering.one("Service", "trellisd")
                let rpcPort = service["spec"]["ports"][0]["port"].int ?? -1
                let node = try rendering.container("DaemonSet", "trellis-agent", "trellis-agent")
                let workerName = Settings.scaledPool(trellisd, "deployment")
                let workers = try rendering.one("Deployment", workerName)
                let worker = try rendering.container("Deployment", workerName, "trellis-agent")

                for agent in [node, worker] {
                    #expect(agent.spec["command"].strings == ["/usr/bin/trellis-agent"], "\(rendering): \(agent)")
                    #expect(agent.image == trellisd.image, "\(rendering): \(agent)")
                    #expect(agent.envValue("TRELLIS_AGENT_CONTROL_PLANE") == "trellisd:\(rpcPort)", "\(rendering): \(agent)")
                    // The join token: the same Secret key on both sides.
                    let agentToken = try #require(agent.envValue("TRELLIS_AGENT_TOKEN_FILE"))
                    let serverToken = try #require(trellisd.envValue("TRELLIS_AGENT_JOIN_TOKEN_FILE"))
                    #expect(try secretKey(agent, file: agentToken) == SecretKey(secret: "trellis-agent-join-token", key: "token"), "\(rendering): \(agent)")
                    #expect(try secretKey(trellisd, file: serverToken) == SecretKey(secret: "trellis-agent-join-token", key: "token"))
                    #expect(agent.env("TRELLIS_AGENT_NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"].string == "spec.nodeName")
                    // A writable, private work directory.
                    let work = try #require(agent.envValue("TRELLIS_AGENT_WORK_DIR"))
                    #expect(agent.volume(mountedAt: work)?["emptyDir"].isNull == false, "\(rendering): \(agent): \(work) is not an emptyDir")
                    // terminationGracePeriodSeconds covers the drain: drain
                    // grace + kill grace + 10 s to report (docs/agent.md).
                    let drain = try Settings.agentMillis(agent, "TRELLIS_AGENT_DRAIN_GRACE", default: 300_000)
                    let kill = try Settings.agentMillis(agent, "TRELLIS_AGENT_KILL_GRACE", default: 10_000)
                    let grace = try #require(agent.podSpec["terminationGracePeriodSeconds"].int)
                    #expect(Int64(grace) * 1000 >= drain + kill + 10_000, "\(rendering): \(agent): \(grace)s < drain \(drain)ms + kill \(kill)ms + 10s")
                }

                // persistent-pool dispatches to the DaemonSet's pool, one agent a
                // node, named after it.
                #expect(node.envValue("TRELLIS_AGENT_POOL") == Settings.persistentPool(trellisd, "agent_pool"), "\(rendering)")
                #expect(node.env("TRELLIS_AGENT_NAME")["valueFrom"]["fieldRef"]["fieldPath"].string == "spec.nodeName")
                let daemonSet = try rendering.one("DaemonSet", "trellis-agent")
                #expect(daemonSet["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"].int == 0, "two agents of one node would share a name")

                // scaled-pool dispatches to the workers' pool and finds each
                // worker's Pod by the agent's name: the Pod's own.
                #expect(worker.envValue("TRELLIS_AGENT_POOL") == Settings.scaledPool(trellisd, "agent_pool"), "\(rendering)")
                #expect(worker.env("TRELLIS_AGENT_NAME")["valueFrom"]["fieldRef"]["fieldPath"].string == "metadata.name", "\(rendering)")
                #expect(node.envValue("TRELLIS_AGENT_POOL") != worker.envValue("TRELLIS_AGENT_POOL"), "the two executors would share agents")
                // One worker per tasks_per_worker tasks: that many slots each.
                #expect(Settings.agentSlots(worker) == Int(Settings.scaledPool(trellisd, "tasks_per_worker")), "\(rendering)")
                // The autoscaler owns the size: no replicas to re-apply.
                #expect(workers["spec"]["replicas"].isNull, "\(rendering): spec.replicas would fight the autoscaler on every apply")
                // parallelism must let the pool reach its maximum.
                let maximum = try #require(Int(Settings.scaledPool(trellisd, "max_replicas")))
                let perWorker = try #require(Int(Settings.scaledPool(trellisd, "tasks_per_worker")))
                #expect(Settings.parallelism(trellisd) >= maximum * perWorker, "\(rendering): parallelism caps queued+running below the pool's maximum")
            }
        }

        /// Never two autoscalers on one Deployment: with KEDA's ScaledObject on
        /// the workers, scaled-pool's own autoscaler is off, and without it, on;
        /// the ScaledObject's numbers are scaled-pool's.
        @Test func exactlyOneAutoscalerSizesTheWorkers() async throws {
            for rendering in try await Rendering.all() {
                let trellisd = try rendering.container("Deployment", "trellisd", "trellisd")
                let autoscale = Settings.scaledPool(trellisd, "autoscale")
                let scaledObjects = rendering.all("ScaledObject")
                let workerName = Settings.scaledPool(trellisd, "deployment")
                if scaledObjects.isEmpty {
                    #expect(autoscale == "true", "\(rendering): nothing sizes the workers")
                    continue
                }
                #expect(autoscale == "false", "\(rendering): KEDA and scaled-pool would both size \(workerName)")
                #expect(scaledObjects.count == 1)
                let spec = scaledObjects[0]["spec"]
                #expect(spec["scaleTargetRef"]["name"].string == workerName)
                #expect(spec["scaleTargetRef"]["kind"].string == "Deployment")
                #expect(spec["minReplicaCount"].int == Int(Settings.scaledPool(trellisd, "min_replicas")))
                #expect(spec["maxReplicaCount"].int == Int(Settings.scaledPool(trellisd, "max_replicas")))
                #expect(spec["pollingInterval"].int == Int(Settings.scaledPool(trellisd, "polling_interval_seconds")))
                #expect(spec["cooldownPeriod"].int == Int(Settings.scaledPool(trellisd, "cooldown_seconds")))
                // The seed's numbers.
                #expect(spec["minReplicaCount"].int == 0 && spec["maxReplicaCount"].int == 10)
                #expect(spec["pollingInterval"].int == 10 && spec["cooldownPeriod"].int == 30)
                // The query divides by the workers' slots.
                let trigger = spec["triggers"][0]
                #expect(trigger["type"].string == "postgresql")
                #expect(trigger["metadata"]["targetQueryValue"].string == "1")
                let query = try #require(trigger["metadata"]["query"].string)
                let worker = try rendering.container("Deployment", workerName, "trellis-agent")
                #expect(query.contains("::decimal / \(Settings.agentSlots(worker)))"), "\(query)")
                // Its connection: the database URL trellisd uses.
                let authentication = try rendering.one("TriggerAuthentication", try #require(trigger["authenticationRef"]["name"].string))
                #expect(authentication["spec"]["secretTargetRef"] == .array([.object([
                    "parameter": .string("connection"), "name": .string("trellis-database"), "key": .string("database-url"),
                ])]))
                #expect(trellisd.env("TRELLIS_DATABASE_URL")["valueFrom"]["secretKeyRef"] == .object(["name": .string("trellis-database"), "key": .string("database-url")]))
            }
        }

        /// One image for every Trellis container; the only other image is
        /// the trial PostgreSQL server's (none where the database is external).
        @Test func imagesAreConsistent() async throws {
            for rendering in try await Rendering.all() {
                let trellisImages = Set(rendering.containers.filter(\.runsTrellisImage).map(\.image))
                #expect(trellisImages.count == 1, "\(rendering): \(trellisImages)")
                #expect(trellisImages.allSatisfy { $0.contains(":") && !$0.hasSuffix(":latest") }, "\(rendering): pin a tag")
                let others = rendering.containers.filter { !$0.runsTrellisImage }
                #expect(others.allSatisfy { $0.workloadName == "postgres" && $0.imageName == "postgres" }, "\(rendering): \(others.map(\.image))")
                #expect(others.count == (rendering.has("Deployment", "postgres") ? 1 : 0), "\(rendering): \(others.map(\.image))")
                // Every Trellis container runs a Trellis binary by absolute path
                // (ImageTests checks each exists in the image).
                for container in rendering.containers where container.runsTrellisImage {
                    #expect(container.spec["command"][0].string?.hasPrefix("/usr/bin/trellis") == true, "\(rendering): \(container)")
                }
            }
            let example = try await Rendering.render("deploy/overlays/example")
            #expect(Set(example.containers.filter(\.runsTrellisImage).map(\.image)) == ["registry.example.com/platform/trellis:0.1.0"])
        }

        /// The example overlay runs on a managed database: no trial PostgreSQL.
        @Test func theExampleOverlayUsesAnExternalDatabase() async throws {
            let example = try await Rendering.render("deploy/overlays/example")
            #expect(!example.has("Deployment", "postgres") && !example.has("Service", "postgres") && !example.has("PersistentVolumeClaim", "postgres-data"))
            #expect(example.objects.allSatisfy { $0["metadata"]["namespace"].string == "data-platform" })
            let base = try await Rendering.render("deploy/base")
            #expect(base.has("Deployment", "postgres") && base.has("Service", "postgres") && base.has("PersistentVolumeClaim", "postgres-data"))
            #expect(try base.one("Service", "postgres")["spec"]["clusterIP"].string == "None")
        }

        struct SecretKey: Hashable, CustomStringConvertible {
            var secret: String
            var key: String
            var description: String { "\(secret)/\(key)" }
        }

        /// The Secret key a file path inside `container` comes from.
        func secretKey(_ container: Container, file: String) throws -> SecretKey {
            let mount = try #require(container.mount(holding: file), "\(container): nothing mounted at \(file)")
            let volume = try #require(container.volume(named: mount["name"].string ?? ""))
            let secret = try #require(volume["secret"]["secretName"].string, "\(container): \(file) is not on a Secret volume")
            #expect(mount["readOnly"].bool == true, "\(container): \(file) is mounted writable")
            let relative = String(file.dropFirst((mount["mountPath"].string ?? "").count + 1))
            let item = try #require(volume["secret"]["items"].array.first { $0["path"].string == relative })
            return SecretKey(secret: secret, key: item["key"].string ?? "")
        }
    }
}
