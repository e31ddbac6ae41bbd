import ArgumentParser
import Formats
import Foundation
import TextCorpus

/// `recurrent bench-bpe`: times learning BPE merges from a file and encoding it, for
/// Benchmarks/bpe_scale.sh.
struct BenchBPE: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-bpe",
    abstract: "Time byte-level BPE on a file: learning the merges (as --tokenizer bpe does) and encoding the file.")

  @Option(help: "The file (read as bytes).") var text: String
  @Option(help: "Tokens in all, the 256 byte tokens included.") var vocabSize: Int = TextDataOptions.defaultVocabularySize
  @Flag(help: "Print one JSON object.") var json = false

  func validate() throws {
    guard vocabSize >= 256 && vocabSize <= 1 << 20 else { throw ValidationError("--vocab-size must be in 256...1048576") }
  }

  func run() throws {
    let started = Date()
    let bytes = TextEncoding.bytes.bytes(of: try readText(path: text, encoding: .bytes))
    let read = Date()
    let bpe = BytePairEncoding.train(on: bytes, vocabularySize: vocabSize)
    let trained = Date()
    let ids = bpe.encode(bytes)
    let encoded = Date()
    guard bpe.decode(ids) == bytes else { throw CommandError("BPE did not decode \(text) back to its bytes") }
    let fields: [String: JSONValue] = [
      "bytes": .int(bytes.count), "vocab_size": .int(bpe.count), "tokens": .int(ids.count),
      "bytes_per_token": .number(Double(bytes.count) / Double(max(1, ids.count))),
      "read_seconds": .number(read.timeIntervalSince(started)), "train_seconds": .number(trained.timeIntervalSince(read)),
      "encode_seconds": .number(encoded.timeIntervalSince(trained)),
    ]
    if json {
      emit(jsonLine(fields))
    } else {
      emit(
        String(
          format: "%d bytes -> %d tokens (%.2f bytes/token), vocabulary %d: learned in %.1f s, encoded in %.1f s\n",
          bytes.count, ids.count, Double(bytes.count) / Double(max(1, ids.count)), bpe.count,
          trained.timeIntervalSince(read), encoded.timeIntervalSince(trained)))
    }
  }
}
