import Foundation
import Testing
import TestSupport

import TextCorpus

// Token files (recurrent prepare): the documented layout round-trips, ids are read in place,
// the width follows the vocabulary, and damaged files are refused in one line.

private func written(_ ids: [Int], vocabulary: Vocabulary, in folder: String, name: String = "t.tokens") throws -> String {
  let path = folder + "/" + name
  _ = try TokenFile.write(to: path, vocabulary: vocabulary, source: "corpus.txt") { append in
    try append(Array(ids.prefix(ids.count / 2)))
    try append(Array(ids.dropFirst(ids.count / 2)))
    return 1234
  }
  return path
}

@Test func tokenFilesRoundTripWithTheirTokenizer() throws {
  let folder = temporaryFolder("tokens")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let vocabulary = Vocabulary.characters(of: ["hello world\n"])
  let ids = try vocabulary.encode(String(repeating: "hello world\n", count: 50))
  let path = try written(ids, vocabulary: vocabulary, in: folder)
  let (header, read, mapped) = try TokenFile.open(path)
  #expect(Array(mapped) == ids)
  #expect(read.tokens == vocabulary.tokens && read.kind == .char)
  #expect(header.source == "corpus.txt" && header.source_bytes == 1234)
  // The fixed fields as documented: magic, version 1, width 2, then the ids 64-byte aligned.
  let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
  #expect(Array(bytes[0..<8]) == Array("RCTOKENS".utf8))
  #expect(bytes[8] == 1 && bytes[12] == 2)
  let headerLength = Int(bytes[16]) | Int(bytes[17]) << 8 | Int(bytes[18]) << 16
  let start = (32 + headerLength + 63) / 64 * 64
  #expect(bytes.count == start + 2 * ids.count)
  #expect(Int(bytes[start]) | Int(bytes[start + 1]) << 8 == ids[0])
  // Slices read in place.
  #expect(Array(mapped.ids(10..<20)) == Array(ids[10..<20]))
  #expect(mapped.ids(10..<20) == TokenIDs(Array(ids[10..<20])))
  // No temporary file is left beside it.
  #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["t.tokens"])
}

@Test func largeVocabulariesUseFourByteIds() throws {
  let folder = temporaryFolder("tokens")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let vocabulary = Vocabulary(kind: .word, tokens: ["<unk>", "<eos>"] + (0..<70_000).map { "w\($0)" })
  let ids = [0, 1, 65_535, 65_536, 70_001, 3]
  let path = try written(ids, vocabulary: vocabulary, in: folder)
  let (_, read, mapped) = try TokenFile.open(path)
  #expect(Array(mapped) == ids)
  #expect(read.count == 70_002)
  let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
  #expect(bytes[12] == 4)
}

@Test func damagedTokenFilesAreRefusedInOneLine() throws {
  let folder = temporaryFolder("tokens")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let vocabulary = Vocabulary.characters(of: ["abc"])
  let path = try written([0, 1, 2, 1, 0, 2], vocabulary: vocabulary, in: folder)
  let good = try Data(contentsOf: URL(fileURLWithPath: path))
  func refusal(_ data: Data) -> String {
    let damaged = folder + "/damaged.tokens"
    try? data.write(to: URL(fileURLWithPath: damaged))
    do {
      _ = try TokenFile.open(damaged)
      return "accepted"
    } catch {
      return "\(error)"
    }
  }
  #expect(refusal(good.dropLast(1)).contains("do not fill the file"))
  #expect(refusal(Data("not a token file at all, just text that is long enough".utf8)).contains("does not start with RCTOKENS"))
  var version = good
  version[8] = 9
  #expect(refusal(version).contains("version 9"))
  var outOfRange = good
  outOfRange[outOfRange.count - 2] = 7  // the last id becomes 7, past the 3 tokens
  #expect(refusal(outOfRange).contains("id 7 is outside its vocabulary of 3"))
  #expect(refusal(Data()).contains("empty"))
  #expect(refusal(good) == "accepted")
  for message in [refusal(good.dropLast(1)), refusal(version)] { #expect(!message.contains("\n")) }
}
