/// Kubernetes naming rules, and making Trellis's names fit them.
public enum PodNames {
    /// RFC 1123 label: at most 63 lowercase letters, digits and '-', starting
    /// and ending with a letter or digit (namespaces, our pod names).
    public static func isDNSLabel(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 63, let first = text.first, let last = text.last else { return false }
        return isLowerAlnum(first) && isLowerAlnum(last) && text.allSatisfy { isLowerAlnum($0) || $0 == "-" }
    }

    /// The Pod name for a task: `prefix` (the task's `name`, else its id) made
    /// a DNS label (lowercase; other characters become '-'), cut to leave
    /// room, then '-' and the 8-character `suffix`: at most 63 characters, as
    /// Airflow's KubernetesPodOperator names its pods.
    public static func podName(prefix: String, suffix: String) -> String {
        var cleaned = ""
        for character in prefix.lowercased() {
            cleaned.append(isLowerAlnum(character) ? character : "-")
        }
        var trimmed = Substring(cleaned)
        while let first = trimmed.first, !isLowerAlnum(first) { trimmed = trimmed.dropFirst() }
        trimmed = trimmed.prefix(63 - 1 - suffix.count)
        while let last = trimmed.last, !isLowerAlnum(last) { trimmed = trimmed.dropLast() }
        return trimmed.isEmpty ? "task-\(suffix)" : "\(trimmed)-\(suffix)"
    }

    /// 8 random lowercase letters and digits.
    public static func randomSuffix<Generator: RandomNumberGenerator>(using generator: inout Generator) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<8).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }

    public static func randomSuffix() -> String {
        var generator = SystemRandomNumberGenerator()
        return randomSuffix(using: &generator)
    }

    /// A label value for any text, as Airflow's make_safe_label_value does:
    /// characters a label cannot hold are dropped, and if anything was
    /// dropped or it is too long, it is cut and a hash of the original is
    /// appended, so different texts stay different labels.
    public static func safeLabelValue(_ text: String) -> String {
        var kept = Substring(String(text.filter { isAlnum($0) || $0 == "-" || $0 == "_" || $0 == "." }))
        while let first = kept.first, !isAlnum(first) { kept = kept.dropFirst() }
        while let last = kept.last, !isAlnum(last) { kept = kept.dropLast() }
        let safe = String(kept)
        guard safe != text || safe.utf8.count > 63 else { return safe }
        let hash = stableHash(text)
        var head = Substring(safe.prefix(63 - hash.count - 1))
        while let last = head.last, !isAlnum(last) { head = head.dropLast() }
        return head.isEmpty ? hash : "\(head)-\(hash)"
    }

    /// Why a label cannot be used, or nil if it can.
    public static func labelProblem(name: String, value: String) -> String? {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        let key = parts.last.map(String.init) ?? ""
        if parts.count > 2 { return "label key \"\(name)\" has more than one '/'" }
        if parts.count == 2 {
            let prefix = String(parts[0])
            guard !prefix.isEmpty, prefix.utf8.count <= 253,
                  prefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ isDNSLabel(String($0)) }) else {
                return "label key \"\(name)\" has an invalid prefix (a DNS subdomain: lowercase letters, digits, '-' and '.')"
            }
        }
        if !isLabelText(key, allowEmpty: false) {
            return "label key \"\(name)\" must be 1 to 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        }
        if !isLabelText(value, allowEmpty: true) {
            return "label \"\(name)\" has the value \"\(value)\": at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        }
        return nil
    }

    static func isLabelText(_ text: String, allowEmpty: Bool) -> Bool {
        if text.isEmpty { return allowEmpty }
        guard text.utf8.count <= 63, let first = text.first, let last = text.last else { return false }
        return isAlnum(first) && isAlnum(last) && text.allSatisfy { isAlnum($0) || $0 == "-" || $0 == "_" || $0 == "." }
    }

    private static func isLowerAlnum(_ character: Character) -> Bool {
        character.isASCII && (character.isLowercase || character.isNumber)
    }

    private static func isAlnum(_ character: Character) -> Bool {
        character.isASCII && (character.isLetter || character.isNumber)
    }

    /// 9 hex digits of FNV-1a 64 (stable across processes, unlike Hasher).
    static func stableHash(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String((String(repeating: "0", count: max(0, 16 - hex.count)) + hex).prefix(9))
    }
}
