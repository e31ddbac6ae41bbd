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

  /// One line naming the file or symbol and what is wrong.
  public var description: String {
    switch self {
    case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
    case .empty(let path): "\(path) is empty"
    case .binary(let path, let offset):
      "\(path) looks binary (NUL byte at offset \(offset)); expected text (--encoding bytes reads any bytes)"
    case .invalidUTF8(let path, let offset):
      "\(path) is not valid UTF-8 (bad byte at offset \(offset)); --encoding latin1 reads each byte as a character, --encoding bytes as a byte token"
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

/// How a file's bytes become text.
public enum TextEncoding: String, Codable, CaseIterable, Sendable {
  /// UTF-8, validated: a file with invalid UTF-8 or a NUL byte is refused.
  case utf8
  /// ISO 8859-1: each byte is the character U+0000...U+00FF of the same value (any file but one
  /// with a NUL byte reads).
  case latin1
  /// Bytes: each byte, NUL included, is one of 256 fixed tokens (the text holds it as the
  /// character of the same value, as latin1 does); output is reassembled into UTF-8.
  case bytes
}

extension TextEncoding {
  /// The bytes of `text` as read from its file with this encoding: its UTF-8 for `.utf8`, one
  /// byte per character for `.latin1` and `.bytes`.
  public func bytes(of text: String) -> [UInt8] {
    self == .utf8 ? Array(text.utf8) : text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) }
  }

  /// How many bytes `text` had in its file.
  public func byteCount(of text: String) -> Int { self == .utf8 ? text.utf8.count : text.unicodeScalars.count }
}

/// How text becomes token ids.
public enum TokenizerKind: String, Codable, CaseIterable, Sendable {
  /// One token per Unicode scalar.
  case char
  /// PTB style: whitespace-separated words, `<eos>` at every line end, `<unk>` for words
  /// outside the vocabulary.
  case word
  /// Byte-level byte-pair encoding learned from the training text (`BytePairEncoding`): any
  /// bytes encode, none is unknown.
  case bpe
}

/// Reads a UTF-8 text file. Rejects missing, unreadable, empty, binary (any NUL byte) and
/// invalid UTF-8 files with a `CorpusError` that names the path.
public func readText(path: String, encoding: TextEncoding = .utf8) throws -> String {
  let data: Data
  do {
    data = try readFile(path, allowEmpty: true)
  } catch {
    throw CorpusError.unreadable(path: path, reason: error.reason)
  }
  if data.isEmpty { throw CorpusError.empty(path: path) }
  if encoding != .bytes, let nul = data.firstIndex(of: 0) {
    throw CorpusError.binary(path: path, byteOffset: nul - data.startIndex)
  }
  if encoding != .utf8 { return latin1String(data) }
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

/// Each byte as the Unicode scalar of the same value (ISO 8859-1).
public func latin1String<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
  var scalars = String.UnicodeScalarView()
  for b in bytes { scalars.append(Unicode.Scalar(b)) }
  return String(scalars)
}

/// Reassembles a stream of bytes into UTF-8 text for display: complete sequences are passed
/// on, an incomplete one is held back until it completes, and a byte that cannot start or
/// continue a valid sequence is shown as `\xHH`.
public struct UTF8Assembler: Sendable {
  var pending: [UInt8] = []
  /// An assembler with nothing held back.
  public init() {}

  /// The text that `byte` completes (often empty while a sequence is incomplete).
  public mutating func push(_ byte: UInt8) -> String {
    pending.append(byte)
    var out = ""
    while !pending.isEmpty {
      let need = Self.sequenceLength(pending[0])
      if need == 0 {  // not a lead byte
        out += Self.escaped(pending.removeFirst())
        continue
      }
      if pending.count < need {
        // Incomplete: keep waiting while every byte so far is a continuation byte.
        if pending.dropFirst().allSatisfy({ $0 & 0xC0 == 0x80 }) { break }
        out += Self.escaped(pending.removeFirst())
        continue
      }
      let candidate = Array(pending[0..<need])
      if let s = String(validating: candidate, as: UTF8.self) {
        out += s
        pending.removeFirst(need)
      } else {
        out += Self.escaped(pending.removeFirst())
      }
    }
    return out
  }

  /// Whatever is still held back, escaped (at the end of a stream).
  public mutating func flush() -> String {
    defer { pending.removeAll() }
    return pending.map(Self.escaped).joined()
  }

