import Foundation
import Testing

import TestSupport

// --tokenizer bpe end to end: the merges live in the checkpoint, eval reports bits per byte,
// n-gram and HMM baselines score exactly the neural model's tokens (--tokenizer-from), and
// neural eval --sentences scores each line on its own.

private func json(_ text: String) -> [String: Any] {
  (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
}

@Test func bpeModelsAndBaselinesScoreTheSameTokens() throws {
  let folder = temporaryFolder("bpe")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let text = String(repeating: "the cat sat on the mat, naïvely.\nthe dog sat on the log 42 times!\n", count: 40)
  try text.write(toFile: folder + "/t.txt", atomically: true, encoding: .utf8)
  let tiny = ["--hidden", "16", "--embedding", "8", "--batch", "4", "--seq-len", "16", "--eval-every", "0", "--sample-every", "0"]
  let train = try runRecurrent(
    ["train", "--text", "t.txt", "--tokenizer", "bpe", "--vocab-size", "300", "--steps", "3", "--checkpoint", "m.safetensors"]
      + tiny, in: folder)
  #expect(train.status == 0, "\(train.stderr)")
  let eval = json(try runRecurrent(["eval", "--checkpoint", "m.safetensors", "--text", "t.txt", "--json"], in: folder).stdout)
  let tokens = eval["tokens"] as? Int ?? 0
  // Merges shorten the text: far fewer tokens than bytes.
  #expect(tokens > 0 && tokens < text.utf8.count / 2, "\(eval)")
  #expect(eval["bytes"] as? Int == text.utf8.count)
  let bitsPerToken = eval["bits_per_token"] as? Double ?? .nan
  let bitsPerByte = eval["bits_per_byte"] as? Double ?? .nan
  #expect(abs(bitsPerByte * Double(text.utf8.count) - bitsPerToken * Double(tokens)) < 1e-6 * bitsPerToken * Double(tokens))

  // The 3-gram and the HMM on the model's tokens: the same count of scored tokens.
  let ngram = try runRecurrent(
    ["ngram", "train", "--text", "t.txt", "--tokenizer-from", "m.safetensors", "--order", "3", "--out", "m.arpa"], in: folder)
  #expect(ngram.status == 0, "\(ngram.stderr)")
  let ngramEval = json(
    try runRecurrent(
      ["ngram", "eval", "--model", "m.arpa", "--text", "t.txt", "--tokenizer-from", "m.safetensors", "--json"], in: folder
    ).stdout)
  #expect(ngramEval["tokens"] as? Int == tokens && ngramEval["bytes"] as? Int == text.utf8.count)
  #expect((ngramEval["bits_per_byte"] as? Double ?? .nan) < bitsPerByte, "a 3-gram of a repeated text beats 3 steps of training")
  let hmm = try runRecurrent(
    ["hmm", "train", "--text", "t.txt", "--tokenizer-from", "m.safetensors", "--states", "3", "--restarts", "1",
     "--iterations", "2", "--out", "h.safetensors"], in: folder)
  #expect(hmm.status == 0, "\(hmm.stderr)")
  // The HMM keeps the merges itself; so can a new neural model.
  let hmmEval = json(try runRecurrent(["hmm", "eval", "--model", "h.safetensors", "--text", "t.txt", "--json"], in: folder).stdout)
  #expect(hmmEval["tokens"] as? Int == tokens)
  let again = try runRecurrent(
    ["train", "--text", "t.txt", "--tokenizer-from", "h.safetensors", "--steps", "1", "--checkpoint", "n.safetensors"] + tiny,
    in: folder)
  #expect(again.status == 0, "\(again.stderr)")
  let againEval = json(try runRecurrent(["eval", "--checkpoint", "n.safetensors", "--text", "t.txt", "--json"], in: folder).stdout)
  #expect(againEval["tokens"] as? Int == tokens)

  // Generation writes whole characters.
  let sample = try runRecurrent(["generate", "--checkpoint", "m.safetensors", "--length", "50", "--seed", "2"], in: folder)
  #expect(sample.status == 0 && !sample.stdout.isEmpty)

  // Refused with one line: an ARPA file with --tokenizer bpe but no merges, a tokenizer from a
  // model of other tokens, --vocab-size without bpe, --tokenizer-from with --tokenizer.
  let refusals: [[String]] = [
    ["ngram", "eval", "--model", "m.arpa", "--text", "t.txt", "--tokenizer", "bpe"],
    ["ngram", "eval", "--model", "m.arpa", "--text", "t.txt", "--tokenizer-from", "missing.safetensors"],
    ["train", "--text", "t.txt", "--vocab-size", "300", "--steps", "1"],
    ["train", "--text", "t.txt", "--tokenizer-from", "m.safetensors", "--tokenizer", "char", "--steps", "1"],
    ["ngram", "train", "--text", "t.txt", "--tokenizer-from", "t.txt", "--out", "x.arpa"],
  ]
  for arguments in refusals {
    let outcome = try runRecurrent(arguments, in: folder)
    #expect(outcome.status != 0, "\(arguments) was accepted")
    #expect(outcome.stderr.split(separator: "\n").count == 1, "\(arguments): \(outcome.stderr)")
  }
  let charArpa = try runRecurrent(["ngram", "train", "--text", "t.txt", "--order", "2", "--out", "c.arpa"], in: folder)
  #expect(charArpa.status == 0)
  let mismatch = try runRecurrent(
    ["ngram", "eval", "--model", "c.arpa", "--text", "t.txt", "--tokenizer-from", "m.safetensors"], in: folder)
  #expect(mismatch.status != 0 && mismatch.stderr.contains("tokens that are not the"), "\(mismatch.stderr)")
}

@Test func neuralEvalScoresSentencesLineByLine() throws {
  let folder = temporaryFolder("sentences-neural")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let text = String(repeating: "abc ab\nba cab\n", count: 60)
  try text.write(toFile: folder + "/t.txt", atomically: true, encoding: .utf8)
  let train = try runRecurrent(
    ["train", "--text", "t.txt", "--steps", "30", "--hidden", "16", "--embedding", "8", "--batch", "4", "--seq-len", "16",
     "--eval-every", "0", "--sample-every", "0", "--checkpoint", "m.safetensors"], in: folder)
  #expect(train.status == 0, "\(train.stderr)")
  // Two files: one line, and that line twice. Each line is scored from a zero state after a
  // newline, so the second file's total is exactly twice the first's.
  try "abc ab\n".write(toFile: folder + "/one.txt", atomically: true, encoding: .utf8)
  try "abc ab\nabc ab\n".write(toFile: folder + "/two.txt", atomically: true, encoding: .utf8)
  let one = json(try runRecurrent(["eval", "--checkpoint", "m.safetensors", "--text", "one.txt", "--sentences", "--json"], in: folder).stdout)
  let two = json(try runRecurrent(["eval", "--checkpoint", "m.safetensors", "--text", "two.txt", "--sentences", "--json"], in: folder).stdout)
  // Every character of the line and its newline is predicted: 7 tokens per line.
  #expect(one["tokens"] as? Int == 7 && two["tokens"] as? Int == 14 && two["sentences"] as? Int == 2)
  #expect(abs((one["nats_per_token"] as? Double ?? .nan) - (two["nats_per_token"] as? Double ?? 0)) < 1e-12)
  // The stream convention carries the state into the second line and does not predict the first
  // character: another number.
  let stream = json(try runRecurrent(["eval", "--checkpoint", "m.safetensors", "--text", "two.txt", "--json"], in: folder).stdout)
  #expect(stream["tokens"] as? Int == 13 && stream["convention"] as? String == "stream")
  let both = try runRecurrent(["eval", "--checkpoint", "m.safetensors", "--text", "two.txt", "--sentences", "--batched", "2"], in: folder)
  #expect(both.status != 0 && both.stderr.split(separator: "\n").count == 1)
}
