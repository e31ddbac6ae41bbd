/// Byte-level byte-pair encoding (BPE), as GPT-2 tokenizes: ids 0...255 are the bytes, id
/// `256 + k` is merge `k`, the concatenation of its two parts' bytes.
///
/// **Pre-tokenization** (merges never cross a piece boundary). The bytes are read as UTF-8
/// where they are valid, each character classed as a letter (`Unicode.Scalar.Properties.isAlphabetic`),
/// a digit (decimal numeric type), whitespace (`isWhitespace`) or other; a byte that is not part
/// of a valid UTF-8 sequence is other. Then:
/// 1. a line feed (0x0A) is always a piece of its own, so every line is a whole number of tokens;
/// 2. otherwise a piece is a maximal run of characters of one class;
/// 3. one space (0x20) at the end of a whitespace run that a letter, digit or other run follows
///    moves to the start of that run (GPT-2's `" word"`), so `"a  b"` is `a`, ` `, ` b`.
///
/// **Training** counts the pieces of the text, then repeatedly merges the adjacent pair of ids
/// with the highest count over all pieces (each piece weighted by how often it occurs), ties
/// broken by the smallest pair `(left, right)`, replacing its occurrences left to right, until
/// the vocabulary has the asked size or no pair is left.
///
/// **Encoding** applies, within each piece, the merge of lowest index among its adjacent pairs,
/// over and over: the segmentation training produced. Any bytes encode (invalid UTF-8 included)
/// and decode back to themselves.
public struct BytePairEncoding: Equatable, Sendable {
  /// The merges in order: merge `k` joins ids `left` and `right` into id `256 + k`.
  public let merges: [Merge]
  /// The bytes of every token, by id.
  public let tokenBytes: [[UInt8]]
  let ranks: [UInt64: Int32]

