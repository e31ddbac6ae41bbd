import Formats
import Foundation
import Testing
import TestSupport

import Recurrent
import TensorCore
import Training

// The min cells through the real binary: train (the recipe without its weight drop, which
// acts on a W_hh they have not), a checkpoint with input weights only, resume, eval and
// generate; --weight-drop and export refused in one line.

@Test(arguments: ["min-gru", "min-lstm"])
func minCellsTrainResumeScoreAndGenerate(cell: String) throws {
  let folder = NSTemporaryDirectory() + "recurrent-min-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let text = String(repeating: "Now is the winter of our discontent made glorious summer.\n", count: 60)
  _ = FileManager.default.createFile(atPath: folder + "/t.txt", contents: Data(text.utf8))
  let tiny = [
    "train", "--text", "t.txt", "--cell", cell, "--layers", "2", "--hidden", "16", "--embedding", "8", "--batch", "4",
    "--seq-len", "16", "--eval-every", "0", "--sample-every", "0", "--json", "--checkpoint", "m.safetensors",
  ]
  let trained = try runRecurrent(tiny + ["--steps", "4"], in: folder)
  #expect(trained.status == 0, "\(trained.stderr)")
  let checkpoint = try Checkpoint.load(from: folder + "/m.safetensors")
  #expect(checkpoint.model.configuration.cell.rawValue == cell)
  #expect(checkpoint.model.configuration.regularization == Regularization(lockedDropout: TrainingOptions.recipe.lockedDropout))
  #expect(checkpoint.model.namedParameters.map(\.name).filter { $0.hasPrefix("rnn.") } == [
    "rnn.weight_ih_l0", "rnn.bias_ih_l0", "rnn.weight_ih_l1", "rnn.bias_ih_l1",
  ])
  let resumed = try runRecurrent(tiny + ["--steps", "6", "--resume"], in: folder)
  #expect(resumed.status == 0, "\(resumed.stderr)")
  let scored = try runRecurrent(["eval", "--checkpoint", "m.safetensors", "--text", "t.txt", "--json"], in: folder)
  #expect(scored.status == 0 && scored.stdout.contains("nats"), "\(scored.stderr)")
  let generated = try runRecurrent(["generate", "--checkpoint", "m.safetensors", "--length", "40", "--seed", "3"], in: folder)
  #expect(generated.status == 0 && generated.stdout.count >= 20, "\(generated.stderr)")
  for (arguments, needle) in [
    (tiny + ["--steps", "2", "--weight-drop", "0.2"], "--weight-drop"),
    (["export", "--checkpoint", "m.safetensors", "--out", "m.onnx"], cell),
  ] {
    let refused = try runRecurrent(arguments, in: folder)
    #expect(refused.status != 0)
    #expect(refused.stderr.contains(needle) && refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
  }
  #expect(!FileManager.default.fileExists(atPath: folder + "/m.onnx"))
}

