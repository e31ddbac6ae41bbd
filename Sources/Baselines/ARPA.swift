import Foundation
import Formats

extension NGramModel {
  /// A token as written in ARPA files: `<eos>` is `</s>`; a character that is whitespace or
  /// `<`, `\`, or anything that would not survive whitespace splitting, is `<U+XXXX>`.
  static func arpaToken(_ token: String) -> String {
    if token == "<eos>" { return "</s>" }
    if token == "<unk>" { return token }
    let scalars = Array(token.unicodeScalars)
    if scalars.count == 1, let s = scalars.first,
      s.properties.isWhitespace || s == "<" || s == "\\" || s.value < 0x20 || s.value == 0x7F || s.value == 0x85 || s.value == 0xA0
    {
      return String(format: "<U+%04X>", s.value)
    }
    return token
  }

  static func vocabularyToken(_ arpa: Substring) -> String {
    if arpa == "</s>" { return "<eos>" }
    if arpa.hasPrefix("<U+"), arpa.hasSuffix(">"), let v = UInt32(arpa.dropFirst(3).dropLast(), radix: 16),
      let s = Unicode.Scalar(v)
    {
      return String(Character(s))
    }
    return String(arpa)
  }

  /// The model in ARPA text: `\data\`, the counts, `\k-grams:` sections of
  /// `log10 p <TAB> w1 ... wk [<TAB> log10 backoff]`, `\end\`. `<s>` is listed with
  /// probability -99 (never predicted), as SRILM and KenLM write it.
  public func arpa() -> String {
    var words: [[Int]] = Array(repeating: [], count: order + 1)
    var parents: [[Int32]] = Array(repeating: [], count: order + 1)
    for k in 1...order {
      words[k] = Array(repeating: 0, count: logProbability[k].count)
      parents[k] = Array(repeating: 0, count: logProbability[k].count)
      for (key, node) in children[k] {
        words[k][Int(node)] = Int(key & ((1 << Self.wordBits) - 1))
        parents[k][Int(node)] = Int32(truncatingIfNeeded: key >> Self.wordBits)
      }
    }
    let names = tokens.map(Self.arpaToken) + ["<s>"]  // the last: sentenceStart
    func gram(_ k: Int, _ node: Int) -> String {
      var parts: [String] = []
      var level = k
      var n = node
      while level > 0 {
        parts.append(names[words[level][n]])
        n = Int(parents[level][n])
        level -= 1
      }
      return parts.reversed().joined(separator: " ")
    }
    // Toolkits need <s>, </s> and <unk> in the vocabulary (KenLM refuses a file without </s>):
    // those the model does not have are listed with log10 p = -99, never predicted.
    var markers: [String] = []
    if !tokens.contains("<s>") && children[1][Self.key(0, sentenceStart)] == nil { markers.append("-99\t<s>\t0") }
    if !tokens.contains("<eos>") && !tokens.contains("</s>") { markers.append("-99\t</s>") }
    if !tokens.contains("<unk>") { markers.append("-99\t<unk>") }
    var out = "\n\\data\\\n"
    for k in 1...order {
      let stored = (0..<logProbability[k].count).filter { !logProbability[k][$0].isNaN }.count
      out += "ngram \(k)=\(stored + (k == 1 ? markers.count : 0))\n"
    }
    for k in 1...order {
      out += "\n\\\(k)-grams:\n"
      if k == 1 { for m in markers { out += m + "\n" } }
      for n in 0..<logProbability[k].count where !logProbability[k][n].isNaN {
        out += "\(logProbability[k][n])\t\(gram(k, n))"
        if k < order && logBackoff[k][n] != 0 { out += "\t\(logBackoff[k][n])" }
        out += "\n"
      }
    }
    out += "\n\\end\\\n"
    return out
  }

  /// Writes the ARPA text atomically.
  public func writeARPA(path: String) throws {
    try writeAtomically(Data(arpa().utf8), to: path)
  }

  /// Reads an ARPA file (ours, KenLM's or SRILM's). `<s>` is kept as a context only
  /// (`sentenceStart`, for sentence scoring; stream scoring never uses it); `</s>` and `<unk>`
  /// listed only at -99 or below are left out.
  public static func readARPA(path: String) throws -> NGramModel {
    let data: Data
    do { data = try readFile(path) } catch { throw BaselineError.file(error) }
    guard let text = String(data: data, encoding: .utf8) else { throw BaselineError.malformedARPA("\(path) is not UTF-8 text") }
    return try parseARPA(text, path: path)
  }

