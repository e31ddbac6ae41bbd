import Formats
import Foundation
import Testing

import Recurrent
import SequenceModels
import TestSupport

@Test func pretrainedEmbeddingsStayFrozenOrTrainAsAsked() throws {
  let folder = temporaryFolder()
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let glove = folder + "/glove.txt"
  try Data("the 0.1 0.2 0.3\ncat -1 0.5 2\nsat 3 2 1\nmat 0 0 1\n".utf8).write(to: URL(fileURLWithPath: glove))
  let vocabulary = ["<pad>", "cat", "dog", "the", "mat"]
  var rng = SplitMix64(seed: 4)
  // Frozen vectors stay as loaded through training; trainable ones move.
  let vectors = try WordVectors.load(path: glove, vocabulary: vocabulary, keepZero: [0], using: &rng)
  let x = Tensor(shape: [2, 3], scalars: [1, 3, 4, 2, 1, 0])
  let y = Tensor(shape: [2, 1], scalars: [1, 0])
  for trainable in [false, true] {
    var model = try Sequential([
      .embedding(5, 3, maskZero: true, trainable: trainable), .gru(4), .dense(1, activation: .sigmoid),
    ], using: &rng)
    model.embeddingWeight = vectors.weight
    model.compile(loss: .binaryCrossEntropy, optimizer: OptimizerConfiguration(kind: .adam, learningRate: 0.1))
    let before = model.parts.last!
    try model.fit(x, y, epochs: 3, batchSize: 2, using: &rng)
    #expect((model.embeddingWeight == vectors.weight) == !trainable, "trainable \(trainable)")
    #expect(model.parts.last! != before)
  }
}
