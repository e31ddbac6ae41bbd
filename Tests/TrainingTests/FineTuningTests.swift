import Foundation
import Testing
import TestSupport

import Recurrent
import TextCorpus
import Training

// Fine-tuning (--init-from): a new run from a checkpoint's weights; tokens new to its vocabulary
// get fresh rows, old rows are untouched; on a text it never saw it reaches a validation loss in
// fewer steps than training from scratch.

private let bundled = bundledCorpus()

private func options(steps: Int) -> TrainingOptions {
  var o = TrainingOptions()
  o.cell = .gru
  o.layers = 1
  o.hiddenSize = 64
  o.embeddingSize = 16
  o.batchSize = 16
  o.sequenceLength = 32
  o.threads = 1
  o.evalEvery = 0
  o.sampleEvery = 0
  o.steps = steps
  o.schedule = .constant
  o.optimizer = OptimizerConfiguration(kind: .adam, learningRate: 5e-3)
  return o
}

@Test func fineTuningStartsFromTheWeightsAndLearnsANewTextFaster() throws {
  let scalars = Array(try readText(path: bundled).unicodeScalars)
  func text(_ range: Range<Int>) -> String { String(String.UnicodeScalarView(scalars[range])) }
  // Pretrain on the first 200k characters.
  let a = text(0..<200_000)
  let (aTrain, aValid) = splitForValidation(a, kind: .char)
  let aVocabulary = Vocabulary.characters(of: [aTrain, aValid])
  var pretraining = try TrainingSession(
    options: options(steps: 400), vocabulary: aVocabulary, trainTokens: try aVocabulary.encode(aTrain),
    validTokens: try aVocabulary.encode(aValid))
  try pretraining.run(checkpointPath: nil) { _ in }
  let pretrained = pretraining.model
  // A text it never saw, with a character it never saw.
  let b = text(600_000..<700_000).replacingOccurrences(of: "KING", with: "K§NG")
  let (bTrain, bValid) = splitForValidation(b, kind: .char)
  let bVocabulary = aVocabulary.extended(with: [bTrain, bValid])
  #expect(bVocabulary.tokens.starts(with: aVocabulary.tokens) && bVocabulary.tokens.contains("§"))
  #expect(bVocabulary.count > aVocabulary.count)
  func session(_ initial: LanguageModel?) throws -> TrainingSession {
    try TrainingSession(
      options: options(steps: 0), vocabulary: bVocabulary, trainTokens: try bVocabulary.encode(bTrain),
      validTokens: try bVocabulary.encode(bValid), initialModel: initial)
  }
  var tuned = try session(pretrained)
  var scratch = try session(nil)
  // Old rows are the pretrained ones; every recurrent weight too.
  let (V, E) = (aVocabulary.count, 16)
  #expect(Array(tuned.model.encoder.weight.scalars[0..<(V * E)]) == pretrained.encoder.weight.scalars)
  #expect(tuned.model.rnn.weights == pretrained.rnn.weights)
  #expect(Array(tuned.model.decoder.bias!.scalars[0..<V]) == pretrained.decoder.bias!.scalars)
  #expect(tuned.optimizer.stepCount == 0 && tuned.step == 0)
  // Steps to reach what scratch reaches after 200 steps.
  var scratchLosses: [Double] = []
  var tunedLosses: [Double] = []
  for _ in 0..<8 {
    for _ in 0..<25 {
      try scratch.trainStep()
      try tuned.trainStep()
    }
    scratchLosses.append(scratch.evaluate().natsPerToken)
    tunedLosses.append(tuned.evaluate().natsPerToken)
  }
  let target = scratchLosses.last!
  let reached = try #require(tunedLosses.firstIndex { $0 <= target }, "\(tunedLosses) vs \(scratchLosses)")
  #expect((reached + 1) * 25 < 200, "fine-tuned reached \(target) at step \((reached + 1) * 25)")
}
