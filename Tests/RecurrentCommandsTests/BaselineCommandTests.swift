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

@Test func ngramEvalScoresSentencesAsKenLMDoes() throws {
  let folder = temporaryFolder("sentences")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  // A toolkit's bigram file: <s> has a backoff and bigrams, as KenLM and SRILM write them.
  let arpa = """

    \\data\\
    ngram 1=4
    ngram 2=3

    \\1-grams:
    -1.0\t</s>
    -99\t<s>\t-0.5
    -0.5\ta\t-0.2
    -0.7\tb\t-0.1

    \\2-grams:
    -0.3\t<s> a
    -0.4\ta b
    -0.2\tb </s>

    \\end\\

    """
  try arpa.write(toFile: folder + "/m.arpa", atomically: true, encoding: .utf8)
  try "a b\nb a\n".write(toFile: folder + "/t.txt", atomically: true, encoding: .utf8)
  // By hand, log10: "a b": p(a|<s>) -0.3, p(b|a) -0.4, p(</s>|b) -0.2 = -0.9;
  // "b a": b after <s> backs off: -0.5 + -0.7; a after b: -0.1 + -0.5; </s> after a: -0.2 + -1.0
  // = -3.0. In all -3.9 over 6 tokens (the ends count, as in KenLM's perplexity).
  let out = try runRecurrent(
    ["ngram", "eval", "--model", "m.arpa", "--text", "t.txt", "--tokenizer", "word", "--sentences", "--json"], in: folder)
  #expect(out.status == 0, "\(out.stderr)")
  let score = try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
  #expect(score["tokens"] as? Int == 6 && score["sentences"] as? Int == 2 && score["convention"] as? String == "sentences")
  let expected = 3.9 * log(10.0) / 6
  #expect(abs((score["nats_per_token"] as? Double ?? 0) - expected) < 1e-6, "\(score)")
  #expect(abs((score["perplexity"] as? Double ?? 0) - pow(10, 3.9 / 6)) < 1e-5)
  // The stream convention on the same file differs (no <s>, first token not predicted).
  let stream = try runRecurrent(["ngram", "eval", "--model", "m.arpa", "--text", "t.txt", "--tokenizer", "word", "--json"], in: folder)
  #expect(stream.stdout.contains(#""convention":"stream""#) && stream.stdout.contains(#""tokens":5"#), "\(stream.stdout)")
}
