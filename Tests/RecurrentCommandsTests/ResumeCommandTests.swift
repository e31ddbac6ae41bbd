import Foundation
import Testing
import TestSupport

// Resume tells the truth: extending a run re-fits its annealing schedule from the current rate
// down to the new end (it never climbs back up), and every change of trajectory is said.

private func events(_ output: String) throws -> [[String: Any]] {
  try output.split(separator: "\n").map {
    try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
  }
}

@Test func extendingARunReFitsItsScheduleAndSaysWhatChanged() throws {
  let folder = temporaryFolder("extend")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let text = String(repeating: "First Citizen:\nBefore we proceed any further, hear me speak.\n", count: 300)
  try text.write(toFile: folder + "/t.txt", atomically: true, encoding: .utf8)
  let tiny = [
    "train", "--text", "t.txt", "--layers", "1", "--hidden", "16", "--embedding", "8", "--batch", "4", "--seq-len", "16",
    "--eval-every", "0", "--sample-every", "0", "--threads", "1", "--json", "--checkpoint", "m.safetensors",
  ]
  // A run planned for 40 steps (cosine over 40) that stops early, by its epoch limit.
  let first = try runRecurrent(tiny + ["--steps", "40", "--epochs", "0.05"], in: folder)
  #expect(first.status == 0, "\(first.stderr)")
  let stoppedAt = try #require(try events(first.stdout).last?["step"] as? Int)
  #expect(stoppedAt > 0 && stoppedAt < 40)
  // Resumed to the planned 40: nothing changes.
  try FileManager.default.copyItem(atPath: folder + "/m.safetensors", toPath: folder + "/saved.safetensors")
  let same = try events(try runRecurrent(tiny + ["--steps", "40", "--resume"], in: folder).stdout)
  #expect((same.first?["changes"] as? [String]) == [])
  // Extended to 80 from the saved state: the schedule is re-fitted and the change is said.
  try FileManager.default.removeItem(atPath: folder + "/m.safetensors")
  try FileManager.default.copyItem(atPath: folder + "/saved.safetensors", toPath: folder + "/m.safetensors")
  let extended = try runRecurrent(tiny + ["--steps", "80", "--resume"], in: folder)
  #expect(extended.status == 0, "\(extended.stderr)")
  let lines = try events(extended.stdout)
  let changes = try #require(lines.first?["changes"] as? [String])
  #expect(changes.count == 1 && changes[0].hasPrefix("schedule cosine over 40 steps"), "\(changes)")
  let rates = lines.filter { $0["event"] as? String == "step" }.compactMap { $0["learning_rate"] as? Double }
  #expect(rates.count >= 6)
  #expect(zip(rates, rates.dropFirst()).allSatisfy { $0 >= $1 }, "never climbs: \(rates)")
  #expect(rates.first! > 0 && rates.last! == 0, "from the current rate down to 0 at step 80: \(rates)")
  // A changed learning rate on resume is said too, in the plain output as one line.
  let changedRate = try runRecurrent(
    Array(tiny.filter { $0 != "--json" }) + ["--steps", "81", "--resume", "--lr", "0.001"], in: folder)
  let said = changedRate.stdout.split(separator: "\n").filter { $0.hasPrefix("resuming with changes: ") }
  #expect(said.count == 1 && said[0].contains("optimizer adam lr 0.002 -> adam lr 0.001"), "\(changedRate.stdout)")
}

@Test func initFromFineTunesWithAnEnlargedVocabularyAndRefusesContradictions() throws {
  let folder = temporaryFolder("init-from")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  try String(repeating: "to be or not to be, that is the question.\n", count: 200)
    .write(toFile: folder + "/a.txt", atomically: true, encoding: .utf8)
  try String(repeating: "ZOUNDS! to be or not to be, quoth he.\n", count: 200)
    .write(toFile: folder + "/b.txt", atomically: true, encoding: .utf8)
  let tiny = [
    "--layers", "1", "--hidden", "16", "--embedding", "8", "--batch", "4", "--seq-len", "16", "--eval-every", "0",
    "--sample-every", "0", "--threads", "1", "--json",
  ]
  let base = try runRecurrent(["train", "--text", "a.txt", "--steps", "10", "--checkpoint", "a.safetensors"] + tiny, in: folder)
  #expect(base.status == 0, "\(base.stderr)")
  let tuned = try runRecurrent(
    ["train", "--text", "b.txt", "--steps", "5", "--init-from", "a.safetensors", "--checkpoint", "b.safetensors"] + tiny,
    in: folder)
  #expect(tuned.status == 0, "\(tuned.stderr)")
  let started = try #require(
    try JSONSerialization.jsonObject(with: Data(tuned.stdout.split(separator: "\n")[0].utf8)) as? [String: Any])
  #expect(started["resumed_at_step"] is NSNull, "a new run")
  let vocabA = try #require(started["vocab_size"] as? Int)
  let eval = try runRecurrent(["eval", "--checkpoint", "b.safetensors", "--text", "b.txt", "--json"], in: folder)
  #expect(eval.status == 0, "the saved vocabulary covers the new text: \(eval.stderr)")
  let evalA = try runRecurrent(["eval", "--checkpoint", "a.safetensors", "--text", "b.txt"], in: folder)
  #expect(evalA.status == 1 && evalA.stderr.contains("not in the model's vocabulary"), "Z was new: \(evalA.stderr)")
  #expect(vocabA > 0)
  for (extra, named) in [
    (["--resume"], "--init-from"), (["--hidden", "32"], "--hidden 32 contradicts"), (["--cell", "lstm"], "--cell lstm"),
  ] {
    let refused = try runRecurrent(
      ["train", "--text", "b.txt", "--init-from", "a.safetensors", "--checkpoint", "c.safetensors"] + tiny + extra, in: folder)
    #expect(refused.status == 64 && refused.stderr.contains(named), "\(extra): \(refused.stderr)")
    #expect(!FileManager.default.fileExists(atPath: folder + "/c.safetensors"))
  }
}
