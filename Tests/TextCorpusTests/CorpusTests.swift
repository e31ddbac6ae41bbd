import Foundation
import Testing
import TestSupport

import TextCorpus

private func temporaryFile(_ bytes: [UInt8], name: String = UUID().uuidString) -> String {
  let path = NSTemporaryDirectory() + "recurrent-test-" + name
  _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
  return path
}

@Test func characterVocabularyIsSortedDistinctScalars() throws {
  let v = Vocabulary.characters(of: ["hello", "world\n", "é"])
  #expect(v.tokens == ["\n", "d", "e", "h", "l", "o", "r", "w", "é"])
  let ids = try v.encode("hello\nwé")
  #expect(ids == [3, 2, 4, 4, 5, 0, 7, 8])
  #expect(v.decode(ids) == "hello\nwé")
}

@Test func unknownCharacterNamesCharacterAndLine() {
  let v = Vocabulary.characters(of: ["ab\n"])
  #expect(throws: CorpusError.unknownSymbol("z", line: 2)) { try v.encode("ab\naz") }
  #expect(CorpusError.unknownSymbol("\t", line: 3).description.contains("'\\t' on line 3"))
}

@Test func wordTokenizerIsPTBStyle() throws {
  let text = "the cat sat\nthe dog sat\n\nthe end\n"
  let v = Vocabulary.words(of: text)
  #expect(v.tokens.prefix(2) == ["<unk>", "<eos>"])
  #expect(v.tokens[2] == "the" && v.tokens[3] == "sat")  // by count, then spelling
  let ids = try v.encode("the cat flew\n")
  #expect(ids == [v.id(of: "the")!, v.id(of: "cat")!, 0, 1])
  // One <eos> per line, including the empty one.
  #expect(try v.encode(text).filter { $0 == 1 }.count == 4)
  #expect(v.decode(try v.encode("the cat\nsat\n")) == "the cat\nsat\n")
  let small = Vocabulary.words(of: text, minimumCount: 2)
  #expect(small.tokens == ["<unk>", "<eos>", "the", "sat"])
  let capped = Vocabulary.words(of: text, maximumSize: 3)
  #expect(capped.tokens == ["<unk>", "<eos>", "the"])
}

@Test func readTextRejectsBadFiles() throws {
  #expect(throws: CorpusError.unreadable(path: "/no/such/file", reason: "no such file")) {
    try readText(path: "/no/such/file")
  }
  #expect(throws: CorpusError.unreadable(path: NSTemporaryDirectory(), reason: "is a directory")) {
    try readText(path: NSTemporaryDirectory())
  }
  let empty = temporaryFile([])
  #expect(throws: CorpusError.empty(path: empty)) { try readText(path: empty) }
  let binary = temporaryFile([0x61, 0x62, 0x00, 0x63])
  #expect(throws: CorpusError.binary(path: binary, byteOffset: 2)) { try readText(path: binary) }
  let invalid = temporaryFile([0x61, 0x62, 0x63, 0xC3, 0x28, 0x61])
  #expect(throws: CorpusError.invalidUTF8(path: invalid, byteOffset: 3)) { try readText(path: invalid) }
  let good = temporaryFile(Array("héllo\n".utf8))
  #expect(try readText(path: good) == "héllo\n")
}

@Test func validationSplitMatchesNanoGPTOnTinyShakespeare() throws {
  let text = try readText(path: bundledCorpus())
  #expect(text.unicodeScalars.count == 1_115_394)
  let (train, valid) = splitForValidation(text, kind: .char)
  #expect(train.unicodeScalars.count == 1_003_854)
  #expect(valid.unicodeScalars.count == 111_540)
  #expect(train + valid == text)
  #expect(Vocabulary.characters(of: [text]).count == 65)
}

@Test func batchLayoutCutsContiguousRowsAndShiftsTargets() throws {
  let tokens = Array(0..<23)
  let layout = try BatchLayout(tokens: tokens, batchSize: 2, sequenceLength: 4)
  #expect(layout.rowLength == 11)  // the 23rd token is dropped
  #expect(layout.windowCount == 3)  // 10 predictions per row: 4 + 4 + 2
  let (x0, y0, t0) = layout.window(0)
  #expect(t0 == 4)
  // time-major: [t * B + b]; row 0 starts at 0, row 1 at 11
  #expect(x0 == [0, 11, 1, 12, 2, 13, 3, 14])
  #expect(y0 == [1, 12, 2, 13, 3, 14, 4, 15])
  let (x1, _, _) = layout.window(1)
  #expect(x1 == [4, 15, 5, 16, 6, 17, 7, 18])  // continues each row
  let (x2, y2, t2) = layout.window(2)
  #expect(t2 == 2)
  #expect(x2 == [8, 19, 9, 20])
  #expect(y2 == [9, 20, 10, 21])
  #expect(layout.targetsPerEpoch == 20)
  #expect(throws: CorpusError.tooShort(tokens: 3, needed: 4)) { try BatchLayout(tokens: [1, 2, 3], batchSize: 2, sequenceLength: 4) }
}

// A shifted epoch moves every boundary `shift` positions earlier and still predicts each
// position of each row exactly once, in order.
@Test func shiftedWindowsMoveTheBoundariesAndCoverEachRowOnce() throws {
  let layout = try BatchLayout(tokens: Array(0..<23), batchSize: 2, sequenceLength: 4)
  let (x0, y0, t0) = layout.window(0, shift: 3)
  #expect(t0 == 1)
  #expect(x0 == [0, 11] && y0 == [1, 12])
  let (x1, _, t1) = layout.window(1, shift: 3)
  #expect(t1 == 4)
  #expect(x1 == [1, 12, 2, 13, 3, 14, 4, 15])
  #expect(layout.windowCount(shift: 3) == 4)  // 1 + 4 + 4 + 1
  for shift in 0..<4 {
    var rows: [[Int]] = [[], []]
    var lengths: [Int] = []
    for k in 0..<layout.windowCount(shift: shift) {
      let (_, targets, length) = layout.window(k, shift: shift)
      lengths.append(length)
      for t in 0..<length { for b in 0..<2 { rows[b].append(targets[t * 2 + b]) } }
    }
    #expect(rows == [Array(1...10), Array(12...21)], "shift \(shift)")
    #expect(lengths.dropFirst().dropLast().allSatisfy { $0 == 4 }, "shift \(shift): \(lengths)")
    #expect(lengths.first == 4 - shift || shift == 0 && lengths.first == 4)
  }
}
