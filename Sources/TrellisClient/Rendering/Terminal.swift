public import Foundation

/// What the output goes to: whether it is a terminal (redraw in place,
/// colour), its width, and whether colour is allowed (never with NO_COLOR
/// set, https://no-color.org).
public struct Terminal: Sendable, Hashable {
    public var isTerminal: Bool
    public var colour: Bool
    /// Columns tables and progress lines fit into.
    public var width: Int

    public init(isTerminal: Bool, colour: Bool, width: Int) {
        self.isTerminal = isTerminal
        self.colour = colour
        self.width = width
    }

    /// Plain output at 80 columns: pipes, files and tests.
    public static let plain = Terminal(isTerminal: false, colour: false, width: 80)

    /// Standard output as it is now.
    public static func standardOutput(environment: [String: String] = ProcessInfo.processInfo.environment) -> Terminal {
        let tty = isatty(STDOUT_FILENO) == 1
        var width = 80
        if tty {
            var size = winsize()
            if ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col >= 40 { width = Int(size.ws_col) }
        }
        if let columns = environment["COLUMNS"].flatMap(Int.init), columns >= 40 { width = columns }
        let noColour = environment["NO_COLOR"].map { !$0.isEmpty } ?? false
        let dumb = environment["TERM"] == "dumb"
        return Terminal(isTerminal: tty, colour: tty && !noColour && !dumb, width: width)
    }
}

/// The few colours the client uses, by meaning.
public enum Style: Sendable, Hashable {
    case plain, good, bad, busy, waiting, dim, bold

    var code: String? {
        switch self {
        case .plain: nil
        case .good: "32"
        case .bad: "31"
        case .busy: "36"
        case .waiting: "33"
        case .dim: "2"
        case .bold: "1"
        }
    }

    /// `text` in this style when `colour` is on.
    public func apply(_ text: String, colour: Bool) -> String {
        guard colour, let code, !text.isEmpty else { return text }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }
}
