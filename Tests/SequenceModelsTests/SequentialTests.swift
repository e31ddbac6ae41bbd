import Testing
import TestSupport

import Recurrent
import SequenceModels
import TensorCore

// The Keras-style model API: gradients of whole stacks against finite differences (with
// masks), padded batches against one sequence at a time, and fit/evaluate/predict learning a
// toy problem.

/// Token ids `[N, T]`, right-padded with 0 after each length.
private func paddedIds(_ lengths: [Int], steps T: Int, vocabulary V: Int, using rng: inout SplitMix64) -> Tensor {
  var x = Tensor(zeros: [lengths.count, T])
  for (n, length) in lengths.enumerated() {
    for t in 0..<length { x.scalars[n * T + t] = Float(1 + Int(rng.next() % UInt64(V - 1))) }
  }
  return x
}

private func checkGradient(_ model: Sequential, _ x: Tensor, _ y: Tensor, lengths: [Int]?, _ label: String) throws {
  let (_, gradient) = try model.lossAndGradient(x, y, lengths: lengths)
  let analytic = gradient.namedParameters
  var position = 0
  var probe = model
  var checked = 0
  try probe.forEachParameter { name, tensor in
    let expected = analytic[position].tensor
    position += 1
    let indices = sampleIndices(tensor.count, 5)
    let original = tensor
    var numeric: [Float] = []
    for i in indices {
      var losses: [Double] = []
      for sign in [Float(1), -1] {
        var shifted = model
        var k = 0
        let target = position - 1
        shifted.forEachParameter { _, t in
          if k == target { t.scalars[i] = original.scalars[i] + sign * 1e-2 }
          k += 1
        }
        losses.append(try shifted.lossAndGradient(x, y, lengths: lengths).loss)
      }
      numeric.append(Float((losses[0] - losses[1]) / 2e-2))
    }
    checked += indices.count
    expectClose(indices.map { expected.scalars[$0] }, numeric, rtol: 2e-2, atol: 2e-3, "\(label): \(name)")
  }
  #expect(checked > 20)
}

@Test func sequentialGradientsMatchFiniteDifferences() throws {
  var rng = SplitMix64(seed: 3)
  // Token ids with padding, a bidirectional GRU returning sequences, an LSTM's last step,
  // a softmax head: categorical cross-entropy on class ids.
  var classifier = try Sequential([
    .embedding(7, 3, maskZero: true), .bidirectional(.gru(4, returnSequences: true)), .lstm(3),
    .dense(3, activation: .softmax),
  ], using: &rng)
  classifier.compile(loss: .categoricalCrossEntropy)
  let ids = paddedIds([5, 2, 4], steps: 5, vocabulary: 7, using: &rng)
  try checkGradient(classifier, ids, Tensor(shape: [3], scalars: [0, 2, 1]), lengths: nil, "classifier")

  // Features with explicit lengths, per-step regression (sequence output, padded steps masked).
  var tagger = try Sequential(inputFeatures: 2, [
    .simpleRNN(4, returnSequences: true), .dense(3, activation: .tanh), .dense(1),
  ], using: &rng)
  tagger.compile(loss: .meanSquaredError)
  let x = Tensor(normal: [3, 4, 2], using: &rng)
  try checkGradient(tagger, x, Tensor(normal: [3, 4, 1], using: &rng), lengths: [4, 1, 3], "tagger")

  // Reset-before GRU into a sigmoid head: binary cross-entropy fused with the sigmoid.
  var binary = try Sequential(inputFeatures: 2, [.gru(3, resetAfter: false), .dense(1, activation: .sigmoid)], using: &rng)
  binary.compile(loss: .binaryCrossEntropy)
  try checkGradient(binary, x, Tensor(shape: [3, 1], scalars: [1, 0, 1]), lengths: [2, 4, 3], "binary")

  // The min cells, stacked and bidirectional, with lengths.
  var minimal = try Sequential(inputFeatures: 2, [
    .bidirectional(.minGRU(3, returnSequences: true)), .minLSTM(3), .dense(1),
  ], using: &rng)
  minimal.compile(loss: .meanSquaredError)
  #expect(Sequential.describe(minimal.layers[0]) == "Bidirectional(MinGRU(3, return_sequences))")
  try checkGradient(minimal, x, Tensor(normal: [3, 1], using: &rng), lengths: [4, 2, 3], "min cells")

  // Projected LSTMs (PyTorch's proj_size): the next layer and the head read P-wide states.
  var projected = try Sequential(inputFeatures: 2, [
    .bidirectional(.lstm(5, projection: 2, returnSequences: true)), .lstm(4, projection: 3), .dense(1),
  ], using: &rng)
  projected.compile(loss: .meanSquaredError)
  #expect(Sequential.describe(projected.layers[1]) == "LSTM(4, proj_size=3)")
  // haste's layer-normalised cells.
  var normalized = try Sequential(inputFeatures: 2, [
    .bidirectional(.layerNorm(6, returnSequences: true)), .layerNorm(6, lstm: true), .dense(1),
  ], using: &rng)
  normalized.compile(loss: .meanSquaredError)
  #expect(Sequential.describe(normalized.layers[1]) == "LayerNormLSTM(6)")
  try checkGradient(normalized, x, Tensor(normal: [3, 1], using: &rng), lengths: [4, 2, 3], "layer-norm cells")
  for model in [projected, minimal, normalized] {  // the count a reader bounds a file by is the exact count
    #expect(model.namedParameters.map(\.tensor.count).reduce(0, +) == Sequential.parameterCount(inputFeatures: 2, layers: model.layers))
  }
  try checkGradient(projected, x, Tensor(normal: [3, 1], using: &rng), lengths: [4, 2, 3], "projected LSTMs")
}

