import Testing
import TestSupport

import Recurrent

// The one training step: the NaN policy covers the gradient as well as the loss, the hooks
// run where the issue of gradient averaging needs them, and the optimizer keeps exactly the
// state its configuration uses.

private func vector(_ values: [Float]) -> Vector { Vector(value: Tensor(shape: [values.count], scalars: values)) }

@Test(arguments: [Float(1), nil])
func anInfiniteGradientWithAFiniteLossNeverReachesTheWeights(clip: Float?) throws {
  let start = vector([1, 2, 3])
  for policy in NaNPolicy.allCases {
    var model = start
    var step = TrainingStep(
      optimizer: Optimizer(OptimizerConfiguration(kind: .sgd, learningRate: 0.1)), clipNorm: clip, onNaN: policy)
    let run = {
      try step.run(&model, place: "step 7") { _, gradient, _ in
        gradient.value.scalars = [0.5, .infinity, 0.5]
        return 1.25  // a finite loss
      }
    }
    if policy == .stop {
      #expect(throws: TrainingError.diverged(at: "step 7")) { _ = try run() }
    } else {
      let report = try run()
      #expect(!report.updated && report.loss == 1.25 && !report.gradientNorm.isFinite)
    }
    #expect(model.value == start.value, "\(policy), clip \(String(describing: clip)): weights unchanged")
    #expect(step.skippedSteps == 1)
    #expect(step.optimizer.stepCount == 0)
  }
}

@Test func beforeUpdateSeesTheRawGradientAndRunsBeforeClipping() throws {
  var model = vector([0, 0])
  var step = TrainingStep(optimizer: Optimizer(OptimizerConfiguration(kind: .sgd, learningRate: 1)), clipNorm: 6)
  var seen: [Float] = []
  // Averaging over "two processes": the hook halves a gradient of norm 10 to norm 5, which the
  // clip (6) then leaves alone; clipping first would have given norm 3.
  let hooks = StepHooks<Vector>(beforeUpdate: { gradient in
    seen = gradient.value.scalars
    gradient.value.scalars = gradient.value.scalars.map { $0 / 2 }
  })
  let report = try step.run(&model, place: "step 1", hooks: hooks) { _, gradient, _ in
    gradient.value.scalars = [6, 8]
    return 0
  }
  #expect(seen == [6, 8])
  #expect(report.gradientNorm == 5)
  #expect(model.value.scalars == [-3, -4])
}

@Test(arguments: [false, true])
func languageModelBackwardReportsEachLayersFinalGradientOnce(tied: Bool) {
  var rng = SplitMix64(seed: 5)
  let model = LanguageModel(
    LanguageModelConfiguration(
      cell: .lstm, layers: 3, hiddenSize: 6, embeddingSize: 6, vocabularySize: 7, dropout: 0.1, tied: tied),
    using: &rng)
  let (T, B) = (4, 2)
  let ids = (0..<(T * B)).map { $0 % 7 }
  let (logits, _, trace) = model.forward(ids: ids, sequenceLength: T, batchSize: B, training: true, using: &rng)
  let (_, dLogits) = Loss.softmaxCrossEntropy(logits: logits, targets: ids.map { ($0 + 1) % 7 })
  var gradient = model.zeroGradient
  var reports: [(Range<Int>, [Tensor])] = []
  model.backward(trace, logitsGradient: dLogits, into: &gradient) { range, tensors in reports.append((range, tensors)) }
  let final = gradient.namedParameters
  // Decoder first, then layers 2, 1, 0, then the embedding: each parameter once.
  #expect(reports.map(\.0.lowerBound) == [13, 9, 5, 1, 0])
  #expect(reports.flatMap { Array($0.0) }.sorted() == Array(0..<final.count))
  for (range, tensors) in reports {
    #expect(tensors.count == range.count)
    for (i, t) in zip(range, tensors) where final[i].name != "encoder.weight" {
      #expect(t == final[i].tensor, "\(final[i].name) was final when reported")
    }
  }
  // The embedding's gradient (which a tied decoder adds into) is reported last, complete.
  #expect(reports.last!.1 == [final[0].tensor])
}

