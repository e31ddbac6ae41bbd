import Testing
import TestSupport

import Recurrent
import TensorCore

// The regularizers of issue 17 (weight drop, locked and embedding dropout, zoneout, AR, TAR):
// exactly the identity at rate 0, the right expectation at inference, and gradients that agree
// with finite differences for a fixed mask (the same seed draws the same masks every call).

private let tolerance = (rtol: Float(1e-2), atol: Float(2e-3))

/// A layer-sized copy of `layer` with every regularizer at `rate` (weight drop, locked
/// dropout, zoneout).
private func regularized(_ layer: RecurrentLayer, _ rate: Float) -> RecurrentLayer {
  var l = layer
  (l.weightDrop, l.lockedDropout, l.zoneout) = (rate, rate, rate)
  return l
}

@Test(arguments: CellKind.allCases)
func layerRegularizersAtRateZeroAreTheIdentity(kind: CellKind) {
  var rng = SplitMix64(seed: 5)
  let layer = RecurrentLayer(kind: kind, inputSize: 3, hiddenSize: 5, layerCount: 2, bidirectional: true, using: &rng)
  let x = Tensor(normal: [4, 3, 3], using: &rng)
  var a = SplitMix64(seed: 9)
  var b = SplitMix64(seed: 9)
  let plain = layer.forward(x, training: true, using: &a)
  let zero = regularized(layer, 0).forward(x, training: true, using: &b)
  #expect(plain.output == zero.output && plain.state == zero.state)
  #expect(a.state == b.state, "rate 0 draws no mask")
  // In training at rate 0 the layer is what inference computes.
  #expect(layer(x).output == zero.output)
}

@Test(arguments: CellKind.allCases)
func weightDropAndLockedDropoutVanishAtInferenceAndZoneoutTakesItsExpectation(kind: CellKind) {
  var rng = SplitMix64(seed: 6)
  let layer = RecurrentLayer(kind: kind, inputSize: 3, hiddenSize: 4, using: &rng)
  let (T, B, H) = (3, 2, 4)
  let x = Tensor(normal: [T, B, 3], using: &rng)
  let h0 = Tensor(normal: [1, B, H], using: &rng)
  let c0 = kind.hasCellState ? Tensor(normal: [1, B, H], using: &rng) : nil
  let start = RecurrentState(hidden: h0, cell: c0)
  var dropped = layer
  (dropped.weightDrop, dropped.lockedDropout) = (0.5, 0.4)
  #expect(dropped(x, initialState: start).output == layer(x, initialState: start).output)
  // Zoneout at inference: h_t = p·h_{t-1} + (1-p)·cell(x_t, h_{t-1}), step by step.
  let p: Float = 0.3
  var zoned = layer
  zoned.zoneout = p
  let whole = zoned(x, initialState: start).output
  var state = start
  for t in 0..<T {
    let xt = Tensor(shape: [1, B, 3], scalars: Array(x.scalars[(t * B * 3)..<((t + 1) * B * 3)]))
    let (_, fresh) = layer(xt, initialState: state)
    var h = fresh.hidden
    for i in 0..<h.count { h.scalars[i] = p * state.hidden.scalars[i] + (1 - p) * fresh.hidden.scalars[i] }
    state = RecurrentState(hidden: h, cell: fresh.cell)
    #expect(Array(whole.scalars[(t * B * H)..<((t + 1) * B * H)]) == h.scalars, "\(kind) step \(t)")
  }
  // In training one step's h is d·h0 + (1-d)·h_new with d ~ Bernoulli(p): its mean over many
  // masks approaches the inference value.
  let x1 = Tensor(shape: [1, B, 3], scalars: Array(x.scalars[0..<(B * 3)]))
  let inference = zoned(x1, initialState: start).output
  var mean = [Double](repeating: 0, count: B * H)
  let draws = 4000
  var masks = SplitMix64(seed: 11)
  var kept = 0
  let fresh = layer(x1, initialState: start).output
  for _ in 0..<draws {
    let out = zoned.forward(x1, initialState: start, training: true, using: &masks).output
    for i in 0..<(B * H) {
      mean[i] += Double(out.scalars[i]) / Double(draws)
      if out.scalars[i] == h0.scalars[i] && out.scalars[i] != fresh.scalars[i] { kept += 1 }
    }
  }
  let share = Double(kept) / Double(draws * B * H)
  #expect(abs(share - Double(p)) < 0.02, "\(kind): units kept their value \(share) of the time, expected \(p)")
  for i in 0..<(B * H) {
    let spread = abs(Double(h0.scalars[i] - fresh.scalars[i]))
    #expect(abs(mean[i] - Double(inference.scalars[i])) <= 0.05 * spread + 1e-6, "\(kind) unit \(i)")
  }
}

