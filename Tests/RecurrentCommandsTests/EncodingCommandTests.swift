import Foundation
import Testing
import TestSupport

// A text with stray non-UTF-8 bytes trains and generates with --encoding bytes or latin1; the
// encoding is stored in the checkpoint, so eval and generate read text as training did.

@Test(arguments: ["latin1", "bytes"])
func aTextWithStrayBytesTrainsEvaluatesAndGenerates(encoding: String) throws {
  let folder = temporaryFolder("encoding-cli")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  var bytes: [UInt8] = []
  for _ in 0..<200 { bytes += Array("Before we proceed any further, hear me speak: caf".utf8) + [0xE9, 0x0A] }
  try Data(bytes).write(to: URL(fileURLWithPath: folder + "/t.txt"))
  let tiny = [
    "--text", "t.txt", "--layers", "1", "--hidden", "16", "--embedding", "8", "--batch", "4", "--seq-len", "16",
    "--steps", "5", "--eval-every", "0", "--sample-every", "0", "--threads", "1", "--checkpoint", "m.safetensors",
  ]
  let refused = try runRecurrent(["train"] + tiny, in: folder)
  #expect(refused.status == 1 && refused.stderr.contains("--encoding"), "\(refused.stderr)")
  let trained = try runRecurrent(["train"] + tiny + ["--encoding", encoding], in: folder)
  #expect(trained.status == 0, "\(trained.stderr)")
  let eval = try runRecurrent(["eval", "--checkpoint", "m.safetensors", "--text", "t.txt", "--json"], in: folder)
  #expect(eval.status == 0, "read with the stored encoding: \(eval.stderr)")
  let score = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any]
  #expect(score?["tokens"] as? Int == bytes.count - 1, "one token per byte either way")
  let generated = try runRecurrent(
    ["generate", "--checkpoint", "m.safetensors", "--prime", "café", "--length", "40", "--seed", "1"], in: folder)
  #expect(generated.status == 0 && generated.stdout.hasPrefix("café"), "\(generated.stderr)")
  #expect(String(data: Data(generated.stdout.utf8), encoding: .utf8) != nil, "what is printed is UTF-8 text")
  // The baselines read the same bytes, and score lines as sentences ending at the newline token.
  let ngram = try runRecurrent(["ngram", "train", "--text", "t.txt", "--encoding", encoding, "--order", "3", "--out", "m.arpa"], in: folder)
  #expect(ngram.status == 0, "\(ngram.stderr)")
  let sentences = try runRecurrent(
    ["ngram", "eval", "--model", "m.arpa", "--text", "t.txt", "--encoding", encoding, "--sentences", "--json"], in: folder)
  #expect(sentences.status == 0 && sentences.stdout.contains(#""sentences":200"#), "\(sentences.stderr)")
  let resumed = try runRecurrent(["train"] + tiny + ["--resume", "--encoding", "utf8", "--steps", "6"], in: folder)
  #expect(resumed.status == 64 && resumed.stderr.contains("--encoding utf8 differs"), "\(resumed.stderr)")
}
