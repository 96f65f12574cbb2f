/// The naming rules the Kubernetes API server enforces, checked when a DAG
/// is submitted rather than when its pod is created hours later.
enum KubernetesNames {
    /// RFC 1123 label: namespaces, container names (≤ 63).
    static func dns1123LabelProblem(_ value: String) -> String? {
        guard !value.isEmpty else { return "must not be empty" }
        guard value.utf8.count <= 63 else { return "'\(value)' is longer than 63 characters" }
        guard isDNSLabel(value) else {
            return "'\(value)' is not a valid RFC 1123 label: use lowercase letters, digits and '-', starting and ending with a letter or digit"
        }
        return nil
    }

    /// RFC 1123 subdomain: pod and service-account names (≤ `maxLength`).
    static func dns1123SubdomainProblem(_ value: String, maxLength: Int = 253) -> String? {
        guard !value.isEmpty else { return "must not be empty" }
        guard value.utf8.count <= maxLength else { return "'\(value)' is longer than \(maxLength) characters" }
        guard value.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ isDNSLabel(String($0)) }) else {
            return "'\(value)' is not a valid RFC 1123 name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        }
        return nil
    }

    /// A label or annotation key: an optional DNS-subdomain prefix and '/',
    /// then a name of ≤ 63 characters.
    static func qualifiedNameProblem(_ value: String) -> String? {
        let parts = value.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return "'\(value)' has more than one '/'" }
        if parts.count == 2 {
            if let problem = dns1123SubdomainProblem(String(parts[0])) { return "prefix of '\(value)': \(problem)" }
        }
        let name = String(parts.last!)
        guard !name.isEmpty else { return "'\(value)' has an empty name" }
        guard name.utf8.count <= 63 else { return "name part of '\(value)' is longer than 63 characters" }
        guard isLabelValueShape(name) else {
            return "'\(value)' is not a valid key: the name must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        }
        return nil
    }

    /// A label value: empty, or ≤ 63 characters of letters, digits, '-', '_',
    /// '.', starting and ending with a letter or digit.
    static func labelValueProblem(_ value: String) -> String? {
        guard value.utf8.count <= 63 else { return "'\(value)' is longer than 63 characters" }
        guard value.isEmpty || isLabelValueShape(value) else {
            return "'\(value)' is not a valid label value: use letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        }
        return nil
    }

    /// A resource quantity (`500m`, `1Gi`, `2`, `1e3`).
    static func quantityProblem(_ value: String) -> String? {
        var rest = Substring(value)
        if rest.first == "+" || rest.first == "-" { rest = rest.dropFirst() }
        let integer = rest.prefix { $0.isASCII && $0.isNumber }
        rest = rest.dropFirst(integer.count)
        var fraction = Substring("")
        if rest.first == "." {
            rest = rest.dropFirst()
            fraction = rest.prefix { $0.isASCII && $0.isNumber }
            rest = rest.dropFirst(fraction.count)
        }
        let suffixes: Set<String> = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"]
        var validSuffix = suffixes.contains(String(rest))
        if !validSuffix, let first = rest.first, first == "e" || first == "E" {
            var exponent = rest.dropFirst()
            if exponent.first == "+" || exponent.first == "-" { exponent = exponent.dropFirst() }
            validSuffix = !exponent.isEmpty && exponent.allSatisfy { $0.isASCII && $0.isNumber }
        }
        guard !(integer.isEmpty && fraction.isEmpty), validSuffix else {
            return "'\(value)' is not a Kubernetes quantity (examples: 500m, 2, 1.5, 256Mi, 1Gi)"
        }
        return nil
    }

    /// A container environment variable name.
    static func envVarNameProblem(_ value: String) -> String? {
        guard let first = value.unicodeScalars.first else { return "must not be empty" }
        let allowed: (Unicode.Scalar) -> Bool = { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-._".unicodeScalars.contains($0)) }
        guard allowed(first), !("0"..."9").contains(first), value.unicodeScalars.allSatisfy(allowed) else {
            return "'\(value)' is not a valid environment variable name: use letters, digits, '_', '-' and '.', not starting with a digit"
        }
        return nil
    }

    private static func isDNSLabel(_ value: String) -> Bool {
        let scalars = Array(value.unicodeScalars)
        guard let first = scalars.first, let last = scalars.last, scalars.count <= 63 else { return false }
        let lowerAlnum: (Unicode.Scalar) -> Bool = { ("a"..."z").contains($0) || ("0"..."9").contains($0) }
        return lowerAlnum(first) && lowerAlnum(last) && scalars.allSatisfy { lowerAlnum($0) || $0 == "-" }
    }

    private static func isLabelValueShape(_ value: String) -> Bool {
        let scalars = Array(value.unicodeScalars)
        guard let first = scalars.first, let last = scalars.last else { return false }
        let alnum: (Unicode.Scalar) -> Bool = { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)) }
        return alnum(first) && alnum(last) && scalars.allSatisfy { alnum($0) || "-_.".unicodeScalars.contains($0) }
    }
}
