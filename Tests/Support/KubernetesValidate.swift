public import Foundation

/// Offline validation of Kubernetes objects against the API's JSON schemas,
/// through `kubernetes-validate --strict` (PyPI), which `scripts/setup`
/// installs in a virtualenv outside the repository:
/// `${TRELLIS_TOOLS_DIR:-$HOME/.cache/trellis/tools}/venv`.
///
/// Strict mode rejects fields the schema does not have (a misspelling, a
/// field of another version) as well as wrong types. An object whose kind
/// has no schema is an error too, never a silent pass.
public enum KubernetesValidate {
    /// The Kubernetes version whose schemas objects are checked against.
    /// kubernetes-validate 1.37.0 bundles 1.25–1.37; 1.35 is the oldest of
    /// the three newest minors (those the Kubernetes project maintains), so
    /// what passes it (strictly) uses no field such a cluster lacks.
    public static let kubernetesVersion = "1.35.0"

    /// Where scripts/setup puts the tools.
    public static var toolsDirectory: String {
        let environment = ProcessInfo.processInfo.environment
        if let directory = environment["TRELLIS_TOOLS_DIR"], !directory.isEmpty { return directory }
        return (environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()) + "/.cache/trellis/tools"
    }

    public static var executable: String { toolsDirectory + "/venv/bin/kubernetes-validate" }

    /// Validates one object, or several as a multi-document stream, given as
    /// JSON. `name` names it in errors. `schema` picks a schema file by name
    /// instead of the one for the object's kind and apiVersion: the bundle
    /// files meta/v1 `Status` as `status-meta-v1`, which the command never
    /// picks for an object with `apiVersion: v1`.
    public static func validate(json: Data, name: String, schema: String? = nil) async throws {
        if let schema { try await validate(objects: [json], name: name, schema: schema) }
        else { try await validate(document: json, name: name, suffix: ".json") }
    }

    /// Validates a YAML document (or `---`-separated documents).
    public static func validate(yaml: String, name: String) async throws {
        try await validate(document: Data(yaml.utf8), name: name, suffix: ".yaml")
    }

    /// Validates several JSON objects in one run of the tool (against
    /// `schema`, if given, each of them).
    public static func validate(objects: [Data], name: String, schema: String? = nil) async throws {
        guard !objects.isEmpty else { return }
        guard let schema else {
            var stream = Data()
            for object in objects {
                stream.append(object)
                stream.append(Data("\n---\n".utf8))
            }
            try await validate(document: stream, name: name, suffix: ".yaml")
            return
        }
        try requireInstalled()
        let files = try objects.map { try temporaryFile($0, suffix: ".json") }
        defer { for file in files { try? FileManager.default.removeItem(atPath: file) } }
        let result = try await ChildProcess.run(toolsDirectory + "/venv/bin/python", ["-c", schemaDriver, kubernetesVersion, schema] + files)
        try check(result, name: name)
    }

    private static func validate(document: Data, name: String, suffix: String) async throws {
        try requireInstalled()
        let file = try temporaryFile(document, suffix: suffix)
        defer { try? FileManager.default.removeItem(atPath: file) }
        // --quiet: its success line needs metadata.name, which a List lacks.
        try check(try await ChildProcess.run(executable, ["--strict", "--quiet", "-k", kubernetesVersion, file]), name: name)
    }

    private static func requireInstalled() throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else { throw NotInstalled(path: executable) }
    }

    private static func temporaryFile(_ contents: Data, suffix: String) throws -> String {
        let file = NSTemporaryDirectory() + "kubernetes-validate-\(UUID().uuidString)" + suffix
        try contents.write(to: URL(fileURLWithPath: file))
        return file
    }

    private static func check(_ result: ChildProcess.Result, name: String) throws {
        let output = result.stdout + result.stderr
        guard result.status == 0 else { throw Invalid(name: name, output: condensed(output)) }
        // A kind without a schema is only a warning to the tool.
        if output.contains("WARN") { throw Invalid(name: name, output: output) }
    }

    /// The ERROR line, or for a failure the tool reports as a traceback
    /// (it cannot name an object without metadata.name) the validation
    /// error and the path of the instance.
    static func condensed(_ output: String) -> String {
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false)
        let errors = lines.filter { $0.hasPrefix("ERROR") || $0.hasPrefix("FATAL") }
        if !errors.isEmpty { return errors.joined(separator: "\n") }
        let interesting = lines.filter { $0.hasPrefix("jsonschema.exceptions.ValidationError") || $0.hasPrefix("On instance") }
        return interesting.isEmpty ? output : interesting.joined(separator: "\n")
    }

    /// Validates a file against a named schema of the bundle, exactly as
    /// kubernetes_validate.utils.validate does for a kind's own schema.
    static let schemaDriver = """
        import json, sys
        import jsonschema
        from referencing import Registry, Resource
        import kubernetes_validate.utils as utils
        version, name = sys.argv[1:3]
        directory = 'kubernetes-json-schema/v%s-local-strict/' % version
        schema = utils.schema_contents(directory + name + '.json', version)
        definitions = utils.schema_contents(directory + '_definitions.json', version)
        registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
        status = 0
        for path in sys.argv[3:]:
            try:
                jsonschema.validators.Draft202012Validator(schema, registry=registry).validate(json.load(open(path)))
            except jsonschema.ValidationError as error:
                print('ERROR %s did not validate against %s (%s): %s: %s' % (path, name, version, '.'.join(str(p) for p in error.path), error.message))
                status = 1
        sys.exit(status)
        """

    /// The object does not match the schema; `output` says where and why.
    public struct Invalid: Error, CustomStringConvertible {
        public var name: String
        public var output: String
        public var description: String { "\(name) is not a valid Kubernetes \(KubernetesValidate.kubernetesVersion) object:\n\(output)" }
    }

    public struct NotInstalled: Error, CustomStringConvertible {
        public var path: String
        public var description: String { "kubernetes-validate is not installed at \(path): run ./scripts/setup (it makes that virtualenv)" }
    }
}