  static func sequenceLength(_ lead: UInt8) -> Int {
    switch lead {
    case 0x00...0x7F: 1
    case 0xC2...0xDF: 2
    case 0xE0...0xEF: 3
    case 0xF0...0xF4: 4
    default: 0
    }
  }

  static func escaped(_ byte: UInt8) -> String {
    "\\x" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
  }
}

extension String {
  func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// Offset of the first byte that does not start or continue a valid UTF-8 sequence.
public func firstInvalidUTF8Offset(_ data: Data) -> Int {
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
  /// How text becomes tokens.
  public let kind: TokenizerKind
  /// Token names in id order.
  public let tokens: [String]
  /// How files are read into text for this vocabulary (stored in checkpoints, so evaluation
  /// and generation read text as training did).
  public let encoding: TextEncoding
  /// The merges of a `.bpe` vocabulary (nil for the other kinds).
  public let bytePairs: BytePairEncoding?
  let index: [String: Int]

  /// The word vocabulary's token for words outside it.
  public static let unknown = "<unk>"
  /// The word vocabulary's line-end token (`</s>` in ARPA files).
  public static let endOfSentence = "<eos>"

  /// A character or word vocabulary of `tokens` in id order (for BPE use `init(bytePairs:encoding:)`).
  public init(kind: TokenizerKind, tokens: [String], encoding: TextEncoding = .utf8) {
    self.kind = kind
    self.tokens = tokens
    self.encoding = encoding
    self.bytePairs = nil
    self.index = Self.makeIndex(tokens)
  }

  /// A `.bpe` vocabulary: the 256 bytes, then one token per merge, named as
  /// `BytePairEncoding.tokenNames` says.
  public init(bytePairs: BytePairEncoding, encoding: TextEncoding = .utf8) {
    self.kind = .bpe
    self.tokens = bytePairs.tokenNames
    self.encoding = encoding
    self.bytePairs = bytePairs
    self.index = Self.makeIndex(tokens)
  }

  static func makeIndex(_ tokens: [String]) -> [String: Int] {
    var index: [String: Int] = [:]
    for (i, t) in tokens.enumerated() where index[t] == nil { index[t] = i }
    return index
  }

  /// Number of tokens `V`.
  public var count: Int { tokens.count }
  /// The id of the token named `token`, if any.
  public func id(of token: String) -> Int? { index[token] }

  /// The 256 byte tokens (`--encoding bytes`): id b is byte b, shown as the character itself
  /// where it is printable ASCII and as `<0xHH>` otherwise.
  public static let bytes = Vocabulary(kind: .char, tokens: byteNames, encoding: .bytes)

  /// The name of each byte's token.
  static let byteNames: [String] = (0...255).map { b in
    (0x21...0x7E).contains(b) ? String(UnicodeScalar(UInt8(b))) : "<0x" + String(b, radix: 16, uppercase: true).leftPadded(to: 2) + ">"
  }
  static let byteOfName: [String: UInt8] = Dictionary(
    uniqueKeysWithValues: byteNames.enumerated().map { ($0.element, UInt8($0.offset)) })

  /// The byte a token of a byte vocabulary stands for.
  public func byte(of id: Int) -> UInt8? {
    guard isBytes, id >= 0, id < tokens.count else { return nil }
    return Self.byteOfName[tokens[id]]
  }

  /// Whether this is the fixed byte vocabulary: ids are byte values.
  public var isBytes: Bool { kind == .char && encoding == .bytes }

  /// Whether tokens stand for bytes rather than characters or words (the byte vocabulary and
  /// BPE): output is reassembled into UTF-8 with `UTF8Assembler`.
  public var isByteLevel: Bool { isBytes || bytePairs != nil }

  /// The bytes a token of a byte-level vocabulary stands for (nil for other vocabularies).
  public func bytes(of id: Int) -> [UInt8]? {
    if let bytePairs { return id >= 0 && id < bytePairs.count ? bytePairs.tokenBytes[id] : nil }
    return byte(of: id).map { [$0] }
  }

  /// The bytes of `text` as read from its file (see `TextEncoding.bytes(of:)`).
  public func bytes(of text: String) -> [UInt8] { encoding.bytes(of: text) }

  /// How many bytes `text` had in its file (the denominator of bits per byte).
  public func byteCount(of text: String) -> Int { encoding.byteCount(of: text) }

  /// The same tokens for text read with `encoding`.
  public func reading(_ encoding: TextEncoding) -> Vocabulary {
    if let bytePairs { return Vocabulary(bytePairs: bytePairs, encoding: encoding) }
    return Vocabulary(kind: kind, tokens: tokens, encoding: encoding)
  }

  /// Character vocabulary: the sorted distinct Unicode scalars of `texts` (read with
  /// `encoding`; `.bytes` gives the fixed 256 byte tokens whatever the texts).
  public static func characters(of texts: [String], encoding: TextEncoding = .utf8) -> Vocabulary {
    if encoding == .bytes { return bytes }
    var seen = Set<Unicode.Scalar>()
    for text in texts { for s in text.unicodeScalars { seen.insert(s) } }
    return Vocabulary(kind: .char, tokens: seen.sorted { $0.value < $1.value }.map { String($0) }, encoding: encoding)
  }

  /// Word vocabulary: `<unk>`, `<eos>`, then words by count (descending, ties by spelling),
  /// keeping words seen at least `minimumCount` times, at most `maximumSize` tokens in all.
  public static func words(
    of text: String, minimumCount: Int = 1, maximumSize: Int? = nil, encoding: TextEncoding = .utf8
  ) -> Vocabulary {
    var counts: [String: Int] = [:]
    countWords(in: text, into: &counts)
    return words(counts: counts, minimumCount: minimumCount, maximumSize: maximumSize, encoding: encoding)
  }

  /// Adds the count of each whitespace-separated word of `text` into `counts`.
  public static func countWords(in text: String, into counts: inout [String: Int]) {
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      for word in line.split(whereSeparator: { $0.isWhitespace }) { counts[String(word), default: 0] += 1 }
    }
  }

