import Formats
import Foundation
import Testing
import TestSupport

import Recurrent
import TextCorpus
import Training

// Resume state is validated as a whole: a checkpoint whose optimizer moments or carried state
// are incomplete, extra or of another shape is refused with a typed error, never a trap or a
// silent acceptance.

/// A checkpoint after `steps` training steps, as a decoded file.
private func trainedFile(steps: Int, _ options: TrainingOptions = tinyOptions()) throws -> SafeTensors {
  var session = try tinySession(options)
  for _ in 0..<steps { try session.trainStep() }
  return try SafeTensors(decoding: session.checkpoint().safeTensors().encoded())
}

/// The error a decoded checkpoint is refused with, or nil if it loads.
private func refusal(_ file: SafeTensors) -> CheckpointError? {
  do {
    _ = try Checkpoint(SafeTensors(decoding: file.encoded()))
    return nil
  } catch let error as CheckpointError {
    return error
  } catch {
    Issue.record("untyped error \(error)")
    return nil
  }
}

private func isTrainingState(_ error: CheckpointError?) -> Bool {
  if case .badTrainingState = error { return true }
  return false
}

@Test func incompleteOrInconsistentOptimizerStateIsRefused() throws {
  let good = try trainedFile(steps: 3)
  #expect(refusal(good) == nil)
  // A whole moment slot missing (this trapped on --resume before).
  var noSecond = good
  noSecond.tensors.removeAll { $0.name.hasPrefix("training.optimizer.second.") }
  #expect(isTrainingState(refusal(noSecond)), "\(String(describing: refusal(noSecond)))")
  // One tensor of a moment missing.
  var oneMissing = good
  oneMissing.tensors.removeAll { $0.name == "training.optimizer.first.rnn.weight_hh_l1" }
  #expect(refusal(oneMissing) == .badTrainingState("the first moment lacks rnn.weight_hh_l1"))
  // A moment Adam does not keep.
  var extraSlot = good
  for (name, t) in good.tensors where name.hasPrefix("training.optimizer.first.") {
    extraSlot.tensors.append(("training.optimizer.mean." + name.dropFirst("training.optimizer.first.".count), t))
  }
  #expect(refusal(extraSlot) == .badTrainingState(OptimizerStateError.unexpectedSlot(.mean).description))
  // A moment of another shape.
  var wrongShape = good
  let index = wrongShape.tensors.firstIndex { $0.name == "training.optimizer.second.decoder.bias" }!
  wrongShape.tensors[index].tensor = Tensor(zeros: [2])
  #expect(isTrainingState(refusal(wrongShape)))
  // A step count that is not a number.
  var badSteps = good
  badSteps.metadata["recurrent.optimizer_steps"] = "three"
  #expect(refusal(badSteps) == .badMetadata(key: "recurrent.optimizer_steps", reason: "missing or not a whole number >= 0"))
  // An unknown training tensor.
  var unknown = good
  unknown.tensors.append(("training.scheduler.state", Tensor(zeros: [1])))
  #expect(refusal(unknown) == .unexpectedTensor("training.scheduler.state"))
}

@Test func carriedStateMustMatchWhereTheRunStands() throws {
  let good = try trainedFile(steps: 2)
  // Dropped: the next window would silently start from zeros.
  var dropped = good
  dropped.tensors.removeAll { $0.name.hasPrefix("training.state.") }
  #expect(isTrainingState(refusal(dropped)))
  // The LSTM's cell state alone dropped.
  var noCell = good
  noCell.tensors.removeAll { $0.name == "training.state.cell" }
  #expect(refusal(noCell) == .badTrainingState("the carried cell state is missing"))
  // Another batch size.
  var wrongRows = good
  let index = wrongRows.tensors.firstIndex { $0.name == "training.state.hidden" }!
  wrongRows.tensors[index].tensor = Tensor(zeros: [2, 3, 16])
  #expect(isTrainingState(refusal(wrongRows)))
  // Added to a run that has not trained a window yet.
  var fresh = try trainedFile(steps: 0)
  #expect(refusal(fresh) == nil)
  fresh.tensors.append(("training.state.hidden", Tensor(zeros: [2, 4, 16])))
  #expect(isTrainingState(refusal(fresh)))
}

@Test func versionOneCheckpointsWithTheirZeroUnusedMomentsStillLoad() throws {
  var options = tinyOptions()
  options.optimizer = OptimizerConfiguration(kind: .sgd, learningRate: 0.1)  // keeps no moments
  var old = try trainedFile(steps: 2, options)
  #expect(!old.tensors.contains { $0.name.hasPrefix("training.optimizer.") })
  // Version 1 wrote a zero first and second moment for every parameter whatever the optimizer.
  let parameters = old.tensors.filter { !$0.name.hasPrefix("training.") }
  for slot in ["first", "second"] {
    for (name, t) in parameters {
      old.tensors.append(("training.optimizer.\(slot).\(name)", Tensor(zeros: t.shape)))
    }
  }
  var version2 = old
  old.metadata[CheckpointEnvelope.versionKey] = "1"
  let loaded = try Checkpoint(SafeTensors(decoding: old.encoded()))
  #expect(loaded.optimizer?.slots.isEmpty == true)
  // The same extra moments in a version-2 file are an inconsistency.
  version2.metadata[CheckpointEnvelope.versionKey] = "2"
  #expect(refusal(version2) == .badTrainingState(OptimizerStateError.unexpectedSlot(.first).description))
  // A version-1 moment that is not zero is not the old writer's padding.
  let index = old.tensors.firstIndex { $0.name == "training.optimizer.first.decoder.bias" }!
  old.tensors[index].tensor.scalars[0] = 1
  #expect(isTrainingState(refusal(old)))
}

@Test func aTiedModelKeepsOneEmbeddingAndItsFileSaysSo() throws {
  var options = tinyOptions()
  options.tied = true
  options.embeddingSize = options.hiddenSize
  var session = try tinySession(options)
  try session.trainStep()
  #expect(session.model.decoder.weight.count == 0, "no stale public copy of the embedding")
  let file = try session.checkpoint().safeTensors()
  #expect(file.tensor(named: "decoder.weight") == session.model.encoder.weight, "PyTorch's state_dict has both")
  let loaded = try Checkpoint(SafeTensors(decoding: file.encoded()))
  #expect(loaded.model == session.model)
  var differing = file
  let index = differing.tensors.firstIndex { $0.name == "decoder.weight" }!
  differing.tensors[index].tensor.scalars[0] += 1
  #expect(refusal(differing) != nil)
}

@Test func resumingWithAnOptimizerThatKeepsOtherMomentsIsRefused() throws {
  let saved = try Checkpoint(trainedFile(steps: 2))  // Adam: first and second moments
  let (train, valid) = splitForValidation(sampleText, kind: .char)
  var options = tinyOptions()
  options.optimizer = OptimizerConfiguration(kind: .sgd, learningRate: 0.1)
  #expect(throws: TrainingError.self) {
    try TrainingSession(
      resuming: saved, options: options, trainTokens: try saved.vocabulary.encode(train),
      validTokens: try saved.vocabulary.encode(valid))
  }
  // The same optimizer with another learning rate continues.
  options = tinyOptions()
  options.optimizer.learningRate = 5e-3
  var session = try TrainingSession(
    resuming: saved, options: options, trainTokens: try saved.vocabulary.encode(train),
    validTokens: try saved.vocabulary.encode(valid))
  try session.trainStep()
  #expect(session.optimizer.stepCount == 3)
}