@Test func paddedModelBatchEqualsOneSequenceAtATime() throws {
  var rng = SplitMix64(seed: 8)
  var model = try Sequential(inputFeatures: 3, [
    .bidirectional(.lstm(4, returnSequences: true)), .gru(5), .dense(2, activation: .softmax),
  ], using: &rng)
  model.compile(loss: .categoricalCrossEntropy, metrics: [.accuracy])
  let lengths = [6, 2, 4, 1]
  var x = Tensor(normal: [4, 6, 3], using: &rng)
  let y = Tensor(shape: [4], scalars: [1, 0, 0, 1])
  let (loss, gradient) = try model.lossAndGradient(x, y, lengths: lengths)
  let predictions = try model.predict(x, lengths: lengths)
  var meanLoss: Double = 0
  var meanGradient = model.zeroGradient
  for n in 0..<4 {
    let alone = Tensor(shape: [1, lengths[n], 3], scalars: Array(x.scalars[(n * 18)..<(n * 18 + lengths[n] * 3)]))
    let target = Tensor(shape: [1], scalars: [y.scalars[n]])
    let (l, g) = try model.lossAndGradient(alone, target)
    meanLoss += l / 4
    var k = 0
    let parts = g.namedParameters
    meanGradient.forEachParameter { _, t in
      for i in 0..<t.count { t.scalars[i] += parts[k].tensor.scalars[i] / 4 }
      k += 1
    }
    expectClose(Array(predictions.scalars[(n * 2)..<(n * 2 + 2)]), try model.predict(alone).scalars,
      rtol: 1e-5, atol: 1e-6, "prediction \(n)")
  }
  #expect(abs(loss - meanLoss) < 1e-5 * max(1, abs(meanLoss)))
  for (a, b) in zip(gradient.namedParameters, meanGradient.namedParameters) {
    expectClose(a.tensor.scalars, b.tensor.scalars, rtol: 1e-4, atol: 1e-6, a.name)
  }
  // Whatever sits in the padding changes nothing.
  for n in 0..<4 { for i in (lengths[n] * 3)..<18 { x.scalars[n * 18 + i] = 1e3 } }
  #expect(try model.lossAndGradient(x, y, lengths: lengths).loss == loss)
}

@Test func fitLearnsAToyClassificationAndEvaluatePredictAgree() throws {
  // Label: is the first value of the sequence positive? The answer must survive 12 noisy steps.
  var rng = SplitMix64(seed: 11)
  let (N, T) = (384, 12)
  var x = Tensor(normal: [N, T, 1], using: &rng)
  var y = Tensor(zeros: [N, 1])
  for n in 0..<N {
    x.scalars[n * T] = x.scalars[n * T] >= 0 ? 1 + abs(x.scalars[n * T]) : -1 - abs(x.scalars[n * T])
    y.scalars[n] = x.scalars[n * T] > 0 ? 1 : 0
  }
  var model = try Sequential(inputFeatures: 1, [.gru(16), .dense(1, activation: .sigmoid)], using: &rng)
  model.compile(
    loss: .binaryCrossEntropy, optimizer: OptimizerConfiguration(kind: .adam, learningRate: 1e-2),
    metrics: [.binaryAccuracy])
  var batchesSeen = 0
  let history = try model.fit(x, y, epochs: 12, batchSize: 32, validationSplit: 0.25, using: &rng, compute: Compute(threads: 2)) {
    if case .batch = $0 { batchesSeen += 1 }
  }
  #expect(batchesSeen == 12 * 9)
  #expect(history.epochs.count == 12)
  let validation = history["val_binary_accuracy"]
  #expect(validation.count == 12)
  #expect(validation.last! >= 0.95, "validation accuracy \(validation)")
  #expect(history["loss"].last! < history["loss"].first! * 0.5, "loss \(history["loss"])")
  // evaluate on the validation quarter reproduces the last epoch's validation numbers, and
  // predict's probabilities give the same accuracy.
  let tail = Tensor(shape: [96, T, 1], scalars: Array(x.scalars[(288 * T)...]))
  let tailY = Tensor(shape: [96, 1], scalars: Array(y.scalars[288...]))
  let result = try model.evaluate(tail, tailY)
  #expect(abs(result["loss"]! - history["val_loss"].last!) < 1e-6)
  let p = try model.predict(tail)
  #expect(p.shape == [96, 1])
  let hits = (0..<96).filter { (p.scalars[$0] > 0.5) == (tailY.scalars[$0] > 0.5) }.count
  #expect(abs(Double(hits) / 96 - result["binary_accuracy"]!) < 1e-9)
}