// The projected LSTM through the binary: train stores proj_size and resumes it, eval and
// generate read it, export refuses it; fit builds it; bad sizes are refused in one line.
@Test func projectedLSTMTrainsResumesAndFits() throws {
  let folder = NSTemporaryDirectory() + "recurrent-proj-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let text = String(repeating: "Now is the winter of our discontent made glorious summer.\n", count: 60)
  _ = FileManager.default.createFile(atPath: folder + "/t.txt", contents: Data(text.utf8))
  let tiny = [
    "train", "--text", "t.txt", "--cell", "lstm", "--proj-size", "8", "--layers", "2", "--hidden", "16", "--tied",
    "--batch", "4", "--seq-len", "16", "--eval-every", "0", "--sample-every", "0", "--json", "--checkpoint", "p.safetensors",
  ]
  let trained = try runRecurrent(tiny + ["--steps", "4"], in: folder)
  #expect(trained.status == 0, "\(trained.stderr)")
  let model = try Checkpoint.load(from: folder + "/p.safetensors").model
  #expect(model.configuration.projectionSize == 8 && model.configuration.embeddingSize == 8)  // --tied: E = P
  #expect(model.rnn.weights.allSatisfy { $0.projection?.shape == [8, 16] && $0.weightHH.shape == [64, 8] })
  #expect(try runRecurrent(tiny + ["--steps", "6", "--resume"], in: folder).status == 0)
  let scored = try runRecurrent(["eval", "--checkpoint", "p.safetensors", "--text", "t.txt", "--json"], in: folder)
  #expect(scored.status == 0 && scored.stdout.contains("nats"), "\(scored.stderr)")
  let generated = try runRecurrent(["generate", "--checkpoint", "p.safetensors", "--length", "40"], in: folder)
  #expect(generated.status == 0 && generated.stdout.count >= 20, "\(generated.stderr)")
  // Fine-tuning on text with new characters keeps the projection (the decoder reads P).
  _ = FileManager.default.createFile(atPath: folder + "/u.txt", contents: Data((text + "Zebras quiz jokes!\n").utf8))
  let tuned = try runRecurrent(
    ["train", "--text", "u.txt", "--init-from", "p.safetensors", "--steps", "2", "--batch", "4", "--seq-len", "16",
     "--eval-every", "0", "--sample-every", "0", "--checkpoint", "t.safetensors"], in: folder)
  #expect(tuned.status == 0, "\(tuned.stderr)")
  let fine = try Checkpoint.load(from: folder + "/t.safetensors").model
  #expect(fine.configuration.projectionSize == 8 && fine.configuration.vocabularySize > model.configuration.vocabularySize)
  // Sequence classification with projected layers.
  var rng = SplitMix64(seed: 4)
  let x = Tensor(normal: [12, 5, 3], using: &rng)
  try NumPyArray(x).write(path: folder + "/x.npy")
  try NumPyArray(shape: [12], type: .int64, values: (0..<12).map { Double($0 % 2) }).write(path: folder + "/y.npy")
  let fit = try runRecurrent(
    ["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--cell", "lstm", "--hidden", "6", "--proj-size", "3",
     "--layers", "2", "--epochs", "1", "--checkpoint", "f.safetensors"], in: folder)
  #expect(fit.status == 0, "\(fit.stderr)")
  for (arguments, needle) in [
    (["export", "--checkpoint", "p.safetensors", "--out", "p.onnx"], "proj_size"),
    (tiny + ["--steps", "2", "--cell", "gru", "--checkpoint", "q.safetensors"], "--proj-size"),
    (tiny + ["--steps", "2", "--proj-size", "16", "--checkpoint", "q.safetensors"], "--proj-size"),
    (["fit", "--x", "x.npy", "--y", "y.npy", "--task", "binary", "--proj-size", "3"], "--proj-size"),
  ] {
    let refused = try runRecurrent(arguments, in: folder)
    #expect(refused.status != 0)
    #expect(refused.stderr.contains(needle) && refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
  }
  #expect(!FileManager.default.fileExists(atPath: folder + "/p.onnx") && !FileManager.default.fileExists(atPath: folder + "/q.safetensors"))
}

// The layer-normalised cells through the binary: train (the recipe's weight drop applies: they
// have W_hh), generate; export refused in one line.
@Test(arguments: ["gru-ln", "lstm-ln"])
func layerNormCellsTrainAndGenerate(cell: String) throws {
  let folder = NSTemporaryDirectory() + "recurrent-ln-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let text = String(repeating: "Now is the winter of our discontent made glorious summer.\n", count: 60)
  _ = FileManager.default.createFile(atPath: folder + "/t.txt", contents: Data(text.utf8))
  let trained = try runRecurrent(
    ["train", "--text", "t.txt", "--cell", cell, "--layers", "2", "--hidden", "16", "--embedding", "8", "--batch", "4",
     "--seq-len", "16", "--steps", "4", "--eval-every", "0", "--sample-every", "0", "--checkpoint", "n.safetensors"],
    in: folder)
  #expect(trained.status == 0, "\(trained.stderr)")
  let model = try Checkpoint.load(from: folder + "/n.safetensors").model
  #expect(model.configuration.regularization == TrainingOptions.recipe)
  #expect(model.rnn.weights.allSatisfy { $0.cellParameters?.count == (cell == "gru-ln" ? 6 : 10) * 16 })
  let generated = try runRecurrent(["generate", "--checkpoint", "n.safetensors", "--length", "40"], in: folder)
  #expect(generated.status == 0 && generated.stdout.count >= 20, "\(generated.stderr)")
  let refused = try runRecurrent(["export", "--checkpoint", "n.safetensors", "--out", "n.onnx"], in: folder)
  #expect(refused.status != 0 && refused.stderr.contains(cell) && refused.stderr.split(separator: "\n").count == 1)
  #expect(!FileManager.default.fileExists(atPath: folder + "/n.onnx"))
}
