import Testing
import TestSupport

import Recurrent
import SequenceModels
import RecurrentExamples

// The README's Sequential example, as printed there (data from Examples/BinaryClassifier.swift),
// so the snippet compiles and does what the README says.
@Test func readmeSequentialExampleCompilesAndLearns() throws {
  var events = 0
  // --- README begins (print replaced by counting) ---
  var rng = SplitMix64(seed: 1)
  let (x, y) = BinaryClassifierExample.data(samples: 512, steps: 24, using: &rng)
  let (testX, testY) = BinaryClassifierExample.data(samples: 128, steps: 24, using: &rng)
  var model = try Sequential(inputFeatures: 1, [
    .gru(128, returnSequences: true), .gru(128, returnSequences: true), .gru(128),
    .dense(64, activation: .relu), .dense(32, activation: .relu), .dense(1, activation: .sigmoid),
  ], using: &rng)
  model.compile(loss: .binaryCrossEntropy, optimizer: .init(kind: .adam, learningRate: 1e-3), metrics: [.binaryAccuracy])
  let history = try model.fit(x, y, epochs: 8, batchSize: 32, validationSplit: 0.1, using: &rng) { _ in events += 1 }
  print(history["val_binary_accuracy"], try model.evaluate(testX, testY))
  let probabilities = try model.predict(testX)  // [N, 1]
  // --- README ends ---
  #expect(events > 8)
  #expect(history["val_binary_accuracy"].count == 8)
  let scores = try model.evaluate(testX, testY)
  #expect(scores["binary_accuracy"]! >= 0.9, "\(scores)")
  #expect(probabilities.shape == [128, 1])
}
