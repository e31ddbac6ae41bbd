import Foundation
import Formats
import Testing

import TestSupport

// recurrent export writes ONNX for language and Sequential models and refuses the rest with one
// line and no file; recurrent predict on a language model streams exactly through its states.

@Test func exportWritesModelsAndRefusesOtherFiles() throws {
  let folder = temporaryFolder("export")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  try String(repeating: "abcab cabba\n", count: 40).write(toFile: folder + "/t.txt", atomically: true, encoding: .utf8)
  let tiny = ["--hidden", "8", "--embedding", "4", "--batch", "2", "--seq-len", "8", "--eval-every", "0", "--sample-every", "0"]
  #expect(try runRecurrent(["train", "--text", "t.txt", "--steps", "2", "--cell", "lstm", "--checkpoint", "lm.safetensors"] + tiny, in: folder).status == 0)
  let export = try runRecurrent(["export", "--checkpoint", "lm.safetensors", "--format", "onnx", "--out", "lm.onnx"], in: folder)
  #expect(export.status == 0, "\(export.stderr)")
  let written = try Data(contentsOf: URL(fileURLWithPath: folder + "/lm.onnx"))
  #expect(written.count > 1000)
  #expect(!String(decoding: written, as: UTF8.self).contains("training."))
  #expect(try runRecurrent(["hmm", "train", "--text", "t.txt", "--states", "2", "--restarts", "1", "--iterations", "1", "--out", "h.safetensors"], in: folder).status == 0)
  let before = snapshot(folder)
  for (arguments, words) in [
    (["export", "--checkpoint", "h.safetensors", "--out", "x.onnx"], "hidden Markov model"),
    (["export", "--checkpoint", "t.txt", "--out", "x.onnx"], "t.txt"),
    (["export", "--checkpoint", "missing.safetensors", "--out", "x.onnx"], "missing.safetensors"),
    (["export", "--checkpoint", "lm.safetensors", "--out", "no/such/folder/x.onnx"], "does not exist"),
    (["export", "--checkpoint", "lm.safetensors", "--format", "keras", "--out", "x.onnx"], "keras"),
  ] {
    let outcome = try runRecurrent(arguments, in: folder)
    #expect(outcome.status != 0 && outcome.stderr.split(separator: "\n").count == 1, "\(arguments): \(outcome.stderr)")
    #expect(outcome.stderr.contains(words), "\(arguments): \(outcome.stderr)")
  }
  #expect(snapshot(folder) == before, "a refused export wrote a file")
}

@Test func languageModelPredictStreamsThroughItsStates() throws {
  let folder = temporaryFolder("predict-lm")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  try String(repeating: "abcab cabba\n", count: 40).write(toFile: folder + "/t.txt", atomically: true, encoding: .utf8)
  #expect(try runRecurrent(
    ["train", "--text", "t.txt", "--steps", "2", "--cell", "lstm", "--layers", "2", "--hidden", "8", "--embedding", "4",
     "--batch", "2", "--seq-len", "8", "--eval-every", "0", "--sample-every", "0", "--checkpoint", "lm.safetensors"], in: folder).status == 0)
  // Ids [6, 2], then its two halves [3, 2]: the halves chained through --final-h/--final-c give
  // the whole's logits and final state.
  let ids: [Double] = [1, 2, 3, 0, 4, 1, 2, 2, 0, 3, 1, 4]
  try NumPyArray(shape: [6, 2], type: .int64, values: ids).write(path: folder + "/all.npy")
  try NumPyArray(shape: [3, 2], type: .int64, values: Array(ids[0..<6])).write(path: folder + "/first.npy")
  try NumPyArray(shape: [3, 2], type: .int64, values: Array(ids[6...])).write(path: folder + "/second.npy")
  func predict(_ arguments: [String]) throws {
    let outcome = try runRecurrent(["predict", "--checkpoint", "lm.safetensors"] + arguments, in: folder)
    #expect(outcome.status == 0, "\(outcome.stderr)")
  }
  try predict(["--x", "all.npy", "--out", "all.out.npy", "--final-h", "all.h.npy", "--final-c", "all.c.npy"])
  try predict(["--x", "first.npy", "--out", "first.out.npy", "--final-h", "first.h.npy", "--final-c", "first.c.npy"])
  try predict([
    "--x", "second.npy", "--initial-h", "first.h.npy", "--initial-c", "first.c.npy", "--out", "second.out.npy",
    "--final-h", "second.h.npy", "--final-c", "second.c.npy",
  ])
  func read(_ name: String) throws -> NumPyArray { try NumPyArray.read(path: folder + "/" + name) }
  let all = try read("all.out.npy")
  #expect(all.shape[0] == 6 && all.shape[1] == 2)
  #expect(all.values == (try read("first.out.npy")).values + (try read("second.out.npy")).values)
  #expect(try read("all.h.npy").values == (try read("second.h.npy")).values)
  #expect(try read("all.c.npy").values == (try read("second.c.npy")).values)
  #expect(try read("all.h.npy").shape == [2, 2, 8])
  // Ids outside the vocabulary and states of the wrong shape are refused with one line.
  try NumPyArray(shape: [1, 1], type: .int64, values: [99]).write(path: folder + "/bad.npy")
  for arguments in [
    ["--x", "bad.npy", "--out", "o.npy"], ["--x", "all.npy", "--initial-h", "first.out.npy", "--out", "o.npy"],
    ["--x", "all.npy", "--lengths", "all.npy", "--out", "o.npy"],  // Sequential-only options are refused
  ] {
    let outcome = try runRecurrent(["predict", "--checkpoint", "lm.safetensors"] + arguments, in: folder)
    #expect(outcome.status != 0 && outcome.stderr.split(separator: "\n").count == 1, "\(outcome.stderr)")
  }
}

@Test func serveRunsTheServerBinaryWithItsOptions() throws {
  let folder = temporaryFolder("serve")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  // recurrent serve hands its options to recurrent-server (built beside it by swift build).
  let help = try runRecurrent(["serve", "--help"], in: folder)
  #expect(help.status == 0 && help.stdout.contains("OpenAI-compatible"), "\(help.stderr)")
  let missing = try runRecurrent(["serve", "--checkpoint", "missing.safetensors", "--port", "0"], in: folder)
  #expect(missing.status != 0 && missing.stderr.split(separator: "\n").count == 1 && missing.stderr.contains("missing.safetensors"))
}
