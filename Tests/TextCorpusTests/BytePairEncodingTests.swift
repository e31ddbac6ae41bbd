import Foundation
import Testing
import TestSupport

import Formats
import TextCorpus

// Byte-level BPE: the pre-tokenization rule, merges worked out by hand (ties by the smallest
// pair), a naive trainer and encoder as references, and round trips of arbitrary bytes.

private func pieces(_ text: [UInt8]) -> [[UInt8]] { BytePairEncoding.pieces(text).map { Array(text[$0]) } }

@Test func piecesAreRunsOfOneClassWithGPT2sLeadingSpace() {
  let text = Array("Hello,  world 42!?\n\tx".utf8) + [0xFF] + Array(" café\n\n".utf8)
  let expected: [[UInt8]] = [
    Array("Hello".utf8), Array(",".utf8), Array(" ".utf8), Array(" world".utf8), Array(" 42".utf8),
    Array("!?".utf8), [0x0A], Array("\t".utf8), Array("x".utf8), [0xFF], Array(" café".utf8), [0x0A], [0x0A],
  ]
  #expect(pieces(text) == expected)
  // Pieces cover the input exactly, in order.
  #expect(pieces(text).flatMap { $0 } == text)
  // A space before a line feed stays whitespace; a lone space at the end stays.
  #expect(pieces(Array("a \nb ".utf8)) == [Array("a".utf8), Array(" ".utf8), [0x0A], Array("b".utf8), Array(" ".utf8)])
}

@Test func mergesOfAHandWorkedExample() throws {
  // "abab abc ab" has the pieces "abab", " abc", " ab". Pair counts: (a,b) 4, (space,a) 2,
  // (b,a) 1, (b,c) 1, so merge 0 is a+b = 256. Then (space,256) 2 -> 257. Then (256,256) and
  // (257,c) both occur once: the smaller pair, (256,256), is 258; then (257,c) is 259. No pair
  // is left, so the vocabulary stops at 260 though 300 were asked for.
  let bpe = BytePairEncoding.train(on: Array("abab abc ab".utf8), vocabularySize: 300)
  let (a, b, c, space) = (97, 98, 99, 32)
  #expect(bpe.merges == [.init(a, b), .init(space, 256), .init(256, 256), .init(257, c)])
  #expect(bpe.count == 260)
  #expect(bpe.tokenBytes[259] == Array(" abc".utf8))
  #expect(bpe.encode(Array("abab abc ab".utf8)) == [258, 259, 257])
  #expect(bpe.encode(Array("ab ab ba".utf8)) == [256, 257, space, b, a])
  // Ties at the very first merge: (b,a), (space,a), (a,b) once each; (space,a) is smallest.
  #expect(BytePairEncoding.train(on: Array("ba ab".utf8), vocabularySize: 257).merges == [.init(space, a)])
  // The asked size is a bound: 258 tokens means two merges.
  #expect(BytePairEncoding.train(on: Array("abab abc ab".utf8), vocabularySize: 258).merges.count == 2)
}

/// The textbook trainer: recount every pair of every piece after each merge.
private func naiveMerges(_ text: [UInt8], size: Int) -> [BytePairEncoding.Merge] {
  var words = pieces(text).map { $0.map(Int.init) }
  var merges: [BytePairEncoding.Merge] = []
  while 256 + merges.count < size {
    var counts: [[Int]: Int] = [:]
    for w in words where w.count > 1 { for j in 0..<(w.count - 1) { counts[[w[j], w[j + 1]], default: 0] += 1 } }
    guard let best = counts.max(by: { $0.value != $1.value ? $0.value < $1.value : $0.key.lexicographicallyPrecedes($1.key) == false })
    else { break }
    let new = 256 + merges.count
    merges.append(.init(best.key[0], best.key[1]))
    words = words.map { w in
      var out: [Int] = []
      var j = 0
      while j < w.count {
        if j + 1 < w.count && w[j] == best.key[0] && w[j + 1] == best.key[1] {
          out.append(new)
          j += 2
        } else {
          out.append(w[j])
          j += 1
        }
      }
      return out
    }
  }
  return merges
}

/// The segmentation of training: every merge applied in order to each piece.
private func naiveEncode(_ text: [UInt8], _ bpe: BytePairEncoding) -> [Int] {
  pieces(text).flatMap { piece -> [Int] in
    var w = piece.map(Int.init)
    for (k, m) in bpe.merges.enumerated() {
      var out: [Int] = []
      var j = 0
      while j < w.count {
        if j + 1 < w.count && w[j] == m.left && w[j + 1] == m.right {
          out.append(256 + k)
          j += 2
        } else {
          out.append(w[j])
          j += 1
        }
      }
      w = out
    }
    return w
  }
}

