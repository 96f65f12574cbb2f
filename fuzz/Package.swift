// swift-tools-version:6.2
//
// libFuzzer target for the wire protocol's decoder and connection state
// machine. Kept out of the main package because it only links with
// `-sanitize=fuzzer`, which provides `main`. Run with ./fuzz/run.

import PackageDescription

let package = Package(
    name: "TrellisFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        // A symlink to the repository root, so the package identity is "trellis"
        // whatever the checkout directory is called.
        .package(path: "Trellis"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "WireFuzz",
            dependencies: [
                .product(name: "TrellisWire", package: "Trellis"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: [.unsafeFlags(["-sanitize=fuzzer,address", "-parse-as-library"])],
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address"])]
        ),
    ]
)