@Test func sequentialRejectsStacksAndDataThatCannotWork() throws {
  var rng = SplitMix64(seed: 0)
  #expect(throws: ModelError.self) { try Sequential(inputFeatures: 1, [.gru(4), .gru(4)], using: &rng) }
  #expect(throws: ModelError.self) { try Sequential(inputFeatures: 1, [.dense(2), .embedding(3, 2)], using: &rng) }
  #expect(throws: ModelError.self) { try Sequential([.gru(4)], using: &rng) }
  #expect(throws: ModelError.self) { try Sequential(inputFeatures: 1, [.bidirectional(.dense(2))], using: &rng) }
  #expect(throws: ModelError.self) { try Sequential(inputFeatures: 1, [.dropout(1.5)], using: &rng) }
  #expect(throws: ModelError.invalidModel("layer 0 (LSTM): the projection must be in 1..<3 (the units), got 3")) {
    try Sequential(inputFeatures: 1, [.lstm(3, projection: 3)], using: &rng)
  }
  // Weight drop acts on W_hh, which a min cell has not.
  #expect(throws: ModelError.invalidModel("layer 0 (MinLSTM): weight drop acts on weight_hh, which min-lstm has not")) {
    try Sequential(inputFeatures: 1, [.minLSTM(2)], regularization: Regularization(weightDrop: 0.1), using: &rng)
  }
  var model = try Sequential(inputFeatures: 2, [.lstm(3), .dense(1, activation: .sigmoid)], using: &rng)
  let x = Tensor(zeros: [4, 3, 2])
  #expect(throws: ModelError.self) { try model.fit(x, Tensor(zeros: [4, 1]), using: &rng) }  // not compiled
  model.compile(loss: .binaryCrossEntropy)
  #expect(throws: ModelError.self) { try model.fit(Tensor(zeros: [4, 3, 5]), Tensor(zeros: [4, 1]), using: &rng) }
  #expect(throws: ModelError.self) { try model.fit(x, Tensor(zeros: [3, 1]), using: &rng) }
  #expect(throws: ModelError.self) { try model.fit(x, Tensor(zeros: [4, 2]), using: &rng) }
  #expect(throws: ModelError.self) { try model.fit(x, Tensor(zeros: [4, 1]), lengths: [1, 2, 4, 3], using: &rng) }
  #expect(throws: ModelError.self) { try model.fit(x, Tensor(zeros: [4, 1]), batchSize: 0, using: &rng) }
  var nanX = x
  nanX.scalars[0] = .nan
  // The shared training step's NaN policy: stop before updating, naming the batch.
  let before = model.parts
  #expect(throws: TrainingError.diverged(at: "epoch 1, batch 1")) { try model.fit(nanX, Tensor(zeros: [4, 1]), using: &rng) }
  #expect(model.parts == before, "no update was made")
  var relu = try Sequential(inputFeatures: 2, [.lstm(3), .dense(1, activation: .relu)], using: &rng)
  relu.compile(loss: .binaryCrossEntropy)
  #expect(throws: ModelError.self) { try relu.fit(x, Tensor(zeros: [4, 1]), using: &rng) }
  var text = try Sequential([.embedding(5, 2), .gru(2), .dense(3, activation: .softmax)], using: &rng)
  text.compile(loss: .categoricalCrossEntropy)
  #expect(throws: ModelError.self) { try text.fit(Tensor(shape: [1, 2], scalars: [1, 5]), Tensor(zeros: [1]), using: &rng) }
  #expect(throws: ModelError.self) { try text.fit(Tensor(shape: [1, 2], scalars: [1, 2]), Tensor(shape: [1], scalars: [3]), using: &rng) }
}

