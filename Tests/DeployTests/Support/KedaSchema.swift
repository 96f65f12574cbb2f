import Foundation
import TrellisTestSupport

/// KEDA's objects against the JSON Schema in Schemas/ (written from KEDA's
/// CRDs), with the jsonschema package of kubernetes-validate's virtualenv.
enum KedaSchema {
    static let file = Repository.path("Tests/DeployTests/Schemas/keda.sh-v1alpha1.json")

    /// For each object, the schema's complaints (none: valid).
    static func problems(_ objects: [KubeValue]) async throws -> [[String]] {
        guard !objects.isEmpty else { return [] }
        let python = KubernetesValidate.toolsDirectory + "/venv/bin/python"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw Repository.Missing(description: "\(python) is missing: run ./scripts/setup (it makes kubernetes-validate's virtualenv)")
        }
        let directory = try Repository.temporaryDirectory("keda-schema")
        defer { try? FileManager.default.removeItem(at: directory) }
        var files: [String] = []
        for (index, object) in objects.enumerated() {
            let file = directory.appendingPathComponent("\(index).json").path
            try object.jsonData().write(to: URL(fileURLWithPath: file))
            files.append(file)
        }
        let result = try await Repository.run(python, ["-c", driver, file] + files)
        var problems = Array(repeating: [String](), count: objects.count)
        for line in result.stdout.split(separator: "\n") {
            let fields = line.split(separator: "\t", maxSplits: 1)
            guard fields.count == 2, let index = Int(fields[0]), problems.indices.contains(index) else { continue }
            problems[index].append(String(fields[1]))
        }
        return problems
    }

    /// Prints `INDEX<TAB>path: message` for every error, checking each
    /// object against the schema of its kind (`$defs/ScaledObject`, …), so
    /// that a misspelt field is named rather than "not valid under any of
    /// the given schemas".
    static let driver = """
        import json, sys
        import jsonschema
        schema = json.load(open(sys.argv[1]))
        jsonschema.validators.Draft202012Validator.check_schema(schema)
        for index, path in enumerate(sys.argv[2:]):
            instance = json.load(open(path))
            kind = instance.get('kind') if isinstance(instance, dict) else None
            if kind not in schema['$defs'] or kind not in [ref['$ref'].split('/')[-1] for ref in schema['oneOf']]:
                print('%d\\tno schema for kind %r' % (index, kind))
                continue
            validator = jsonschema.validators.Draft202012Validator({'$ref': '#/$defs/' + kind, '$defs': schema['$defs']})
            for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
                print('%d\\t%s: %s' % (index, '.'.join(str(p) for p in error.absolute_path) or '(object)', error.message))
        """
}
