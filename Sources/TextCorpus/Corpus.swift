import Foundation
import Formats

/// Bad text input: each case names the file or symbol so the message can be acted on.
public enum CorpusError: Error, Equatable, CustomStringConvertible {
  case unreadable(path: String, reason: String)
  case empty(path: String)
  case binary(path: String, byteOffset: Int)
  case invalidUTF8(path: String, byteOffset: Int)
  case unknownSymbol(String, line: Int)
  case tooShort(tokens: Int, needed: Int)

  public var description: String {
    switch self {
    case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
    case .empty(let path): "\(path) is empty"
    case .binary(let path, let offset): "\(path) looks binary (NUL byte at offset \(offset)); expected UTF-8 text"
    case .invalidUTF8(let path, let offset): "\(path) is not valid UTF-8 (bad byte at offset \(offset))"
    case .unknownSymbol(let symbol, let line):
      "character \(Self.quoted(symbol)) on line \(line) is not in the model's vocabulary"
    case .tooShort(let tokens, let needed): "text has \(tokens) tokens, needs at least \(needed)"
    }
  }

  static func quoted(_ s: String) -> String {
    let scalars = s.unicodeScalars.map { $0.escaped(asASCII: true) }.joined()
    return "'\(scalars)'"
  }
}

public enum TokenizerKind: String, Codable, CaseIterable, Sendable {
  /// One token per Unicode scalar.
  case char
  /// PTB style: whitespace-separated words, `<eos>` at every line end, `<unk>` for words
  /// outside the vocabulary.
  case word
}

/// Reads a UTF-8 text file. Rejects missing, unreadable, empty, binary (any NUL byte) and
/// invalid UTF-8 files with a `CorpusError` that names the path.
public func readText(path: String) throws -> String {
  let data: Data
  do {
    data = try readFile(path, allowEmpty: true)
  } catch {
    throw CorpusError.unreadable(path: path, reason: error.reason)
  }
  if data.isEmpty { throw CorpusError.empty(path: path) }
  if let nul = data.firstIndex(of: 0) { throw CorpusError.binary(path: path, byteOffset: nul - data.startIndex) }
  guard let text = String(validatingUTF8Data: data) else {
    throw CorpusError.invalidUTF8(path: path, byteOffset: firstInvalidUTF8Offset(data))
  }
  return text
}

extension String {
  init?(validatingUTF8Data data: Data) {
    guard let s = String(validating: [UInt8](data), as: UTF8.self) else { return nil }
    self = s
  }
}

/// Offset of the first byte that does not start or continue a valid UTF-8 sequence.
func firstInvalidUTF8Offset(_ data: Data) -> Int {
  let bytes = [UInt8](data)
  var i = 0
  while i < bytes.count {
    let b = bytes[i]
    let length: Int
    if b < 0x80 { length = 1 } else if b >= 0xC2 && b < 0xE0 { length = 2 } else if b >= 0xE0 && b < 0xF0 { length = 3 } else if b >= 0xF0 && b < 0xF5 { length = 4 } else { return i }
    if i + length > bytes.count { return i }
    for k in 1..<length where bytes[i + k] & 0xC0 != 0x80 { return i }
    if length > 1 {
      var scalar = UInt32(b) & (0xFF >> (length + 1))
      for k in 1..<length { scalar = scalar << 6 | UInt32(bytes[i + k] & 0x3F) }
      let minimum: UInt32 = length == 2 ? 0x80 : (length == 3 ? 0x800 : 0x10000)
      if scalar < minimum || scalar > 0x10FFFF || (0xD800...0xDFFF).contains(scalar) { return i }
    }
    i += length
  }
  return bytes.count
}

/// Token strings in id order, with the lookup the other way.
public struct Vocabulary: Equatable, Sendable {
  public let kind: TokenizerKind
  public let tokens: [String]
  let index: [String: Int]

  public static let unknown = "<unk>"
  public static let endOfSentence = "<eos>"