  static func parseARPA(_ text: String, path: String) throws -> NGramModel {
    let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
    var index = 0
    while index < lines.count && lines[index].trimmingCharacters(in: .whitespaces) != "\\data\\" { index += 1 }
    guard index < lines.count else { throw BaselineError.malformedARPA("\(path): not an ARPA file (no \\data\\ line)") }
    index += 1
    var declared: [Int] = []
    while index < lines.count, lines[index].hasPrefix("ngram ") {
      let parts = lines[index].dropFirst(6).split(separator: "=")
      guard parts.count == 2, let k = Int(parts[0].trimmingCharacters(in: .whitespaces)),
        let n = Int(parts[1].trimmingCharacters(in: .whitespaces)), k == declared.count + 1, n >= 0
      else { throw BaselineError.malformedARPA("\(path): line \(index + 1): bad count line '\(lines[index])'") }
      declared.append(n)
      index += 1
    }
    let order = declared.count
    guard order >= 1 && order <= 12 else { throw BaselineError.malformedARPA("\(path): \(order) orders declared (1 to 12 supported)") }
    // Sections.
    var entries: [[(words: [Substring], logP: Float, backoff: Float)]] = Array(repeating: [], count: order + 1)
    var level = 0
    for lineNumber in index..<lines.count {
      let line = lines[lineNumber].trimmingCharacters(in: .whitespaces)
      if line.isEmpty { continue }
      if line == "\\end\\" { break }
      if line.hasPrefix("\\"), line.hasSuffix("-grams:"), let k = Int(line.dropFirst().dropLast(7)) {
        guard k == level + 1, k <= order else { throw BaselineError.malformedARPA("\(path): line \(lineNumber + 1): unexpected section \(line)") }
        level = k
        continue
      }
      guard level >= 1 else { throw BaselineError.malformedARPA("\(path): line \(lineNumber + 1): n-gram outside a section") }
      let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
      guard fields.count == level + 1 || fields.count == level + 2, let logP = Float(fields[0]), logP <= 0
      else { throw BaselineError.malformedARPA("\(path): line \(lineNumber + 1): expected log10 p, \(level) words, optional backoff") }
      var backoff: Float = 0
      if fields.count == level + 2 {
        guard let b = Float(fields[level + 1]), b.isFinite else {
          throw BaselineError.malformedARPA("\(path): line \(lineNumber + 1): backoff '\(fields[level + 1])' is not a number")
        }
        backoff = b
      }
      entries[level].append((Array(fields[1...level]), logP, backoff))
    }
    for k in 1...order where entries[k].count != declared[k - 1] {
      throw BaselineError.malformedARPA("\(path): \\data\\ declares \(declared[k - 1]) \(k)-grams, the file has \(entries[k].count)")
    }
    var tokens: [String] = []
    var ids: [Substring: Int] = [:]
    // </s> or <unk> listed at -99 or below (markers, never predicted) are not tokens; <s> is a
    // context only, the id after the tokens.
    func isMarker(_ e: (words: [Substring], logP: Float, backoff: Float)) -> Bool {
      (e.words[0] == "</s>" || e.words[0] == "<unk>") && e.logP <= -98
    }
    let markers = Set(entries[1].filter(isMarker).map { $0.words[0] })
    for e in entries[1] where !isMarker(e) && e.words[0] != "<s>" {
      guard ids[e.words[0]] == nil else { throw BaselineError.malformedARPA("\(path): unigram \(e.words[0]) listed twice") }
      ids[e.words[0]] = tokens.count
      tokens.append(vocabularyToken(e.words[0]))
    }
    guard !tokens.isEmpty else { throw BaselineError.malformedARPA("\(path): no unigrams") }
    if entries[1].contains(where: { $0.words[0] == "<s>" }) { ids["<s>"] = tokens.count }
    var model = NGramModel(order: order, tokens: tokens)
    for k in 1...order {
      // <s>'s own unigram matters only for its backoff (it is never predicted).
      for e in entries[k] where !(k == 1 && e.words[0] == "<s>" && e.backoff == 0) {
        var ids_: [Int] = []
        var skip = false
        for w in e.words {
          if markers.contains(w) { skip = true; break }
          guard let id = ids[w] else { throw BaselineError.malformedARPA("\(path): \(k)-gram '\(e.words.joined(separator: " "))' uses \(w), which has no unigram") }
          ids_.append(id)
        }
        if skip { continue }
        // Create the path (placeholders, not stored n-grams, where a prefix is missing).
        var node: Int32 = 0
        for (depth, id) in ids_.enumerated() {
          let key = Self.key(node, id)
          if let next = model.children[depth + 1][key] {
            node = next
          } else {
            node = Int32(model.logProbability[depth + 1].count)
            model.children[depth + 1][key] = node
            model.logProbability[depth + 1].append(.nan)
            model.logBackoff[depth + 1].append(0)
          }
        }
        model.logProbability[k][Int(node)] = e.logP
        model.logBackoff[k][Int(node)] = e.backoff
      }
    }
    return model
  }
}
