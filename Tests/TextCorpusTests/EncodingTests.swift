import Foundation
import Testing
import TestSupport

import TextCorpus

// Any file trains: --encoding latin1 reads a byte as a character, --encoding bytes as one of
// 256 fixed tokens (NUL included); UTF-8 stays validated, and its error names both ways out.

private func file(_ bytes: [UInt8]) throws -> String {
  let path = temporaryFolder("encoding") + "/t.txt"
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  return path
}

@Test func eachEncodingReadsWhatItPromises() throws {
  let stray = try file(Array("caf".utf8) + [0xE9] + Array(" ok\n".utf8))
  do {
    _ = try readText(path: stray)
    Issue.record("invalid UTF-8 was read")
  } catch let error as CorpusError {
    #expect(error == .invalidUTF8(path: stray, byteOffset: 3))
    #expect(error.description.contains("--encoding latin1") && error.description.contains("--encoding bytes"))
  }
  #expect(try readText(path: stray, encoding: .latin1) == "café ok\n")
  let withNul = try file([0x61, 0x00, 0xFF])
  #expect(throws: CorpusError.binary(path: withNul, byteOffset: 1)) { try readText(path: withNul, encoding: .latin1) }
  let bytes = try readText(path: withNul, encoding: .bytes)
  #expect(bytes.unicodeScalars.map(\.value) == [0x61, 0x00, 0xFF])
  // The byte vocabulary: 256 fixed tokens whatever the text, ids are byte values.
  let vocabulary = Vocabulary.characters(of: [bytes], encoding: .bytes)
  #expect(vocabulary == .bytes && vocabulary.count == 256 && vocabulary.isBytes)
  #expect(vocabulary.tokens[0] == "<0x00>" && vocabulary.tokens[0x41] == "A" && vocabulary.tokens[0x20] == "<0x20>")
  #expect(try vocabulary.encode(bytes) == [0x61, 0x00, 0xFF])
  #expect((0..<256).allSatisfy { vocabulary.byte(of: $0) == UInt8($0) })
  // Latin-1 character vocabularies are data-driven, as UTF-8 ones.
  let latin = Vocabulary.characters(of: [try readText(path: stray, encoding: .latin1)], encoding: .latin1)
  #expect(latin.tokens.contains("é") && !latin.isBytes && latin.encoding == .latin1)
}

@Test func generatedBytesAreWrittenAsWholeCharactersOrEscaped() {
  var assembler = UTF8Assembler()
  let text = "aé日🙂\n"
  var pieces: [String] = []
  for byte in Array(text.utf8) { pieces.append(assembler.push(byte)) }
  #expect(pieces.joined() == text)
  #expect(pieces.filter { !$0.isEmpty }.count == 5, "each character comes out once, when complete: \(pieces)")
  // Bytes that are not UTF-8: a stray continuation byte, an invalid lead, a truncated sequence.
  var bad = UTF8Assembler()
  var out = ""
  for byte: UInt8 in [0x80, 0xFF, 0x41, 0xE6, 0x97, 0x42, 0xE6] { out += bad.push(byte) }
  out += bad.flush()
  #expect(out == "\\x80\\xFFA\\xE6\\x97B\\xE6")
}
