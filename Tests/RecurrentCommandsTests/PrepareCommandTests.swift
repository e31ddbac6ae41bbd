import Formats
import Foundation
import Testing

import TestSupport

// recurrent prepare writes the ids once; train --tokens maps them. Training on the token files
// gives bitwise the model training on the texts gives, and cutting the text into parts changes
// no id.

@Test func trainingOnTokenFilesIsTrainingOnTheText() throws {
  let folder = temporaryFolder("prepare")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let text = String(repeating: "Before we proceed any further, hear me speak.\nSpeak, speak.\n", count: 60)
  try text.write(toFile: folder + "/t.txt", atomically: true, encoding: .utf8)
  for step in [
    ["prepare", "--text", "t.txt", "--out", "t.tokens"],
    ["prepare", "--text", "t.txt", "--tokenizer-from", "t.tokens", "--out", "v.tokens"],
  ] {
    let outcome = try runRecurrent(step, in: folder)
    #expect(outcome.status == 0, "\(outcome.stderr)")
  }
  let tiny = [
    "--hidden", "16", "--embedding", "8", "--batch", "4", "--seq-len", "16", "--steps", "4", "--eval-every", "0",
    "--sample-every", "0", "--dropout", "0.1",
  ]
  let fromText = try runRecurrent(
    ["train", "--text", "t.txt", "--valid-text", "t.txt", "--checkpoint", "a.safetensors", "--json"] + tiny, in: folder)
  let fromTokens = try runRecurrent(
    ["train", "--tokens", "t.tokens", "--valid-tokens", "v.tokens", "--checkpoint", "b.safetensors", "--json"] + tiny,
    in: folder)
  #expect(fromText.status == 0 && fromTokens.status == 0, "\(fromText.stderr) \(fromTokens.stderr)")
  let a = try SafeTensors.read(path: folder + "/a.safetensors")
  let b = try SafeTensors.read(path: folder + "/b.safetensors")
  let weights = a.tensors.filter { !$0.name.hasPrefix("training.") }
  #expect(weights.count >= 8)
  for (name, tensor) in weights { #expect(b.tensor(named: name) == tensor, "\(name)") }
  // Without --valid-tokens the last 10% of the ids validate.
  let split = try runRecurrent(["train", "--tokens", "t.tokens", "--checkpoint", "c.safetensors", "--json"] + tiny, in: folder)
  let started = split.stdout.split(separator: "\n").first { $0.contains("\"started\"") }.map(String.init) ?? ""
  let total = text.unicodeScalars.count
  #expect(started.contains("\"valid_tokens\":\(total / 10)"), "\(started)")
}

@Test func preparingInSmallPartsGivesTheSameIds() throws {
  let folder = temporaryFolder("prepare")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let text = (0..<200).map { "line \($0): naïve café ünïcode, words and\twords  \n" }.joined() + "last line without end"
  try text.write(toFile: folder + "/t.txt", atomically: true, encoding: .utf8)
  for tokenizer in ["char", "word", "bpe"] {
    var files: [Data] = []
    for part in ["16777216", "100", "7"] {
      let out = "\(tokenizer)-\(part).tokens"
      let outcome = try runRecurrent(
        ["prepare", "--text", "t.txt", "--tokenizer", tokenizer, "--out", out, "--part-bytes", part], in: folder)
      #expect(outcome.status == 0, "\(outcome.stderr)")
      files.append(try Data(contentsOf: URL(fileURLWithPath: folder + "/" + out)))
    }
    #expect(files[1] == files[0] && files[2] == files[0], "\(tokenizer)")
  }
  // Bad input: one line, non-zero, nothing written.
  try Data([0x61, 0x0A, 0xFF, 0x62]).write(to: URL(fileURLWithPath: folder + "/bad.txt"))
  let bad = try runRecurrent(["prepare", "--text", "bad.txt", "--out", "bad.tokens", "--part-bytes", "1"], in: folder)
  #expect(bad.status != 0 && bad.stderr.contains("bad.txt") && bad.stderr.split(separator: "\n").count == 1, "\(bad.stderr)")
  #expect(!FileManager.default.fileExists(atPath: folder + "/bad.tokens"))
  #expect(try FileManager.default.contentsOfDirectory(atPath: folder).allSatisfy { !$0.contains("partial") })
}
