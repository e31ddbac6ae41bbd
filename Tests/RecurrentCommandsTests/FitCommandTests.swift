import ArgumentParser
import Formats
import Foundation
import Testing
import TestSupport

import Recurrent
import SequenceModels
import RecurrentCommands
import TensorCore
import Training

// `recurrent fit` and `recurrent predict` end to end, in process: arrays in, a model that has
// learned, predictions out; and bad inputs refused before anything is written.

private func run(_ arguments: [String]) throws {
  var command = try RecurrentCommand.parseAsRoot(arguments)
  try command.run()
}

private func temporaryFolder() -> String {
  let path = NSTemporaryDirectory() + "recurrent-fit-\(UUID().uuidString)"
  try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

@Test func fitThenPredictLearnsAVariableLengthTask() throws {
  // Label of each sequence: is the sum of its real steps positive? Padding holds large values
  // of the opposite sign that would flip the answer if the model read it.
  let folder = temporaryFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  var rng = SplitMix64(seed: 21)
  let (N, T) = (400, 10)
  var x = Tensor(zeros: [N, T, 1])
  var y = [Double](repeating: 0, count: N)
  var lengths = [Double](repeating: 0, count: N)
  for n in 0..<N {
    let length = 2 + Int(rng.next() % UInt64(T - 1))
    lengths[n] = Double(length)
    var sum: Float = 0
    for t in 0..<length {
      let v = rng.nextUnitFloat() * 2 - 1
      x.scalars[n * T + t] = v
      sum += v
    }
    y[n] = sum > 0 ? 1 : 0
    for t in length..<T { x.scalars[n * T + t] = sum > 0 ? -5 : 5 }
  }
  try NumPyArray(x).write(path: folder + "/x.npy")
  try NumPyArray(shape: [N], type: .int64, values: y).write(path: folder + "/y.npy")
  try NumPyArray(shape: [N], type: .int32, values: lengths).write(path: folder + "/lengths.npy")
  let model = folder + "/model.safetensors"
  try run([
    "fit", "--x", folder + "/x.npy", "--y", folder + "/y.npy", "--lengths", folder + "/lengths.npy",
    "--task", "binary", "--cell", "lstm", "--hidden", "16", "--epochs", "15", "--lr", "0.01",
    "--validation-split", "0.25", "--checkpoint", model, "--json", "--threads", "2",
  ])
  let (loaded, task) = try SequentialCheckpoint.load(from: model)
  #expect(task == "binary")
  #expect(loaded.compiled?.loss == .binaryCrossEntropy)
  let out = folder + "/p.npy"
  try run(["predict", "--checkpoint", model, "--x", folder + "/x.npy", "--lengths", folder + "/lengths.npy", "--out", out])
  let p = try NumPyArray.read(path: out)
  #expect(p.shape == [N, 1] && p.type == .float32)
  let held = (300..<N).filter { (p.values[$0] > 0.5) == (y[$0] > 0.5) }.count
  #expect(Double(held) / 100 >= 0.9, "held-out accuracy \(held)%")
  // The same file predicted without lengths reads the padding and does worse: lengths matter.
  try run(["predict", "--checkpoint", model, "--x", folder + "/x.npy", "--out", out])
  let blind = try NumPyArray.read(path: out)
  let blindHits = (300..<N).filter { (blind.values[$0] > 0.5) == (y[$0] > 0.5) }.count
  #expect(blindHits < held)
}

@Test func fitAndPredictRefuseBadInputWithoutWritingAnything() throws {
  let folder = temporaryFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  try NumPyArray(Tensor(zeros: [6, 4, 2])).write(path: folder + "/x.npy")
  try NumPyArray(Tensor(zeros: [6])).write(path: folder + "/y.npy")
  try NumPyArray(Tensor(zeros: [5])).write(path: folder + "/y5.npy")
  try NumPyArray(Tensor(zeros: [6, 4, 2, 1])).write(path: folder + "/x4d.npy")
  try NumPyArray(shape: [6], type: .float64, values: [1, 2, 9, 1, 1, 1]).write(path: folder + "/badlengths.npy")
  try NumPyArray(shape: [6], type: .float64, values: [0, 1, 0.5, 1, 0, 2]).write(path: folder + "/notbinary.npy")
  _ = FileManager.default.createFile(atPath: folder + "/empty.npy", contents: Data())
  _ = FileManager.default.createFile(atPath: folder + "/text.npy", contents: Data("not an array".utf8))
  let model = folder + "/m.safetensors"
  let base = ["fit", "--task", "regression", "--checkpoint", model, "--epochs", "1"]
  let cases: [([String], String)] = [
    (base + ["--x", folder + "/missing.npy", "--y", folder + "/y.npy"], "no such file"),
    (base + ["--x", folder, "--y", folder + "/y.npy"], "is a directory"),
    (base + ["--x", folder + "/empty.npy", "--y", folder + "/y.npy"], "is empty"),
    (base + ["--x", folder + "/text.npy", "--y", folder + "/y.npy"], "not a NumPy"),
    (base + ["--x", folder + "/x.npy", "--y", folder + "/y5.npy"], "samples"),
    (base + ["--x", folder + "/x4d.npy", "--y", folder + "/y.npy"], "shape"),
    (base + ["--x", folder + "/x.npy", "--y", folder + "/y.npy", "--lengths", folder + "/badlengths.npy"], "lengths"),
    (["fit", "--task", "binary", "--checkpoint", model, "--x", folder + "/x.npy", "--y", folder + "/notbinary.npy"], "[0, 1]"),
    (base + ["--x", folder + "/x.npy", "--y", folder + "/y.npy", "--embedding", "4"], "token ids"),
  ]
  for (arguments, fragment) in cases {
    do {
      try run(arguments)
      Issue.record("\(arguments) was accepted")
    } catch {
      let message = RecurrentCommand.message(for: error)
      #expect(message.contains(fragment), "\(arguments.dropFirst(6)): \(message)")
      #expect(!message.contains("\n"), "one line: \(message)")
      #expect(RecurrentCommand.exitCode(for: error) != .success)
    }
    #expect(!FileManager.default.fileExists(atPath: model), "\(arguments): a checkpoint was written")
  }
  // predict: a language-model or damaged checkpoint, and inputs of the wrong width.
  try run(base + ["--x", folder + "/x.npy", "--y", folder + "/y.npy"])
  let before = try Data(contentsOf: URL(fileURLWithPath: model))
  try NumPyArray(Tensor(zeros: [6, 4, 3])).write(path: folder + "/x3.npy")
  let out = folder + "/p.npy"
  for (arguments, fragment) in [
    (["predict", "--checkpoint", folder + "/x.npy", "--x", folder + "/x.npy", "--out", out], "checkpoint"),
    (["predict", "--checkpoint", model, "--x", folder + "/x3.npy", "--out", out], "[N, T, 2]"),
    (["predict", "--checkpoint", model, "--x", folder + "/x.npy", "--out", folder], "is a directory"),
  ] {
    do {
      try run(arguments)
      Issue.record("\(arguments) was accepted")
    } catch {
      let message = RecurrentCommand.message(for: error)
      #expect(message.contains(fragment), "\(arguments): \(message)")
      #expect(!message.contains("\n"), "one line: \(message)")
    }
    #expect(!FileManager.default.fileExists(atPath: out))
  }
  #expect(try Data(contentsOf: URL(fileURLWithPath: model)) == before)
}

@Test func fitInitFromStartsFromTheWeightsAndGrowsTheVocabulary() throws {
  let folder = temporaryFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  // Token ids; the label: does id 3 occur? The second data set uses ids up to 7 (new ones).
  var rng = SplitMix64(seed: 4)
  func data(_ name: String, vocabulary V: Int) throws {
    let (N, T) = (200, 6)
    var x = [Double](repeating: 0, count: N * T)
    var y = [Double](repeating: 0, count: N)
    for n in 0..<N {
      for t in 0..<T { x[n * T + t] = Double(1 + Int(rng.next() % UInt64(V - 1))) }
      y[n] = x[(n * T)..<((n + 1) * T)].contains(3) ? 1 : 0
    }
    try NumPyArray(shape: [N, T], type: .int32, values: x).write(path: folder + "/\(name)-x.npy")
    try NumPyArray(shape: [N], type: .int32, values: y).write(path: folder + "/\(name)-y.npy")
  }
  try data("a", vocabulary: 6)
  try data("b", vocabulary: 8)
  let common = ["--task", "binary", "--embedding", "4", "--hidden", "8", "--lr", "0.02", "--threads", "1", "--json"]
  try run(["fit", "--x", folder + "/a-x.npy", "--y", folder + "/a-y.npy", "--epochs", "8",
           "--checkpoint", folder + "/a.safetensors"] + common)
  let a = try SequentialCheckpoint.load(from: folder + "/a.safetensors").model
  try run(["fit", "--x", folder + "/b-x.npy", "--y", folder + "/b-y.npy", "--epochs", "1",
           "--init-from", folder + "/a.safetensors", "--checkpoint", folder + "/b.safetensors"] + common + ["--lr", "1e-9"])
  let b = try SequentialCheckpoint.load(from: folder + "/b.safetensors").model
  // The vocabulary grew to 8; with a learning rate of 1e-9 every old weight is (all but) a's.
  #expect(b.embeddingWeight?.shape == [8, 4])
  expectClose(Array(b.embeddingWeight!.scalars[0..<24]), a.embeddingWeight!.scalars, rtol: 1e-5, atol: 1e-6, "old rows")
  for ((name, new), (_, old)) in zip(b.namedParameters.dropFirst(), a.namedParameters.dropFirst()) {
    expectClose(new.scalars, old.scalars, rtol: 1e-5, atol: 1e-6, name)
  }
  // Another architecture is refused, naming both.
  do {
    try run(["fit", "--x", folder + "/b-x.npy", "--y", folder + "/b-y.npy", "--init-from", folder + "/a.safetensors",
             "--checkpoint", folder + "/c.safetensors", "--task", "binary", "--embedding", "4", "--hidden", "16"])
    Issue.record("a contradicting architecture was accepted")
  } catch {
    #expect("\(error)".contains("GRU(8)") && "\(error)".contains("GRU(16)"), "\(error)")
  }
  #expect(!FileManager.default.fileExists(atPath: folder + "/c.safetensors"))
}