  public init(kind: TokenizerKind, tokens: [String]) {
    self.kind = kind
    self.tokens = tokens
    var index: [String: Int] = [:]
    for (i, t) in tokens.enumerated() where index[t] == nil { index[t] = i }
    self.index = index
  }

  public var count: Int { tokens.count }
  public func id(of token: String) -> Int? { index[token] }

  /// Character vocabulary: the sorted distinct Unicode scalars of `texts`.
  public static func characters(of texts: [String]) -> Vocabulary {
    var seen = Set<Unicode.Scalar>()
    for text in texts { for s in text.unicodeScalars { seen.insert(s) } }
    return Vocabulary(kind: .char, tokens: seen.sorted { $0.value < $1.value }.map { String($0) })
  }

  /// Word vocabulary: `<unk>`, `<eos>`, then words by count (descending, ties by spelling),
  /// keeping words seen at least `minimumCount` times, at most `maximumSize` tokens in all.
  public static func words(of text: String, minimumCount: Int = 1, maximumSize: Int? = nil) -> Vocabulary {
    var counts: [String: Int] = [:]
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      for word in line.split(whereSeparator: { $0.isWhitespace }) { counts[String(word), default: 0] += 1 }
    }
    counts[unknown] = nil
    counts[endOfSentence] = nil
    var words = counts.filter { $0.value >= minimumCount }.sorted {
      $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key
    }.map(\.key)
    if let maximumSize { words = Array(words.prefix(max(0, maximumSize - 2))) }
    return Vocabulary(kind: .word, tokens: [unknown, endOfSentence] + words)
  }

  /// Token ids of `text`. Characters outside a character vocabulary are an error naming the
  /// character and its line; words outside a word vocabulary become `<unk>`.
  public func encode(_ text: String) throws -> [Int] {
    switch kind {
    case .char:
      var ids: [Int] = []
      ids.reserveCapacity(text.unicodeScalars.count)
      var line = 1
      for s in text.unicodeScalars {
        let key = String(s)
        guard let id = index[key] else { throw CorpusError.unknownSymbol(key, line: line) }
        ids.append(id)
        if s == "\n" { line += 1 }
      }
      return ids
    case .word:
      let unk = index[Self.unknown] ?? 0
      let eos = index[Self.endOfSentence] ?? 0
      var ids: [Int] = []
      var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
      if text.hasSuffix("\n") { lines.removeLast() }  // a final newline ends the last line
      for line in lines {
        for word in line.split(whereSeparator: { $0.isWhitespace }) { ids.append(index[String(word)] ?? unk) }
        ids.append(eos)
      }
      return ids
    }
  }

  /// Text of `ids`: characters joined, words joined by spaces with `<eos>` as a newline.
  public func decode(_ ids: [Int]) -> String {
    var out = ""
    for id in ids { out += piece(id, first: out.isEmpty || out.hasSuffix("\n")) }
    return out
  }

  /// The text one token adds to the output (for streaming).
  public func piece(_ id: Int, first: Bool) -> String {
    guard id >= 0 && id < tokens.count else { return "" }
    let token = tokens[id]
    switch kind {
    case .char: return token
    case .word: return token == Self.endOfSentence ? "\n" : (first ? token : " " + token)
    }
  }
}

/// Splits text into training and validation parts: the last `fraction` of the Unicode
/// scalars (for char) or lines (for word) is validation, as nanoGPT's 90/10 split.
public func splitForValidation(_ text: String, kind: TokenizerKind, fraction: Double = 0.1) -> (train: String, valid: String) {
  switch kind {
  case .char:
    let scalars = Array(text.unicodeScalars)
    let cut = Int(Double(scalars.count) * (1 - fraction))  // nanoGPT: data[:int(n * 0.9)]
    var train = String.UnicodeScalarView()
    train.append(contentsOf: scalars[..<cut])
    var valid = String.UnicodeScalarView()
    valid.append(contentsOf: scalars[cut...])
    return (String(train), String(valid))
  case .word:
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    let cut = Int(Double(lines.count) * (1 - fraction))
    return (lines[..<cut].joined(separator: "\n") + "\n", lines[cut...].joined(separator: "\n"))
  }
}