@Test func trainerAndEncoderAgreeWithTheTextbookOnes() throws {
  let corpus = try String(contentsOfFile: bundledCorpus(), encoding: .utf8)
  let text = Array(corpus.utf8.prefix(12_000))
  let bpe = BytePairEncoding.train(on: text, vocabularySize: 420)
  #expect(bpe.merges == naiveMerges(text, size: 420))
  #expect(bpe.count == 420)
  #expect(bpe.encode(text) == naiveEncode(text, bpe))
  // Text it was not trained on, too.
  let other = Array(corpus.utf8.dropFirst(50_000).prefix(3_000))
  #expect(bpe.encode(other) == naiveEncode(other, bpe))
  #expect(bpe.decode(bpe.encode(other)) == other)
}

@Test func anyBytesRoundTrip() throws {
  var rng = SystemRandomNumberGenerator()
  let corpus = try String(contentsOfFile: bundledCorpus(), encoding: .utf8)
  let bpe = BytePairEncoding.train(on: Array(corpus.utf8.prefix(40_000)) + [0xC3, 0xA9, 0xFF, 0x00, 0xE2, 0x82], vocabularySize: 600)
  for length in [0, 1, 2, 3, 7, 64, 1000] {
    for _ in 0..<20 {
      let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
      let ids = bpe.encode(bytes)
      #expect(ids.allSatisfy { $0 >= 0 && $0 < bpe.count })
      #expect(bpe.decode(ids) == bytes)
    }
  }
  // Through a vocabulary: text read as bytes (invalid UTF-8, NUL) comes back byte for byte.
  let vocabulary = Vocabulary(bytePairs: bpe, encoding: .bytes)
  let raw: [UInt8] = [0x00, 0xFF, 0x41, 0xC3, 0xA9, 0x0A, 0xE2, 0x82]
  let ids = try vocabulary.encode(latin1String(raw))
  #expect(ids.flatMap { vocabulary.bytes(of: $0) ?? [] } == raw)
  #expect(vocabulary.decode(ids) == "\u{0}\\xFFAé\n\\xE2\\x82")
}

@Test func mergesFromFilesAreChecked() {
  #expect(throws: BytePairEncoding.InvalidMerges.self) { try BytePairEncoding(merges: [.init(97, 256)]) }
  #expect(throws: BytePairEncoding.InvalidMerges.self) { try BytePairEncoding(merges: [.init(97, 98), .init(97, 98)]) }
  #expect(throws: BytePairEncoding.InvalidMerges.self) { try BytePairEncoding(merges: [.init(-1, 98)]) }
  // Names read back to one byte string: '<' itself is escaped.
  let bpe = try! BytePairEncoding(merges: [.init(0x3C, 0x30), .init(0x20, 0x0A)])
  #expect(bpe.tokenNames[256] == "<0x3C>0" && bpe.tokenNames[257] == "<0x20><0x0A>" && bpe.tokenNames[0x41] == "A")
  #expect(Set(bpe.tokenNames).count == bpe.count)
}

@Test func checkpointsHoldTheMergesAndRefuseNamesThatDisagree() throws {
  struct Config: Encodable {
    var tokenizer = "bpe"
    var encoding = "latin1"
  }
  let bpe = BytePairEncoding.train(on: Array("abab abc ab".utf8), vocabularySize: 300)
  let vocabulary = Vocabulary(bytePairs: bpe, encoding: .latin1)
  let folder = temporaryFolder("bpe-files")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  func write(_ metadata: [String: String], _ name: String) throws -> String {
    let path = folder + "/" + name
    try CheckpointEnvelope.write(
      CheckpointEnvelope.file(kind: .hiddenMarkovModel, config: Config(), metadata: metadata, tensors: []), to: path)
    return path
  }
  let good = try write(vocabulary.metadata(), "good.safetensors")
  #expect(try Vocabulary.read(fromCheckpoint: good) == vocabulary)
  // Merges that make other tokens than the names say, and merges that are not merges.
  var swapped = try vocabulary.metadata()
  swapped[Vocabulary.mergesKey] = "[[97,98],[32,256],[257,99],[256,256]]"
  let bad = try write(swapped, "swapped.safetensors")
  #expect(throws: CheckpointError.inFile(path: bad, .badMetadata(key: Vocabulary.tokensKey, reason: "the token names do not match the merges"))) {
    try Vocabulary.read(fromCheckpoint: bad)
  }
  var broken = try vocabulary.metadata()
  broken[Vocabulary.mergesKey] = "[[97,98,99]]"
  let worse = try write(broken, "broken.safetensors")
  #expect(throws: CheckpointError.self) { try Vocabulary.read(fromCheckpoint: worse) }
}