@Test func lockedDropoutKeepsOneMaskPerSequenceForAllSteps() {
  let (T, B, W) = (5, 3, 200)
  var rng = SplitMix64(seed: 2)
  let ones = Tensor(shape: [T, B, W], scalars: [Float](repeating: 1, count: T * B * W))
  let (out, mask) = Dropout(probability: 0.25, locked: true).forward(ones, training: true, using: &rng)
  #expect(mask != nil)
  for t in 1..<T {
    #expect(Array(out.scalars[(t * B * W)..<((t + 1) * B * W)]) == Array(out.scalars[0..<(B * W)]), "step \(t)")
  }
  let first = Array(out.scalars[0..<(B * W)])
  #expect(Set(first) == [0, 1 / Float(0.75)])
  let zeros = first.filter { $0 == 0 }.count
  #expect(abs(Double(zeros) / Double(B * W) - 0.25) < 0.06)
  #expect(Array(first[0..<W]) != Array(first[W..<(2 * W)]), "rows draw their own masks")
  #expect(Dropout(probability: 0.25, locked: true).forward(ones, training: false, using: &rng).output == ones)
}

@Test(arguments: CellKind.allCases)
func layerRegularizerGradientsMatchFiniteDifferences(kind: CellKind) {
  var rng = SplitMix64(seed: 8)
  let (T, B, I, H) = (4, 3, 3, 4)
  let layer = regularized(
    RecurrentLayer(kind: kind, inputSize: I, hiddenSize: H, layerCount: 2, bidirectional: true, using: &rng), 0.4)
  let D = 2
  let x = Tensor(normal: [T, B, I], using: &rng)
  let lengths = [4, 2, 3]
  let wOut = Tensor(normal: [T, B, D * H], using: &rng)
  let wH = Tensor(normal: [2 * D, B, H], using: &rng)
  func loss(_ l: RecurrentLayer, _ x: Tensor) -> Double {
    var masks = SplitMix64(seed: 99)
    let (out, state, _) = l.forward(x, lengths: lengths, training: true, using: &masks)
    return projection(out, wOut) + projection(state.hidden, wH)
  }
  var masks = SplitMix64(seed: 99)
  let (_, _, trace) = layer.forward(x, lengths: lengths, training: true, using: &masks)
  var gradient = layer.zeroGradient
  let (dx, _) = layer.backward(
    trace, outputGradient: wOut, stateGradient: RecurrentState(hidden: wH, cell: kind.hasCellState ? Tensor(zeros: wH.shape) : nil),
    into: &gradient)
  let label = "\(kind) with weight drop, locked dropout and zoneout 0.4"
  // ReLU's kinks: an entry counts where differences at two step sizes agree (see FiniteDifferenceTests).
  var skipped = 0
  func check(_ analytic: [Float], _ of: Tensor, _ indices: [Int], _ what: String, _ f: (Tensor) -> Double) {
    skipped += expectCloseWhereSmooth(
      analytic, of: of, indices: indices, rtol: tolerance.rtol, atol: tolerance.atol, "\(label): \(what)",
      agreement: kinkAgreement(kind), loss: f)
  }
  let xi = sampleIndices(x.count, 10)
  check(xi.map { dx.scalars[$0] }, x, xi, "dx") { loss(layer, $0) }
  forEachParameterGradient(of: layer, gradient: gradient, samples: 8, check) { loss($0, x) }
  #expect(hasKinks(kind) || skipped == 0, "\(label): \(skipped) entries not smooth")
  // Weight drop: a dropped recurrent weight gets no gradient at all (the min cells have no W_hh).
  let whh = gradient.weights[0].weightHH
  #expect(!kind.hasRecurrentWeights || whh.scalars.contains(0), "\(label): some W_hh entries are dropped")
}

/// A tiny language model with `regularization`.
private func model(_ kind: CellKind, _ regularization: Regularization, seed: UInt64 = 4, projection: Int = 0) -> LanguageModel {
  var rng = SplitMix64(seed: seed)
  var c = LanguageModelConfiguration(cell: kind, layers: 2, hiddenSize: 5, embeddingSize: 4, vocabularySize: 9)
  c.regularization = regularization
  c.projectionSize = projection
  return LanguageModel(c, using: &rng)
}