  /// One learned merge: two token ids whose concatenation is a new token.
  public struct Merge: Equatable, Sendable, Codable {
    /// The id on the left.
    public let left: Int
    /// The id on the right.
    public let right: Int
    /// The merge of `left` then `right`.
    public init(_ left: Int, _ right: Int) {
      self.left = left
      self.right = right
    }
    /// Reads `[left, right]`.
    public init(from decoder: any Decoder) throws {
      var c = try decoder.unkeyedContainer()
      (left, right) = (try c.decode(Int.self), try c.decode(Int.self))
      guard c.isAtEnd else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "a merge is two ids") }
    }
    /// Writes `[left, right]`.
    public func encode(to encoder: any Encoder) throws {
      var c = encoder.unkeyedContainer()
      try c.encode(left)
      try c.encode(right)
    }
    var key: UInt64 { UInt64(left) << 32 | UInt64(right) }
  }

  /// Bad merges (from a file): each names the first merge that is wrong.
  public struct InvalidMerges: Error, CustomStringConvertible {
    /// What is wrong, naming the merge.
    public let description: String
  }

  /// The encoding with these merges; each merge may only join ids that exist before it, and no
  /// pair may be merged twice.
  public init(merges: [Merge]) throws(InvalidMerges) {
    var bytes = (0..<256).map { [UInt8($0)] }
    var ranks: [UInt64: Int32] = [:]
    ranks.reserveCapacity(merges.count)
    for (k, m) in merges.enumerated() {
      guard m.left >= 0, m.right >= 0, m.left < 256 + k, m.right < 256 + k else {
        throw InvalidMerges(description: "merge \(k) joins ids \(m.left) and \(m.right), but only ids below \(256 + k) exist then")
      }
      guard ranks[m.key] == nil else { throw InvalidMerges(description: "merge \(k) repeats the pair \(m.left), \(m.right)") }
      ranks[m.key] = Int32(k)
      bytes.append(bytes[m.left] + bytes[m.right])
    }
    self.merges = merges
    self.tokenBytes = bytes
    self.ranks = ranks
  }

  /// Number of tokens: 256 bytes plus one per merge.
  public var count: Int { tokenBytes.count }

  /// Token names for a vocabulary: a printable ASCII byte other than `<` is itself, any other
  /// byte is `<0xHH>`, so a name reads back to exactly one byte string.
  public var tokenNames: [String] { tokenBytes.map(Self.name) }

  static func name(_ bytes: [UInt8]) -> String {
    var s = ""
    for b in bytes {
      if b >= 0x21 && b <= 0x7E && b != 0x3C { s.unicodeScalars.append(Unicode.Scalar(b)) } else { s += "<0x" + hex(b) + ">" }
    }
    return s
  }

  static func hex(_ b: UInt8) -> String { String(b, radix: 16, uppercase: true).leftPadded(to: 2) }

  // MARK: Pre-tokenization

  enum CharacterClass { case letter, digit, space, other, lineFeed }

  /// The pieces of `bytes` (see the type's documentation), as ranges.
  public static func pieces(_ bytes: [UInt8]) -> [Range<Int>] {
    // Characters with their class, as (start, length, class).
    var chars: [(Int, Int, CharacterClass)] = []
    chars.reserveCapacity(bytes.count)
    var i = 0
    while i < bytes.count {
      let (length, scalar) = decodeScalar(bytes, at: i)
      let cls: CharacterClass
      if let scalar {
        if scalar == "\n" {
          cls = .lineFeed
        } else if scalar.properties.isAlphabetic {
          cls = .letter
        } else if scalar.properties.numericType == .decimal {
          cls = .digit
        } else if scalar.properties.isWhitespace {
          cls = .space
        } else {
          cls = .other
        }
      } else {
        cls = .other
      }
      chars.append((i, length, cls))
      i += length
    }
    var pieces: [Range<Int>] = []
    var c = 0
    var carriedSpace: Int? = nil  // start of a space moved onto the next run
    while c < chars.count {
      let cls = chars[c].2
      var end = c + 1
      if cls != .lineFeed {
        while end < chars.count && chars[end].2 == cls { end += 1 }
      }
      var start = chars[c].0
      if let s = carriedSpace {
        start = s
        carriedSpace = nil
      }
      let stop = end < chars.count ? chars[end].0 : bytes.count
      if cls == .space, end < chars.count, chars[end].2 != .lineFeed, chars[end - 1].2 == .space,
        bytes[chars[end - 1].0] == 0x20
      {
        // The run's last character is a space that the next run takes.
        let last = chars[end - 1].0
        if last > start { pieces.append(start..<last) }
        carriedSpace = last
      } else {
        pieces.append(start..<stop)
      }
      c = end
    }
    return pieces
  }

  /// The scalar of the valid UTF-8 sequence at `i` and its length, or (1, nil) for a byte that
  /// does not start one.
  static func decodeScalar(_ bytes: [UInt8], at i: Int) -> (Int, Unicode.Scalar?) {
    let b = bytes[i]
    if b < 0x80 { return (1, Unicode.Scalar(b)) }
    let length = UTF8Assembler.sequenceLength(b)
    guard length > 1, i + length <= bytes.count else { return (1, nil) }
    var value = UInt32(b) & (0xFF >> (length + 1))
    for k in 1..<length {
      let c = bytes[i + k]
      guard c & 0xC0 == 0x80 else { return (1, nil) }
      value = value << 6 | UInt32(c & 0x3F)
    }
    let minimum: UInt32 = length == 2 ? 0x80 : (length == 3 ? 0x800 : 0x10000)
    guard value >= minimum, let scalar = Unicode.Scalar(value) else { return (1, nil) }
    return (length, scalar)
  }

  // MARK: Encoding

  /// Token ids of `bytes`.
  public func encode(_ bytes: [UInt8]) -> [Int] {
    var ids: [Int] = []
    ids.reserveCapacity(bytes.count / 2)
    var cache: [ArraySlice<UInt8>: [Int]] = [:]
    for piece in Self.pieces(bytes) {
      let slice = bytes[piece]
      if let known = cache[slice] {
        ids += known
        continue
      }
      let encoded = encodePiece(slice)
      if cache.count < 1 << 18 { cache[slice] = encoded }
      ids += encoded
    }
    return ids
  }

  /// One piece: merge the lowest-ranked adjacent pair until none has a rank.
  func encodePiece(_ piece: ArraySlice<UInt8>) -> [Int] {
    var symbols = piece.map { Int($0) }
    while symbols.count > 1 {
      var best = Int32.max
      var bestAt = -1
      for j in 0..<(symbols.count - 1) {
        if let r = ranks[UInt64(symbols[j]) << 32 | UInt64(symbols[j + 1])], r < best {
          best = r
          bestAt = j
        }
      }
      if bestAt < 0 { break }
      let m = merges[Int(best)]
      var merged: [Int] = []
      merged.reserveCapacity(symbols.count)
      var j = 0
      while j < symbols.count {
        if j + 1 < symbols.count && symbols[j] == m.left && symbols[j + 1] == m.right {
          merged.append(256 + Int(best))
          j += 2
        } else {
          merged.append(symbols[j])
          j += 1
        }
      }
      symbols = merged
    }
    return symbols
  }

  /// The bytes of `ids` (ids outside the vocabulary are skipped).
  public func decode(_ ids: [Int]) -> [UInt8] {
    var out: [UInt8] = []
    for id in ids where id >= 0 && id < tokenBytes.count { out += tokenBytes[id] }
    return out
  }

  // MARK: Training

  /// Learns merges from `bytes` until there are `vocabularySize` tokens (at least 256) or no
  /// adjacent pair is left.
  public static func train(on bytes: [UInt8], vocabularySize: Int) -> BytePairEncoding {
    var pieceCounts: [ArraySlice<UInt8>: Int] = [:]
    for piece in pieces(bytes) { pieceCounts[bytes[piece], default: 0] += 1 }
    // Distinct pieces in a fixed order (by bytes) so training does not depend on hashing.
    let distinct = pieceCounts.sorted { $0.key.lexicographicallyPrecedes($1.key) }
    var words: [[Int32]] = distinct.map { $0.key.map { Int32($0) } }
    let weights: [Int] = distinct.map(\.value)
    var pairCounts: [UInt64: Int] = [:]
    var pairWords: [UInt64: [Int32]] = [:]
    for (w, word) in words.enumerated() where word.count > 1 {
      for j in 0..<(word.count - 1) {
        let key = UInt64(word[j]) << 32 | UInt64(word[j + 1])
        pairCounts[key, default: 0] += weights[w]
        pairWords[key, default: []].append(Int32(w))
      }
    }
    var heap = PairHeap()
    for (key, count) in pairCounts { heap.push(count: count, key: key) }
    var merges: [Merge] = []
    let wanted = max(0, vocabularySize - 256)
    while merges.count < wanted, let (count, key) = heap.pop() {
      guard pairCounts[key] == count else { continue }  // a stale entry
      let left = Int32(key >> 32)
      let right = Int32(key & 0xFFFF_FFFF)
      let new = Int32(256 + merges.count)
      merges.append(Merge(Int(left), Int(right)))
      var changed: [UInt64: Int] = [:]
      var lastWord: Int32 = -1
      for w in (pairWords.removeValue(forKey: key) ?? []).sorted() where w != lastWord {
        lastWord = w
        let word = words[Int(w)]
        guard word.count > 1 else { continue }
        var merged: [Int32] = []
        merged.reserveCapacity(word.count)
        var j = 0
        var any = false
        while j < word.count {
          if j + 1 < word.count && word[j] == left && word[j + 1] == right {
            merged.append(new)
            j += 2
            any = true
          } else {
            merged.append(word[j])
            j += 1
          }
        }
        guard any else { continue }
        let weight = weights[Int(w)]
        for j in 0..<(word.count - 1) { changed[UInt64(word[j]) << 32 | UInt64(word[j + 1]), default: 0] -= weight }
        if merged.count > 1 {
          for j in 0..<(merged.count - 1) {
            let k = UInt64(merged[j]) << 32 | UInt64(merged[j + 1])
            changed[k, default: 0] += weight
            if merged[j] == new || merged[j + 1] == new { pairWords[k, default: []].append(w) }
          }
        }
        words[Int(w)] = merged
      }
      for (k, delta) in changed where delta != 0 {
        let now = pairCounts[k, default: 0] + delta
        if now > 0 {
          pairCounts[k] = now
          heap.push(count: now, key: k)
        } else {
          pairCounts[k] = nil
        }
      }
      pairCounts[key] = nil
    }
    // The merges are valid by construction.
    return try! BytePairEncoding(merges: merges)
  }
}

/// A max-heap of (count, pair) ordered by count, then by the smaller pair.
struct PairHeap {
  var items: [(count: Int, key: UInt64)] = []

  static func above(_ a: (count: Int, key: UInt64), _ b: (count: Int, key: UInt64)) -> Bool {
    a.count != b.count ? a.count > b.count : a.key < b.key
  }

  mutating func push(count: Int, key: UInt64) {
    items.append((count, key))
    var i = items.count - 1
    while i > 0 {
      let parent = (i - 1) / 2
      guard Self.above(items[i], items[parent]) else { break }
      items.swapAt(i, parent)
      i = parent
    }
  }

  mutating func pop() -> (Int, UInt64)? {
    guard let top = items.first else { return nil }
    let last = items.removeLast()
    if !items.isEmpty {
      items[0] = last
      var i = 0
      while true {
        let l = 2 * i + 1
        let r = l + 1
        var best = i
        if l < items.count && Self.above(items[l], items[best]) { best = l }
        if r < items.count && Self.above(items[r], items[best]) { best = r }
        if best == i { break }
        items.swapAt(i, best)
        i = best
      }
    }
    return (top.count, top.key)
  }
}