@Test func optimizersKeepExactlyTheStateTheirConfigurationUses() throws {
  let gradient = vector([0.5, -1, 2])
  var cases: [(OptimizerConfiguration, Set<OptimizerSlot>)] = []
  cases.append((OptimizerConfiguration(kind: .sgd, learningRate: 0.1), []))
  var momentum = OptimizerConfiguration(kind: .sgd, learningRate: 0.1)
  momentum.momentum = 0.9
  cases.append((momentum, [.first]))
  var rmsprop = OptimizerConfiguration(kind: .rmsprop, learningRate: 0.1)
  cases.append((rmsprop, [.second]))
  rmsprop.momentum = 0.5
  rmsprop.centered = true
  cases.append((rmsprop, [.first, .second, .mean]))
  cases.append((OptimizerConfiguration(kind: .adamw, learningRate: 0.1), [.first, .second]))
  for (configuration, slots) in cases {
    var optimizer = Optimizer(configuration)
    var model = vector([1, 1, 1])
    optimizer.update(&model, along: gradient)
    #expect(Set(optimizer.slots.keys) == slots, "\(configuration.kind)")
    #expect(Set(configuration.slotNames) == slots)
    // Restoring: exactly these slots, one tensor per parameter of the parameter's shape.
    let parameters = [(name: "value", shape: [3])]
    let restored = try Optimizer(configuration, stepCount: 1, slots: optimizer.slots, parameters: parameters)
    var a = model
    var b = model
    var original = optimizer
    var copy = restored
    original.update(&a, along: gradient)
    copy.update(&b, along: gradient)
    #expect(a.value == b.value, "\(configuration.kind): a restored optimizer continues identically")
    for slot in slots {
      var missing = optimizer.slots
      missing[slot] = nil
      #expect(throws: OptimizerStateError.missingSlot(slot)) {
        try Optimizer(configuration, stepCount: 1, slots: missing, parameters: parameters)
      }
      var wrong = optimizer.slots
      wrong[slot] = [Tensor(zeros: [2])]
      #expect(throws: OptimizerStateError.shape(slot: slot, parameter: "value", expected: [3], found: [2])) {
        try Optimizer(configuration, stepCount: 1, slots: wrong, parameters: parameters)
      }
    }
    for extra in Set(OptimizerSlot.allCases).subtracting(slots) {
      var more = optimizer.slots
      more[extra] = [Tensor(zeros: [3])]
      #expect(throws: OptimizerStateError.unexpectedSlot(extra)) {
        try Optimizer(configuration, stepCount: 1, slots: more, parameters: parameters)
      }
    }
  }
}

/// The README's shared-step snippet, as printed there, trains a layer.
@Test func readmeTrainingStepSnippetTrainsALayer() throws {
  var rng = SplitMix64(seed: 0)
  var gru = RecurrentLayer(kind: .gru, inputSize: 8, hiddenSize: 16, using: &rng)
  let x = Tensor(normal: [10, 4, 8], using: &rng)
  let target = Tensor(uniform: [10, 4, 16], low: -0.5, high: 0.5, using: &rng)
  var losses: [Float] = []
  // --- README begins ---
  var step = TrainingStep(optimizer: Optimizer(.init(kind: .adam, learningRate: 1e-3)), clipNorm: 1)
  try step.run(&gru, place: "step 1") { gru, gradient, _ in
    let (out, _, trace) = gru.forward(x, training: true, using: &rng)
    let (loss, dOut) = Loss.meanSquaredError(out, target)
    _ = gru.backward(trace, outputGradient: dOut, into: &gradient)
    return loss
  }
  // --- README ends ---
  for i in 2...200 {
    let report = try step.run(&gru, place: "step \(i)") { gru, gradient, _ in
      let (out, _, trace) = gru.forward(x, training: true, using: &rng)
      let (loss, dOut) = Loss.meanSquaredError(out, target)
      _ = gru.backward(trace, outputGradient: dOut, into: &gradient)
      return loss
    }
    losses.append(report.loss)
  }
  #expect(losses.last! < 0.5 * losses.first!, "\(losses.first!) -> \(losses.last!)")
}

@Test func aTiedDecodersGradientIsTheUntiedDecodersAddedIntoTheEmbeddings() {
  // The tied model's embedding gradient is the untied model's embedding gradient plus its
  // decoder-weight gradient, when the untied decoder holds the embedding's weights.
  var rng = SplitMix64(seed: 8)
  let configuration = LanguageModelConfiguration(
    cell: .gru, layers: 2, hiddenSize: 6, embeddingSize: 6, vocabularySize: 9, tied: true)
  let tied = LanguageModel(configuration, using: &rng)
  var untiedConfiguration = configuration
  untiedConfiguration.tied = false
  var untied = LanguageModel(untiedConfiguration, using: &rng)
  untied.encoder = tied.encoder
  untied.rnn = tied.rnn
  untied.decoder.weight = tied.encoder.weight
  untied.decoder.bias = tied.decoder.bias
  let (T, B) = (5, 3)
  let ids = (0..<(T * B)).map { ($0 * 4 + 1) % 9 }
  var gradients: [LanguageModel] = []
  for model in [tied, untied] {
    var unused = SplitMix64(seed: 0)
    let (logits, _, trace) = model.forward(ids: ids, sequenceLength: T, batchSize: B, training: true, using: &unused)
    let (_, dLogits) = Loss.softmaxCrossEntropy(logits: logits, targets: ids.map { ($0 + 2) % 9 })
    var gradient = model.zeroGradient
    model.backward(trace, logitsGradient: dLogits, into: &gradient)
    gradients.append(gradient)
  }
  let expected = zip(gradients[1].encoder.weight.scalars, gradients[1].decoder.weight.scalars).map { $0 + $1 }
  expectClose(gradients[0].encoder.weight.scalars, expected, rtol: 1e-6, atol: 1e-7, "encoder.weight")
  #expect(gradients[0].decoder.weight.count == 0)  // no second copy in the tied gradient
  #expect(gradients[0].decoder.bias == gradients[1].decoder.bias)
}