/// The language model with every regularizer on, for a GRU, an LSTM and a projected LSTM (P = 3:
/// the decoder, AR/TAR and the locked masks then see 3-wide states).
@Test(arguments: [(CellKind.gru, 0), (.lstm, 0), (.lstm, 3)])
func languageModelRegularizerGradientsMatchFiniteDifferences(kind: CellKind, projection: Int) {
  let r = Regularization(
    embeddingDropout: 0.3, lockedDropout: 0.3, weightDrop: 0.3, zoneout: 0.3, activation: 2, temporalActivation: 1)
  var m = model(kind, r, projection: projection)
  let (T, B) = (4, 3)
  let ids = (0..<(T * B)).map { ($0 * 7 + 3) % 9 }
  let targets = (0..<(T * B)).map { ($0 * 5 + 1) % 9 }
  func loss(_ m: LanguageModel) -> (Double, LanguageModelTrace, Tensor) {
    var masks = SplitMix64(seed: 21)
    let (logits, _, trace) = m.forward(ids: ids, sequenceLength: T, batchSize: B, training: true, using: &masks)
    let (ce, d) = Loss.softmaxCrossEntropy(logits: logits, targets: targets)
    return (Double(ce) + Double(trace.regularizationLoss), trace, d)
  }
  let (_, trace, dLogits) = loss(m)
  #expect(trace.regularizationLoss > 0)
  var gradient = m.zeroGradient
  m.backward(trace, logitsGradient: dLogits, into: &gradient)
  let analytic = gradient.namedParameters
  var position = 0
  let copy = m
  var checked = 0
  m.forEachParameter { name, tensor in
    let expected = analytic[position].tensor
    position += 1
    let indices = sampleIndices(tensor.count, 8)
    let numeric = numericGradient(of: tensor, indices: indices, epsilon: 5e-3) { perturbed in
      var probe = copy
      probe.forEachParameter { n, t in if n == name { t = perturbed } }
      return loss(probe).0
    }
    checked += indices.count
    expectClose(indices.map { expected.scalars[$0] }, numeric, rtol: tolerance.rtol, atol: tolerance.atol, "\(kind): \(name)")
  }
  #expect(checked > 50)
}

@Test func languageModelRegularizersAtZeroAreTheIdentityAndOnlyZoneoutActsAtInference() {
  let ids = (0..<12).map { ($0 * 7 + 3) % 9 }
  let base = model(.lstm, Regularization())
  var a = SplitMix64(seed: 3)
  var b = SplitMix64(seed: 3)
  let zero = model(.lstm, Regularization(embeddingDropout: 0, lockedDropout: 0, weightDrop: 0, zoneout: 0, activation: 0, temporalActivation: 0))
  let x = base.forward(ids: ids, sequenceLength: 4, batchSize: 3, training: true, using: &a)
  let y = zero.forward(ids: ids, sequenceLength: 4, batchSize: 3, training: true, using: &b)
  #expect(x.logits == y.logits && y.trace.regularizationLoss == 0 && a.state == b.state)
  #expect(base.logits(ids: ids, sequenceLength: 4, batchSize: 3).logits == x.logits)
  // Training-only regularizers leave inference alone; zoneout changes it.
  let training = model(.lstm, Regularization(embeddingDropout: 0.5, lockedDropout: 0.5, weightDrop: 0.5, activation: 3, temporalActivation: 3))
  #expect(training.logits(ids: ids, sequenceLength: 4, batchSize: 3).logits == x.logits)
  let zoned = model(.lstm, Regularization(zoneout: 0.5))
  #expect(zoned.logits(ids: ids, sequenceLength: 4, batchSize: 3).logits != x.logits)
}

@Test(arguments: CellKind.allCases)
func theStepperAppliesZoneoutAsTheLayerDoesAtInference(kind: CellKind) {
  let m = model(kind, Regularization(zoneout: 0.35), seed: 12)
  let stream = (0..<10).map { ($0 * 4 + 1) % 9 }
  let whole = m.logits(ids: stream, sequenceLength: stream.count, batchSize: 1).logits
  let stepper = LanguageModelStepper(m)
  for (t, token) in stream.enumerated() {
    let step = Array(stepper.step(token))
    expectClose(step, Array(whole.scalars[(t * 9)..<((t + 1) * 9)]), rtol: 1e-5, atol: 1e-6, "\(kind) step \(t)")
  }
}
