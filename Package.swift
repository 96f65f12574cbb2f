// swift-tools-version:6.2
//
// Trellis: an Airflow-style DAG orchestrator for Kubernetes.
// Module layout and dependency rules: docs/architecture.md.

import PackageDescription

/// Settings every Swift target of ours shares: Swift 6 language mode is the
/// package default; these upcoming features keep imports and existentials
/// explicit.
let strictSwift: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "Trellis",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "trellis", targets: ["trellis"]),
        .executable(name: "trellisd", targets: ["trellisd"]),
        .executable(name: "trellis-agent", targets: ["trellis-agent"]),
        .executable(name: "trellis-bench", targets: ["TrellisBench"]),
        /// The Kubernetes API simulator (a test double; docs/architecture.md).
        .executable(name: "trellis-kube-sim", targets: ["trellis-kube-sim"]),
        /// The C test executor plugin (c-instant), loaded by tests and benchmarks.
        .library(name: "trellis-executor-c-instant", type: .dynamic, targets: ["TrellisTestExecutor"]),
        /// The persistent-pool executor plugin (docs/executors.md).
        .library(name: "trellis-executor-persistent-pool", type: .dynamic, targets: ["PersistentPoolExecutor"]),
        /// The pod-per-task executor plugin (docs/executors.md).
        .library(name: "trellis-executor-pod-per-task", type: .dynamic, targets: ["PodPerTaskExecutor"]),
        /// The scaled-pool executor plugin (docs/executors.md).
        .library(name: "trellis-executor-scaled-pool", type: .dynamic, targets: ["ScaledPoolExecutor"]),
        /// Deliberately broken plugins for the plugin loader's tests.
        .library(name: "trellis-executor-broken", type: .dynamic, targets: ["TrellisBrokenExecutor"]),
        /// The wire protocol, for packages outside this one (the fuzz/ target).
        .library(name: "TrellisWire", targets: ["TrellisWire", "TrellisProto"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // MARK: System libraries (Debian packages installed by scripts/setup)

        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CLibCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CLibYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),

        // MARK: Protocol messages

        /// swift-protobuf code generated from proto/ by scripts/generate-proto.
        .target(
            name: "TrellisProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),

        // MARK: Domain

        /// The pure heart of Trellis: DAG files, validation, schedules, the
        /// task-instance state machine and scheduling decisions. No I/O.
        .target(
            name: "TrellisCore",
            dependencies: ["TrellisProto", .product(name: "Yams", package: "Yams")],
            swiftSettings: strictSwift
        ),

        // MARK: State

        /// PostgreSQL state through libpq: connections on threads of their
        /// own, a bounded pool, migrations, the control plane's operations,
        /// LISTEN/NOTIFY and the leader lock.
        .target(
            name: "TrellisStore",
            dependencies: ["TrellisCore", "CLibPQ"],
            resources: [.copy("Migrations/SQL")],
            swiftSettings: strictSwift
        ),

        // MARK: Wire protocol

        /// The length-prefixed protobuf RPC protocol: framing, handshake and
        /// call state machines, server and client.
        .target(
            name: "TrellisWire",
            dependencies: [
                "TrellisProto",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: Kubernetes

        /// A Kubernetes REST client through libcurl: in-cluster and
        /// kubeconfig authentication, Pods (create, get, list, watch, logs,
        /// delete, events) and Deployments' scale. Linked by executor
        /// plugins only, never by trellisd; it uses no Swift package the
        /// host links (plugins must not carry a second copy), so libyaml
        /// reads kubeconfig files.
        .target(
            name: "TrellisKube",
            dependencies: ["CLibCurl", "CLibYAML"],
            swiftSettings: strictSwift
        ),

        // MARK: Control plane

        /// trellisd's insides: the scheduler, the executor plugin host,
        /// configuration, the client API's handlers, the composition root
        /// (`ControlPlane`) and the operations surface (metrics, the ops
        /// HTTP server, logging).
        .target(
            name: "TrellisControlPlane",
            dependencies: [
                "TrellisLog",
                "TrellisCore", "TrellisProto", "TrellisPluginABI", "TrellisStore", "TrellisWire",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: Agent

        /// trellis-agent's insides: the task runner (child processes, their
        /// output under backpressure, timeouts, cancel), the outbox of
        /// events, and the link to the control plane (register, heartbeat,
        /// report, drain, serving StartTask/CancelTask).
        .target(
            name: "TrellisAgent",
            dependencies: [
                "TrellisProto", "TrellisWire", "TrellisProcess",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: Executables

        /// The thin client's insides: connection settings (flags, environment,
        /// config file), calls of the client API, error → exit-code mapping and
        /// pure output rendering (tables, DAG trees, progress, JSON/YAML).
        .target(
            name: "TrellisClient",
            dependencies: [
                "TrellisCore", "TrellisProto", "TrellisWire",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strictSwift
        ),

        /// The thin client.
        .executableTarget(
            name: "trellis",
            dependencies: [
                "TrellisClient",
                "TrellisCore",
                "TrellisProto",
                "TrellisWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSwift
        ),

        /// Trellis's swift-log handler (text or JSON lines), shared by
        /// trellisd and trellis-agent.
        .target(
            name: "TrellisLog",
            dependencies: ["TrellisCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift
        ),

        /// Starting child processes that inherit only what they are given
        /// (tests' servers, benchmarks, the agent's task processes).
        .target(
            name: "TrellisProcess",
            swiftSettings: strictSwift
        ),

        /// The control plane.
        .executableTarget(
            name: "trellisd",
            dependencies: [
                "TrellisLog",
                "TrellisCore",
                "TrellisStore",
                "TrellisControlPlane",
                "TrellisProcess",
                "TrellisWire",
                // `trellisd standalone` runs an agent in-process.
                "TrellisAgent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),

        /// The per-node agent.
        .executableTarget(
            name: "trellis-agent",
            dependencies: [
                "TrellisLog",
                "TrellisAgent",
                "TrellisCore",
                "TrellisProcess",
                "TrellisWire",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),

        /// The benchmarks behind scripts/bench (release builds only).
        .executableTarget(
            name: "TrellisBench",
            dependencies: [
                "TrellisAgent",
                "TrellisCore",
                "TrellisProcess",
                "TrellisWire",
                "TrellisStore",
                "TrellisProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),

        // MARK: Test doubles

        /// The Kubernetes API simulator, a TEST DOUBLE: the Pod REST subset
        /// the executors use (real paths and JSON, watches, logs) over plain
        /// HTTP on NIO, each Pod "run" as a local process of its command.
        .target(
            name: "KubeSimulator",
            dependencies: [
                "TrellisProcess",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),

        /// The simulator as a program, for tests of the real binaries and the
        /// standalone demo.
        .executableTarget(
            name: "trellis-kube-sim",
            dependencies: ["KubeSimulator", "TrellisProcess"],
            swiftSettings: strictSwift
        ),

        // MARK: Executor plugins

        /// The executor plugin ABI: one C header, shared by the host and every
        /// plugin (and nothing else, so no Swift module is ever linked twice).
        .systemLibrary(name: "TrellisPluginABI", path: "plugins/c-sdk/abi"),

        /// The C SDK for executor plugins: the ABI header plus protobuf-c code
        /// generated from the messages that cross it.
        .target(
            name: "TrellisPluginSDK",
            dependencies: ["CProtobufC"],
            path: "plugins/c-sdk",
            sources: ["src"],
            publicHeadersPath: "include",
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),

        /// c-instant, the C executor plugin tests and benchmarks load.
        .target(
            name: "TrellisTestExecutor",
            dependencies: ["TrellisPluginSDK"],
            path: "plugins/c-test-executor"
        ),

        /// Dispatching process tasks to the agents of one pool (queue,
        /// least-loaded matching agent, StartTask/CancelTask, adoption):
        /// shared by persistent-pool and scaled-pool. Plugins only.
        .target(
            name: "AgentPool",
            dependencies: ["TrellisPluginKit", "TrellisPluginSDK"],
            path: "plugins/agent-pool",
            swiftSettings: strictSwift
        ),

        /// persistent-pool: process tasks on a fixed set of agents. Swift, but
        /// linked against the C SDK only (no Swift module of the host's).
        .target(
            name: "PersistentPoolExecutor",
            dependencies: ["AgentPool", "TrellisPluginKit", "TrellisPluginSDK"],
            path: "plugins/persistent-pool",
            swiftSettings: strictSwift
        ),

        /// What the Swift executor plugins share (host callbacks behind a
        /// gate, ExecutorEvents through the C SDK, settings JSON). Linked by
        /// plugins only, never by the host.
        .target(
            name: "TrellisPluginKit",
            dependencies: ["TrellisPluginSDK"],
            path: "plugins/plugin-kit",
            swiftSettings: strictSwift
        ),

        /// pod-per-task's pure parts: settings, Pod building, naming and
        /// reading a Pod's status. Tested without a plugin or a cluster.
        .target(
            name: "PodPerTask",
            dependencies: ["TrellisKube", "TrellisPluginKit"],
            path: "plugins/pod-per-task/Core",
            swiftSettings: strictSwift
        ),

        /// pod-per-task: one Kubernetes Pod per task (docs/executors.md).
        .target(
            name: "PodPerTaskExecutor",
            dependencies: ["PodPerTask", "TrellisKube", "TrellisPluginKit", "TrellisPluginSDK"],
            path: "plugins/pod-per-task/Plugin",
            swiftSettings: strictSwift
        ),

        /// scaled-pool's pure parts: the autoscaler's state machine and its
        /// settings. Tested without a plugin or a cluster.
        .target(
            name: "ScaledPool",
            dependencies: ["TrellisPluginKit"],
            path: "plugins/scaled-pool/Core",
            swiftSettings: strictSwift
        ),

        /// scaled-pool: persistent-pool's dispatching to the agents of a
        /// worker Deployment it sizes itself (docs/executors.md).
        .target(
            name: "ScaledPoolExecutor",
            dependencies: ["ScaledPool", "AgentPool", "TrellisKube", "TrellisPluginKit", "TrellisPluginSDK"],
            path: "plugins/scaled-pool/Plugin",
            swiftSettings: strictSwift
        ),

        /// Broken plugins, one fault per file name, for the loader's tests.
        .target(
            name: "TrellisBrokenExecutor",
            path: "plugins/c-broken-executor",
            cSettings: [.headerSearchPath("../c-sdk/include")],
            linkerSettings: [.linkedLibrary("dl")]
        ),

        // MARK: Tests

        /// What several test targets share: the test database, fresh
        /// databases per test, and running the real binaries.
        .target(
            name: "TrellisTestSupport",
            dependencies: ["TrellisStore", "TrellisProcess"],
            path: "Tests/Support",
            swiftSettings: strictSwift
        ),

        .testTarget(
            name: "TrellisControlPlaneTests",
            dependencies: [
                "TrellisControlPlane", "TrellisCore", "TrellisProto", "TrellisStore", "TrellisWire", "TrellisTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strictSwift
        ),
        /// The Kubernetes API simulator over real HTTP (curl) on loopback.
        .testTarget(
            name: "KubeSimulatorTests",
            dependencies: ["KubeSimulator", "TrellisProcess", "TrellisTestSupport"],
            swiftSettings: strictSwift
        ),
        /// TrellisKube over real HTTP (libcurl) against the simulator, and
        /// its kubeconfig and in-cluster configuration.
        .testTarget(
            name: "TrellisKubeTests",
            dependencies: ["TrellisKube", "KubeSimulator", "TrellisTestSupport"],
            swiftSettings: strictSwift
        ),
        /// The autoscaler's decisions with made-up times.
        .testTarget(
            name: "ScaledPoolTests",
            dependencies: ["ScaledPool", "TrellisPluginKit"],
            swiftSettings: strictSwift
        ),
        /// pod-per-task's pure parts: settings, Pod building, status reading.
        .testTarget(
            name: "PodPerTaskTests",
            dependencies: ["PodPerTask", "TrellisKube", "TrellisPluginKit", "TrellisTestSupport"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "TrellisLogTests",
            dependencies: ["TrellisLog", "TrellisTestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSwift
        ),
        /// The client's pure parts: rendering, settings precedence, exit codes.
        .testTarget(
            name: "TrellisClientTests",
            dependencies: ["TrellisTestSupport", "TrellisClient", "TrellisProto", "TrellisWire"],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "TrellisProcessTests",
            dependencies: ["TrellisProcess"],
            swiftSettings: strictSwift
        ),
        /// The agent with real child processes, a real wire server playing
        /// the control plane, and the real trellis-agent binary.
        .testTarget(
            name: "TrellisAgentTests",
            dependencies: [
                "TrellisAgent", "TrellisProto", "TrellisWire", "TrellisProcess", "TrellisTestSupport",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSwift
        ),
        .testTarget(
            name: "TrellisCoreTests",
            dependencies: ["TrellisCore", "TrellisProto"],
            resources: [.copy("Resources")],
            swiftSettings: strictSwift
        ),

        .testTarget(
            name: "TrellisWireTests",
            dependencies: [
                "TrellisWire",
                "TrellisProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),

        /// Integration tests of TrellisStore against the real PostgreSQL that
        /// scripts/test starts.
        .testTarget(
            name: "TrellisStoreTests",
            dependencies: ["TrellisStore", "TrellisCore", "TrellisProto", "TrellisTestSupport"],
            swiftSettings: strictSwift
        ),

        /// End-to-end tests of the real binaries (built by `swift build`).
        .testTarget(
            name: "TrellisdTests",
            dependencies: [
                "TrellisTestSupport", "TrellisCore", "TrellisStore", "TrellisProto", "TrellisWire", "KubeSimulator", "TrellisKube",
                // In-process ExecutorHost for plugin-level tests.
                "TrellisControlPlane",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strictSwift
        ),

        /// deploy/: the kustomize manifests (kubernetes-validate --strict and
        /// structure), the KEDA objects and their query on a real database,
        /// generate-secrets, the image's layout and libraries, and the
        /// base's containers run as the manifests say.
        .testTarget(
            name: "DeployTests",
            dependencies: [
                "TrellisTestSupport", "TrellisStore", "TrellisCore",
                .product(name: "Yams", package: "Yams"),
            ],
            exclude: ["Schemas"],
            swiftSettings: strictSwift
        ),

        /// Proves each system library is installed and usable from Swift.
        .testTarget(
            name: "SystemLibraryTests",
            dependencies: [
                "TrellisTestSupport",
                "CLibPQ",
                "CLibCurl",
                "TrellisPluginSDK",
                "TrellisProto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSwift
        ),
    ]
)
