import Foundation
import Testing
import TestSupport

import Formats
import Recurrent
import SequenceModels
import TensorCore
import Training

// The regularizer options through the real binary: train stores them in the checkpoint (and
// zoneout changes what eval computes), a resume that changes them says so, export refuses a
// zoneout model, fit takes them, and a bad value is refused in one line.

private let text = String(repeating: "Now is the winter of our discontent made glorious summer.\n", count: 60)

private func folderWithText() -> String {
  let folder = NSTemporaryDirectory() + "recurrent-regularization-\(UUID().uuidString)"
  try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  _ = FileManager.default.createFile(atPath: folder + "/t.txt", contents: Data(text.utf8))
  return folder
}

private let tiny = [
  "train", "--text", "t.txt", "--layers", "2", "--hidden", "16", "--embedding", "8", "--batch", "4", "--seq-len", "16",
  "--steps", "4", "--eval-every", "0", "--sample-every", "0", "--json",
]

@Test func trainStoresTheRegularizersAndExportRefusesZoneout() throws {
  let folder = folderWithText()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let all = [
    "--weight-drop", "0.3", "--locked-dropout", "0.2", "--embedding-dropout", "0.1", "--zoneout", "0.25", "--ar", "2",
    "--tar", "1",
  ]
  let trained = try runRecurrent(tiny + all + ["--checkpoint", "r.safetensors"], in: folder)
  #expect(trained.status == 0, "\(trained.stderr)")
  let checkpoint = try Checkpoint.load(from: folder + "/r.safetensors")
  let stored = checkpoint.model.configuration.regularization
  #expect(stored == Regularization(
    embeddingDropout: 0.1, lockedDropout: 0.2, weightDrop: 0.3, zoneout: 0.25, activation: 2, temporalActivation: 1))
  #expect(checkpoint.model.rnn.zoneout == 0.25 && checkpoint.model.rnn.weightDrop == 0.3)
  // A resume that turns some off continues and names the change.
  let resumed = try runRecurrent(
    ["train", "--text", "t.txt", "--steps", "6", "--resume", "--checkpoint", "r.safetensors", "--weight-drop", "0",
     "--json"], in: folder)
  #expect(resumed.status == 0, "\(resumed.stderr)")
  #expect(resumed.stdout.contains("regularization"), "\(resumed.stdout)")
  let after = try Checkpoint.load(from: folder + "/r.safetensors").model.configuration.regularization
  #expect(after.weightDrop == 0 && after.zoneout == 0.25)
  let export = try runRecurrent(["export", "--checkpoint", "r.safetensors", "--out", "r.onnx"], in: folder)
  #expect(export.status != 0)
  #expect(export.stderr.contains("zoneout") && export.stderr.split(separator: "\n").count == 1, "\(export.stderr)")
  #expect(!FileManager.default.fileExists(atPath: folder + "/r.onnx"))
  // Without zoneout the same model exports.
  let plain = try runRecurrent(tiny + ["--weight-drop", "0.3", "--checkpoint", "p.safetensors"], in: folder)
  #expect(plain.status == 0, "\(plain.stderr)")
  #expect(try runRecurrent(["export", "--checkpoint", "p.safetensors", "--out", "p.onnx"], in: folder).status == 0)
}

@Test func badRegularizerValuesAreRefusedInOneLine() throws {
  let folder = folderWithText()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  for arguments in [
    tiny + ["--zoneout", "1"], tiny + ["--weight-drop", "-0.1"], tiny + ["--locked-dropout", "nan"],
    tiny + ["--ar", "-1"], tiny + ["--tar", "inf"], tiny + ["--embedding-dropout", "1.5"],
  ] {
    let outcome = try runRecurrent(arguments, in: folder)
    #expect(outcome.status != 0, "\(arguments)")
    #expect(outcome.stderr.split(separator: "\n").filter { !$0.isEmpty }.count == 1, "\(arguments): \(outcome.stderr)")
  }
}

@Test func fitTakesTheRegularizersAndKeepsThemInItsCheckpoint() throws {
  let folder = folderWithText()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  var rng = SplitMix64(seed: 4)
  let (N, T) = (40, 6)
  let x = Tensor(normal: [N, T, 2], using: &rng)
  try NumPyArray(x).write(path: folder + "/x.npy")
  try NumPyArray(shape: [N], type: .float32, values: (0..<N).map { Double($0 % 3) }).write(path: folder + "/y.npy")
  let fit = [
    "fit", "--x", "x.npy", "--y", "y.npy", "--task", "regression", "--hidden", "8", "--layers", "2", "--epochs", "2",
    "--checkpoint", "f.safetensors",
  ]
  let trained = try runRecurrent(
    fit + ["--zoneout", "0.2", "--weight-drop", "0.2", "--locked-dropout", "0.1", "--ar", "1", "--tar", "1"], in: folder)
  #expect(trained.status == 0, "\(trained.stderr)")
  let model = try SequentialCheckpoint.load(from: folder + "/f.safetensors").model
  #expect(model.regularization == Regularization(lockedDropout: 0.1, weightDrop: 0.2, zoneout: 0.2, activation: 1, temporalActivation: 1))
  let refused = try runRecurrent(fit + ["--embedding-dropout", "0.1"], in: folder)
  #expect(refused.status != 0 && refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
}

@Test func aNewWordLevelRunTakesTheWordRecipe() throws {
  let folder = folderWithText()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  func stored(_ extra: [String]) throws -> Regularization {
    let run = try runRecurrent(tiny + ["--checkpoint", "w.safetensors"] + extra, in: folder)
    #expect(run.status == 0, "\(run.stderr)")
    return try Checkpoint.load(from: folder + "/w.safetensors").model.configuration.regularization
  }
  #expect(try stored(["--tokenizer", "word"]) == TrainingOptions.wordRecipe)
  var given = TrainingOptions.wordRecipe
  given.weightDrop = 0.2
  #expect(try stored(["--tokenizer", "word", "--weight-drop", "0.2"]) == given)  // what is given goes on top
  #expect(try stored([]) == TrainingOptions.recipe)  // characters keep theirs
  var minimal = TrainingOptions.wordRecipe
  minimal.weightDrop = 0  // no W_hh to drop
  #expect(try stored(["--tokenizer", "word", "--cell", "min-gru"]) == minimal)
}
