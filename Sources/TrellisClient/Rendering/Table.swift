/// A table of rows under upper-case headers, kubectl style: columns two
/// spaces apart, shrunk to fit a width by truncating the widest cells with
/// `…`. Pure: `render` returns the lines.
public struct Table: Sendable, Hashable {
    public struct Column: Sendable, Hashable {
        public var header: String
        /// Never shrunk below this many characters (nor below the header).
        public var minimumWidth: Int
        /// Numbers read better right-aligned.
        public var rightAligned: Bool

        public init(_ header: String, minimumWidth: Int = 6, rightAligned: Bool = false) {
            self.header = header
            self.minimumWidth = minimumWidth
            self.rightAligned = rightAligned
        }
    }

    public struct Cell: Sendable, Hashable, ExpressibleByStringLiteral {
        public var text: String
        public var style: Style

        public init(_ text: String, _ style: Style = .plain) {
            // One line per row: a cell never breaks the grid.
            self.text = text.replacingOccurrences(of: "\n", with: " ")
            self.style = style
        }

        public init(stringLiteral value: String) { self.init(value) }
    }

    public var columns: [Column]
    public var rows: [[Cell]]

    public init(_ columns: [Column], rows: [[Cell]] = []) {
        self.columns = columns
        self.rows = rows
    }

    public mutating func append(_ row: [Cell]) {
        precondition(row.count == columns.count, "a row needs \(columns.count) cells")
        rows.append(row)
    }

    static let gap = 2

    /// The width of each column after fitting into `width`.
    public func columnWidths(fitting width: Int) -> [Int] {
        var widths = columns.indices.map { index in
            rows.reduce(columns[index].header.count) { max($0, $1[index].text.count) }
        }
        let floors = columns.map { max(min($0.minimumWidth, 40), 1) }
        let budget = width - Self.gap * max(columns.count - 1, 0)
        var total = widths.reduce(0, +)
        // Take one character at a time from the widest column that may
        // still shrink: long columns give way first, short ones stay whole.
        while total > budget {
            var widest: Int?
            for index in widths.indices where widths[index] > floors[index] {
                if widest == nil || widths[index] > widths[widest!] { widest = index }
            }
            guard let widest else { break }
            widths[widest] -= 1
            total -= 1
        }
        return widths
    }

    /// The header line and one line per row, each at most `terminal.width`
    /// characters (not counting colour codes).
    public func render(_ terminal: Terminal = .plain) -> [String] {
        let widths = columnWidths(fitting: terminal.width)
        var lines = [line(columns.map { Cell($0.header, .bold) }, widths: widths, colour: terminal.colour)]
        for row in rows { lines.append(line(row, widths: widths, colour: terminal.colour)) }
        return lines
    }

    private func line(_ cells: [Cell], widths: [Int], colour: Bool) -> String {
        var parts: [String] = []
        for (index, cell) in cells.enumerated() {
            let text = truncate(cell.text, to: widths[index])
            let padding = String(repeating: " ", count: widths[index] - text.count)
            let styled = cell.style.apply(text, colour: colour)
            let last = index == cells.count - 1
            if columns[index].rightAligned {
                parts.append(padding + styled)
            } else {
                parts.append(last ? styled : styled + padding)
            }
        }
        let joined = parts.joined(separator: String(repeating: " ", count: Self.gap))
        // Empty last cells leave padding behind; never end a line in blanks.
        return String(joined.reversed().drop { $0 == " " }.reversed())
    }
}

/// `text` cut to `width` characters, ending in `…` when cut.
public func truncate(_ text: String, to width: Int) -> String {
    guard text.count > width else { return text }
    guard width > 1 else { return String(text.prefix(width)) }
    return String(text.prefix(width - 1)) + "…"
}

/// `text` broken at spaces into lines of at most `width` characters: the
/// first starts with `firstIndent`, the others with `indent`. A word longer
/// than a line is cut into pieces.
public func wrap(_ text: String, to width: Int, indent: String = "", firstIndent: String = "") -> [String] {
    var lines: [String] = []
    var line = firstIndent
    var lineHasWord = false
    for word in text.split(separator: " ", omittingEmptySubsequences: true) {
        var word = Substring(word)
        while !word.isEmpty {
            let prefix = lineHasWord ? line + " " : line
            let room = width - prefix.count
            if word.count <= room {
                line = prefix + word
                lineHasWord = true
                word = ""
            } else if lineHasWord {
                lines.append(line)
                line = indent
                lineHasWord = false
            } else {
                // Alone on its line and still too long: cut it.
                let cut = max(room, 1)
                lines.append(prefix + word.prefix(cut))
                word = word.dropFirst(cut)
                line = indent
            }
        }
    }
    if lineHasWord { lines.append(line) }
    return lines
}