  /// Word vocabulary from word counts (as `words(of:)`, for text read in parts).
  public static func words(
    counts: [String: Int], minimumCount: Int = 1, maximumSize: Int? = nil, encoding: TextEncoding = .utf8
  ) -> Vocabulary {
    var counts = counts
    counts[unknown] = nil
    counts[endOfSentence] = nil
    var words = counts.filter { $0.value >= minimumCount }.sorted {
      $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key
    }.map(\.key)
    if let maximumSize { words = Array(words.prefix(max(0, maximumSize - 2))) }
    return Vocabulary(kind: .word, tokens: [unknown, endOfSentence] + words, encoding: encoding)
  }

  /// Token ids of `text`. Characters outside a character vocabulary are an error naming the
  /// character and its line; words outside a word vocabulary become `<unk>`.
  public func encode(_ text: String) throws -> [Int] {
    switch kind {
    case .bpe:
      return bytePairs?.encode(bytes(of: text)) ?? []
    case .char where isBytes:
      // Text read with --encoding bytes holds each byte as the scalar of the same value.
      var ids: [Int] = []
      ids.reserveCapacity(text.unicodeScalars.count)
      var line = 1
      for s in text.unicodeScalars {
        guard s.value < 256, let id = index[Self.byteNames[Int(s.value)]] else {
          throw CorpusError.unknownSymbol(String(s), line: line)
        }
        ids.append(id)
        if s == "\n" { line += 1 }
      }
      return ids
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

  /// Text of `ids`: characters joined, words joined by spaces with `<eos>` as a newline; the
  /// bytes of a byte-level vocabulary as UTF-8, with bytes that are not UTF-8 as `\xHH`.
  public func decode(_ ids: [Int]) -> String {
    if isByteLevel {
      var assembler = UTF8Assembler()
      var out = ""
      for id in ids { for b in bytes(of: id) ?? [] { out += assembler.push(b) } }
      return out + assembler.flush()
    }
    var out = ""
    for id in ids { out += piece(id, first: out.isEmpty || out.hasSuffix("\n")) }
    return out
  }

  /// The text one token adds to the output (for streaming).
  public func piece(_ id: Int, first: Bool) -> String {
    guard id >= 0 && id < tokens.count else { return "" }
    let token = tokens[id]
    switch kind {
    case .char where isBytes: return Self.byteOfName[token].map { String(UnicodeScalar($0)) } ?? ""
    case .char: return token
    case .bpe: return latin1String(bytePairs?.tokenBytes[id] ?? [])
    case .word: return token == Self.endOfSentence ? "\n" : (first ? token : " " + token)
    }
  }
}

/// Splits text into training and validation parts: the last `fraction` of the Unicode
/// scalars (for char) or lines (for word) is validation, as nanoGPT's 90/10 split.
public func splitForValidation(_ text: String, kind: TokenizerKind, fraction: Double = 0.1) -> (train: String, valid: String) {
  switch kind {
  case .char, .bpe:
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
