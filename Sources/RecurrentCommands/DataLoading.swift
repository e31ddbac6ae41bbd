import ArgumentParser
import Formats
import Foundation
import Recurrent
import TextCorpus
import Training

extension CellKind: ExpressibleByArgument {}
extension TokenizerKind: ExpressibleByArgument {}
extension TextEncoding: ExpressibleByArgument {}
extension OptimizerKind: ExpressibleByArgument {}
extension NaNPolicy: ExpressibleByArgument {}
extension Precision: ExpressibleByArgument {}
extension Initialization: ExpressibleByArgument {}

/// The bundled corpus: Data/tinyshakespeare.txt in the working directory, else beside the
/// sources this binary was built from.
func bundledCorpusPath() -> String {
  let local = "Data/tinyshakespeare.txt"
  if FileManager.default.fileExists(atPath: local) { return local }
  let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  return root.appendingPathComponent(local).path
}

/// Whether standard output is a terminal (live progress line) or a pipe or file (plain lines).
var standardOutputIsTerminal: Bool { isatty(STDOUT_FILENO) != 0 }

/// Writes to standard output at once (generation streams token by token).
func emit(_ text: String) {
  FileHandle.standardOutput.write(Data(text.utf8))
}

/// Parses `--schedule`: constant | step:EVERY[:GAMMA] | exponential:GAMMA | cosine[:PERIOD[:MIN]] | warmup:STEPS[:START].
func parseSchedule(_ text: String, steps: Int?) throws -> LearningRateSchedule {
  let parts = text.split(separator: ":").map(String.init)
  func number(_ i: Int, _ fallback: Double?) throws -> Double {
    if i < parts.count {
      guard let v = Double(parts[i]), v.isFinite else {
        throw ValidationError("--schedule \(text): '\(parts[i])' is not a number")
      }
      return v
    }
    guard let fallback else { throw ValidationError("--schedule \(text): missing a number after '\(parts[0])'") }
    return fallback
  }
  switch parts.first ?? "" {
  case "constant":
    return .constant
  case "step":
    let every = try number(1, nil)
    guard every >= 1 else { throw ValidationError("--schedule step:EVERY needs EVERY >= 1") }
    return .step(every: Int(every), gamma: Float(try number(2, 0.5)))
  case "exponential":
    return .exponential(gamma: Float(try number(1, nil)))
  case "cosine":
    let period = try number(1, steps.map(Double.init))
    guard period >= 1 else { throw ValidationError("--schedule cosine needs a period >= 1 (or --steps)") }
    return .cosine(period: Int(period), minimum: Float(try number(2, 0)))
  case "warmup":
    let steps = try number(1, nil)
    guard steps >= 1 else { throw ValidationError("--schedule warmup:STEPS needs STEPS >= 1") }
    return .linearWarmup(steps: Int(steps), startFactor: Float(try number(2, 0.01)))
  default:
    throw ValidationError(
      "--schedule must be constant, step:EVERY[:GAMMA], exponential:GAMMA, cosine[:PERIOD[:MIN]] or warmup:STEPS[:START]; got '\(text)'")
  }
}

/// A text file as token ids, with its length in bytes (the denominator of bits per byte).
struct EncodedFile {
  var ids: [Int]
  var bytes: Int
}

/// Token ids of a text file for a vocabulary (read with the vocabulary's encoding), with the
/// file named in any error.
func encodeFile(_ path: String, vocabulary: Vocabulary) throws -> EncodedFile {
  let text = try readText(path: path, encoding: vocabulary.encoding)
  do {
    return EncodedFile(ids: try vocabulary.encode(text), bytes: vocabulary.byteCount(of: text))
  } catch let error as CorpusError {
    throw CommandError("\(path): \(error)")
  }
}

/// The vocabulary of a checkpoint (`--tokenizer-from`): a language model's or an HMM's.
func tokenizerVocabulary(_ path: String) throws -> Vocabulary {
  if let handle = FileHandle(forReadingAtPath: path), let head = try? handle.read(upToCount: 8),
    Array(head) == TokenFile.magic
  {
    return try TokenFile.open(path).vocabulary  // a token file from recurrent prepare
  }
  return try Vocabulary.read(fromCheckpoint: path)
}

/// An error whose message is the whole line ArgumentParser prints after "Error: ".
struct CommandError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}
