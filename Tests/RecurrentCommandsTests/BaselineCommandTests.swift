import Foundation
import Testing

import TestSupport

@Test func ngramAndHMMCommandsTrainScoreAndSample() throws {
  let folder = NSTemporaryDirectory() + "recurrent-baselines-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let text = String(repeating: "the cat sat on the mat.\nthe dog sat on the log.\n", count: 30)
  try text.write(toFile: folder + "/t.txt", atomically: true, encoding: .utf8)
  let train = try runRecurrent(["ngram", "train", "--text", "t.txt", "--order", "3", "--out", "m.arpa", "--json"], in: folder)
  #expect(train.status == 0, "\(train.stderr)")
  let eval = try runRecurrent(["ngram", "eval", "--model", "m.arpa", "--text", "t.txt", "--json"], in: folder)
  let score = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any]
  #expect(score?["tokens"] as? Int == text.unicodeScalars.count - 1)
  let nats = score?["nats_per_token"] as? Double ?? .nan
  #expect(nats > 0 && nats < 1, "a 3-gram model of a repetitive text: \(nats)")
  let a = try runRecurrent(["ngram", "generate", "--model", "m.arpa", "--length", "60", "--seed", "3"], in: folder)
  let b = try runRecurrent(["ngram", "generate", "--model", "m.arpa", "--length", "60", "--seed", "3"], in: folder)
  #expect(a.status == 0 && a.stdout == b.stdout && a.stdout.unicodeScalars.count == 61)
  let word = try runRecurrent(
    ["ngram", "train", "--text", "t.txt", "--order", "2", "--tokenizer", "word", "--out", "w.arpa"], in: folder)
  #expect(word.status == 0, "\(word.stderr)")
  let wordEval = try runRecurrent(["ngram", "eval", "--model", "w.arpa", "--text", "t.txt", "--tokenizer", "word", "--json"], in: folder)
  #expect(wordEval.stdout.contains("\"tokens\":"), "\(wordEval.stderr)")
  let hmm = try runRecurrent(
    ["hmm", "train", "--text", "t.txt", "--states", "4", "--restarts", "2", "--iterations", "5", "--out", "h.safetensors", "--json"],
    in: folder)
  #expect(hmm.status == 0, "\(hmm.stderr)")
  let hmmEval = try runRecurrent(["hmm", "eval", "--model", "h.safetensors", "--text", "t.txt", "--json"], in: folder)
  let hmmScore = try JSONSerialization.jsonObject(with: Data(hmmEval.stdout.utf8)) as? [String: Any]
  #expect((hmmScore?["nats_per_token"] as? Double ?? .nan) < log(Double(Set(text.unicodeScalars).count)))
}