@Test func sequentialStepsThroughTheSharedTrainingStep() throws {
  var rng = SplitMix64(seed: 12)
  var model = try Sequential(
    inputFeatures: 2, [.bidirectional(.gru(3, returnSequences: true)), .lstm(2), .dense(1, activation: .sigmoid)],
    using: &rng)
  model.compile(loss: .binaryCrossEntropy, onNaN: .skip)
  let x = Tensor(normal: [4, 3, 2], using: &rng)
  let y = Tensor(shape: [4, 1], scalars: [1, 0, 1, 0])
  // Backward reports every layer's parameters once, from the output layer down.
  var reports: [(Range<Int>, [Tensor])] = []
  let (_, gradient) = try model.lossAndGradient(x, y) { range, tensors in reports.append((range, tensors)) }
  let final = gradient.namedParameters
  #expect(reports.map(\.0.lowerBound) == [12, 8, 0])  // dense, LSTM, bidirectional GRU
  #expect(reports.flatMap { Array($0.0) }.sorted() == Array(0..<final.count))
  for (range, tensors) in reports {
    #expect(tensors == range.map { final[$0].tensor }, "final when reported")
  }
  // With onNaN: .skip, a batch with a NaN input changes nothing and training goes on.
  var nanX = x
  nanX.scalars[3] = .nan
  let before = model.parts
  let result = try model.trainOnBatch(nanX, y, using: &rng)
  #expect(result["loss"]!.isNaN)
  #expect(model.parts == before)
  #expect(model.compiled?.trainer.skippedSteps == 1)
  _ = try model.trainOnBatch(x, y, using: &rng)
  #expect(model.parts != before)
}

@Test func sequentialDrawsKerasInitialisationAndTheForgetBias() throws {
  var rng = SplitMix64(seed: 12)
  let model = try Sequential(
    inputFeatures: 3, [.lstm(8, returnSequences: true), .gru(5), .dense(1)], initialization: .keras, forgetBias: 1,
    using: &rng)
  var recurrent: [RecurrentLayer] = []
  for part in model.parts {
    if case .recurrent(let layer, _) = part { recurrent.append(layer) }
  }
  #expect(recurrent.count == 2)
  let lstm = recurrent[0].weights[0]
  #expect(Array(lstm.biasIH.scalars[8..<16]) == [Float](repeating: 1, count: 8))  // the forget block
  #expect(lstm.biasIH.scalars.enumerated().allSatisfy { $0.offset >= 8 && $0.offset < 16 || $0.element == 0 })
  #expect(lstm.biasHH.scalars.allSatisfy { $0 == 0 })
  // The GRU after it: no forget gate, zero biases, orthonormal recurrent columns.
  let gru = recurrent[1].weights[0]
  #expect(gru.biasIH.scalars.allSatisfy { $0 == 0 })
  let gram = gru.weightHH.matmul(gru.weightHH, transposeSelf: true)
  for i in 0..<5 {
    for j in 0..<5 { #expect(abs(gram.scalars[i * 5 + j] - (i == j ? 1 : 0)) < 1e-5) }
  }
}

@Test func sequentialRegularizerGradientsMatchFiniteDifferencesAndZoneoutSurvivesACheckpoint() throws {
  var rng = SplitMix64(seed: 14)
  let r = Regularization(
    embeddingDropout: 0.3, lockedDropout: 0.3, weightDrop: 0.3, zoneout: 0.3, activation: 2, temporalActivation: 1)
  var model = try Sequential(
    [.embedding(7, 3, maskZero: true), .gru(4, returnSequences: true), .lstm(3, returnSequences: true), .dense(2)],
    regularization: r, using: &rng)
  model.compile(loss: .meanSquaredError)
  let lengths = [5, 3, 4]
  let x = paddedIds(lengths, steps: 5, vocabulary: 7, using: &rng)
  let y = Tensor(normal: [3, 5, 2], using: &rng)
  try checkGradient(model, x, y, lengths: nil, "every regularizer at 0.3, AR 2, TAR 1")
  // The penalty is part of the loss lossAndGradient returns, and the masks are fixed: twice the same.
  var plain = try Sequential(
    [.embedding(7, 3, maskZero: true), .gru(4, returnSequences: true), .lstm(3, returnSequences: true), .dense(2)],
    using: &rng)
  plain.parts = model.parts
  plain.compile(loss: .meanSquaredError)
  #expect(try model.lossAndGradient(x, y).loss == model.lossAndGradient(x, y).loss)
  #expect(try model.lossAndGradient(x, y).loss != plain.lossAndGradient(x, y).loss)
  // Only zoneout acts at inference, and a checkpoint keeps it.
  let folder = temporaryFolder("regularized")
  try SequentialCheckpoint.save(model, to: folder + "/m.safetensors")
  let loaded = try SequentialCheckpoint.load(from: folder + "/m.safetensors").model
  #expect(loaded.regularization == r)
  #expect(try loaded.predict(x) == model.predict(x))
  var unzoned = model.parts
  for i in unzoned.indices {
    if case .recurrent(var layer, let s) = unzoned[i] {
      layer.zoneout = 0
      unzoned[i] = .recurrent(layer, returnSequences: s)
    }
  }
  plain.parts = unzoned
  #expect(try plain.predict(x) != model.predict(x))
}
