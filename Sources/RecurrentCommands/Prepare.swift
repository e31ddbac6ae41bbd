import ArgumentParser
import Formats
import Foundation
import TextCorpus

/// `recurrent prepare`: tokenize a text once into a token file that `train --tokens` maps.
struct Prepare: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Tokenize a text file once into a token file (ids and tokenizer) for train --tokens.",
    discussion: """
      Reads the text in 16 MiB parts cut at line ends, so memory stays bounded whatever its size. \
      The vocabulary: the text's characters, its words by count, or BPE merges learned from its first \
      64 MiB; with --tokenizer-from, a checkpoint's or another token file's (prepare a validation \
      file with --tokenizer-from train.tokens). Format: see TokenFile in the README.
      """)

  @OptionGroup var data: TextDataOptions
  @Option(help: "The token file to write.") var out: String
  @Flag(help: "One JSON object on standard output.") var json = false
  @Option(help: .hidden) var partBytes = Prepare.defaultPartBytes  // tests cut small parts

  static let defaultPartBytes = 16 << 20
  static let bpeSampleBytes = 64 << 20

  func validate() throws {
    if data.validText != nil {
      throw ValidationError("prepare takes one text; prepare a validation file on its own with --tokenizer-from TRAIN.tokens")
    }
    if out.isEmpty { throw ValidationError("--out must not be empty") }
    if partBytes < 1 { throw ValidationError("--part-bytes must be positive") }
  }

  func run() throws {
    let path = data.textPath
    try ensureWritable(out, option: "--out")
    let started = Date()
    let source = try data.sourceVocabulary()
    let encoding = source?.encoding ?? data.textEncoding
    let vocabulary: Vocabulary
    if let source {
      vocabulary = source
    } else {
      switch data.tokenizerKind {
      case .char:
        var seen = Set<Unicode.Scalar>()
        _ = try Self.forEachPart(of: path, encoding: encoding, partBytes: partBytes) { text, _ in
          for s in text.unicodeScalars { seen.insert(s) }
        }
        vocabulary =
          encoding == .bytes
          ? Vocabulary.characters(of: [], encoding: .bytes)
          : Vocabulary(kind: .char, tokens: seen.sorted { $0.value < $1.value }.map { String($0) }, encoding: encoding)
      case .word:
        var counts: [String: Int] = [:]
        _ = try Self.forEachPart(of: path, encoding: encoding, partBytes: partBytes) { text, _ in Vocabulary.countWords(in: text, into: &counts) }
        vocabulary = Vocabulary.words(
          counts: counts, minimumCount: data.minCount ?? 1, maximumSize: data.maxVocab, encoding: encoding)
      case .bpe:
        var sample: [UInt8] = []
        _ = try Self.forEachPart(of: path, encoding: encoding, partBytes: partBytes, limit: Self.bpeSampleBytes) { text, _ in
          sample += encoding.bytes(of: text)
        }
        vocabulary = Vocabulary(
          bytePairs: .train(on: sample, vocabularySize: data.vocabSize ?? TextDataOptions.defaultVocabularySize),
          encoding: encoding)
      }
    }
    let (count, width) = try TokenFile.write(to: out, vocabulary: vocabulary, source: path) { append in
      try Self.forEachPart(of: path, encoding: encoding, partBytes: partBytes) { text, line in
        do {
          try append(vocabulary.encode(text))
        } catch CorpusError.unknownSymbol(let symbol, let at) {
          throw CommandError("\(path): \(CorpusError.unknownSymbol(symbol, line: at + line))")
        }
      }
    }
    let seconds = Date().timeIntervalSince(started)
    if json {
      emit(jsonLine([
        "out": .string(out), "tokens": .int(count), "id_bytes": .int(width), "vocabulary": .int(vocabulary.count),
        "seconds": .number(seconds),
      ]))
    } else {
      emit(String(format: "wrote %@: %d tokens of %d bytes each, vocabulary %d (%.1f s)\n", out, count, width, vocabulary.count, seconds))
    }
  }

  /// Calls `body` with consecutive parts of the file as text (cut after a line feed, so no
  /// token spans two parts) and the number of lines before each; returns the bytes read.
  /// Rejects what `readText` rejects (binary, invalid UTF-8, empty), naming the byte offset.
  @discardableResult
  static func forEachPart(
    of path: String, encoding: TextEncoding, partBytes: Int = defaultPartBytes, limit: Int = .max,
    _ body: (String, Int) throws -> Void
  ) throws -> Int {
    guard let handle = FileHandle(forReadingAtPath: path) else {
      throw CorpusError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "permission denied" : "no such file")
    }
    defer { try? handle.close() }
    var carry: [UInt8] = []
    var offset = 0
    var lines = 0
    var total = 0
    func emitPart(_ bytes: ArraySlice<UInt8>) throws {
      if encoding != .bytes, let nul = bytes.firstIndex(of: 0) {
        throw CorpusError.binary(path: path, byteOffset: offset + nul - bytes.startIndex)
      }
      let text: String
      if encoding == .utf8 {
        guard let valid = String(validating: bytes, as: UTF8.self) else {
          throw CorpusError.invalidUTF8(path: path, byteOffset: offset + firstInvalidUTF8Offset(Data(bytes)))
        }
        text = valid
      } else {
        text = latin1String(bytes)
      }
      try body(text, lines)
      lines += bytes.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
      offset += bytes.count
    }
    while total < limit {
      let chunk: Data
      do {
        chunk = try handle.read(upToCount: min(partBytes, limit - total)) ?? Data()
      } catch {
        throw CorpusError.unreadable(path: path, reason: "\(error)")
      }
      if chunk.isEmpty { break }
      total += chunk.count
      carry += chunk
      if let lastLine = carry.lastIndex(of: 10) {
        try emitPart(carry[...lastLine])
        carry.removeSubrange(...lastLine)
      }
    }
    if total == 0 { throw CorpusError.empty(path: path) }
    if !carry.isEmpty { try emitPart(carry[...]) }
    return total
  }
}
