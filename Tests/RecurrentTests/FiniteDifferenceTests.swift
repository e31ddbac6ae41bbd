import Testing
import TestSupport

import Recurrent
import TensorCore

// Every layer's and loss's backward against central finite differences, on tiny sizes.
// Losses are random projections of all outputs, summed in Double.

private let fdTolerance = (rtol: Float(1e-2), atol: Float(2e-3))

@Test(arguments: CellKind.allCases)
func recurrentLayerBackwardMatchesFiniteDifferences(kind: CellKind) {
  for (layers, bidirectional, dropout) in [(1, false, Float(0)), (2, true, Float(0.3))] {
    var rng = SplitMix64(seed: 7)
    // A layer norm over 4 units can meet a row of nearly equal values, where it curves too sharply
    // for a finite difference: the layer-normalised cells get 8.
    let (T, B, I, H) = (3, 2, 3, kind == .gruLN || kind == .lstmLN ? 8 : 4)
    let layer = RecurrentLayer(
      kind: kind, inputSize: I, hiddenSize: H, layerCount: layers, bidirectional: bidirectional,
      dropout: dropout, using: &rng)
    let D = layer.directionCount
    let x = Tensor(normal: [T, B, I], using: &rng)
    let stateShape = [layers * D, B, H]
    let h0 = Tensor(normal: stateShape, standardDeviation: 0.5, using: &rng)
    let c0 = kind.hasCellState ? Tensor(normal: stateShape, standardDeviation: 0.5, using: &rng) : nil
    let wOut = Tensor(normal: [T, B, D * H], using: &rng)
    let wH = Tensor(normal: stateShape, using: &rng)
    let wC = Tensor(normal: stateShape, using: &rng)
    // The same seed each call gives the same dropout masks, so the loss is a function.
    func loss(_ l: RecurrentLayer, _ x: Tensor, _ h0: Tensor, _ c0: Tensor?) -> Double {
      var maskRNG = SplitMix64(seed: 99)
      let (out, state, _) = l.forward(
        x, initialState: RecurrentState(hidden: h0, cell: c0), training: true, using: &maskRNG)
      return projection(out, wOut) + projection(state.hidden, wH) + (state.cell.map { projection($0, wC) } ?? 0)
    }
    var maskRNG = SplitMix64(seed: 99)
    let (_, _, trace) = layer.forward(
      x, initialState: RecurrentState(hidden: h0, cell: c0), training: true, using: &maskRNG)
    var gradient = layer.zeroGradient
    let (dx, dState) = layer.backward(
      trace, outputGradient: wOut,
      stateGradient: RecurrentState(hidden: wH, cell: kind.hasCellState ? wC : nil), into: &gradient)
    let label = "\(kind) layers=\(layers) bidirectional=\(bidirectional)"
    // ReLU (and the min cells' g) has kinks where a central difference straddles two slopes. An entry counts only
    // where differences at two step sizes agree (the loss is smooth there); smooth cells must
    // have no such entries. With ReLU one unit on a kink spoils every entry whose gradient
    // flows through it, so up to half may be skipped; its exact backward is also checked
    // against PyTorch in RecurrentParityTests.
    var skipped = 0
    var checked = 0
    func check(_ analytic: [Float], _ of: Tensor, _ indices: [Int], _ what: String, _ f: (Tensor) -> Double) {
      checked += indices.count
      skipped += expectCloseWhereSmooth(
        analytic, of: of, indices: indices, rtol: fdTolerance.rtol, atol: fdTolerance.atol, "\(label): \(what)",
        agreement: kinkAgreement(kind), loss: f)
    }
    let xi = sampleIndices(x.count, 8)
    check(xi.map { dx.scalars[$0] }, x, xi, "dx") { loss(layer, $0, h0, c0) }
    let hi = sampleIndices(h0.count, 8)
    check(hi.map { dState.hidden.scalars[$0] }, h0, hi, "dh0") { loss(layer, x, $0, c0) }
    if let c0 {
      check(hi.map { dState.cell!.scalars[$0] }, c0, hi, "dc0") { loss(layer, x, h0, $0) }
    }
    forEachParameterGradient(of: layer, gradient: gradient, samples: 6, check) { loss($0, x, h0, c0) }
    if hasKinks(kind) {
      #expect(skipped * 2 <= checked, "\(label): \(skipped) of \(checked) entries on kinks")
    } else {
      #expect(skipped == 0, "\(label): \(skipped) of \(checked) entries not smooth")
    }
  }
}

@Test(arguments: Activation.allCases)
func linearBackwardMatchesFiniteDifferences(activation: Activation) {
  var rng = SplitMix64(seed: 3)
  var linear = Linear(inputSize: 5, outputSize: 4, activation: activation, using: &rng)
  let x = Tensor(normal: [2, 3, 5], using: &rng)
  let w = Tensor(normal: [2, 3, 4], using: &rng)
  let (_, trace) = linear.forward(x)
  var gradient = linear.zeroGradient
  let dx = linear.backward(trace, outputGradient: w, into: &gradient)
  let xi = sampleIndices(x.count, 10)
  expectClose(xi.map { dx.scalars[$0] }, numericGradient(of: x, indices: xi, epsilon: 1e-3) { projection(linear($0), w) },
    rtol: fdTolerance.rtol, atol: fdTolerance.atol, "\(activation): dx")
  let copy = linear
  let wi = sampleIndices(linear.weight.count, 10)
  expectClose(wi.map { gradient.weight.scalars[$0] },
    numericGradient(of: copy.weight, indices: wi, epsilon: 1e-3) { var l = copy; l.weight = $0; return projection(l(x), w) },
    rtol: fdTolerance.rtol, atol: fdTolerance.atol, "\(activation): dW")
  let bi = Array(0..<4)
  expectClose(bi.map { gradient.bias!.scalars[$0] },
    numericGradient(of: copy.bias!, indices: bi, epsilon: 1e-3) { var l = copy; l.bias = $0; return projection(l(x), w) },
    rtol: fdTolerance.rtol, atol: fdTolerance.atol, "\(activation): db")
  linear.activation = activation  // keeps `linear` mutable use honest
}

@Test func embeddingBackwardMatchesFiniteDifferences() {
  var rng = SplitMix64(seed: 4)
  let embedding = Embedding(vocabularySize: 5, embeddingSize: 3, using: &rng)
  let ids = [0, 3, 3, 1, 4, 3]
  let w = Tensor(normal: [2, 3, 3], using: &rng)
  var gradient = embedding.zeroGradient
  embedding.backward(ids: ids, outputGradient: w, into: &gradient)
  let indices = Array(0..<embedding.weight.count)
  let numeric = numericGradient(of: embedding.weight, indices: indices) { weight in
    var e = embedding
    e.weight = weight
    return projection(e(ids, shape: [2, 3]), w)
  }
  expectClose(gradient.weight.scalars, numeric, rtol: fdTolerance.rtol, atol: fdTolerance.atol, "embedding")
  // Row 2 is never looked up: exactly zero gradient.
  #expect(gradient.weight.scalars[6..<9].allSatisfy { $0 == 0 })
}

@Test func dropoutBackwardMatchesFiniteDifferencesAndIsInverted() {
  let dropout = Dropout(probability: 0.4)
  var rng = SplitMix64(seed: 5)
  let x = Tensor(normal: [4, 50], using: &rng)
  let w = Tensor(normal: [4, 50], using: &rng)
  var maskRNG = SplitMix64(seed: 8)
  let (y, mask) = dropout.forward(x, training: true, using: &maskRNG)
  let dx = dropout.backward(w, mask: mask)
  let indices = sampleIndices(x.count, 12)
  let numeric = numericGradient(of: x, indices: indices) { input in
    var r = SplitMix64(seed: 8)
    return projection(dropout.forward(input, training: true, using: &r).output, w)
  }
  expectClose(indices.map { dx.scalars[$0] }, numeric, rtol: fdTolerance.rtol, atol: fdTolerance.atol, "dropout")
  let kept = mask!.scalars.filter { $0 != 0 }
  #expect(kept.allSatisfy { abs($0 - 1 / 0.6) < 1e-6 })
  #expect(kept.count > 80 && kept.count < 160)  // about 60% of 200
  #expect(y.scalars.enumerated().allSatisfy { $0.element == x.scalars[$0.offset] * mask!.scalars[$0.offset] })
  let (evaluation, noMask) = dropout.forward(x, training: false, using: &maskRNG)
  #expect(evaluation == x && noMask == nil)
}

@Test func lossBackwardsMatchFiniteDifferences() {
  var rng = SplitMix64(seed: 6)
  let logits = Tensor(normal: [4, 5], standardDeviation: 2, using: &rng)
  let targets = [2, 0, -1, 4]
  let (_, ce) = Loss.softmaxCrossEntropy(logits: logits, targets: targets, ignoreIndex: -1)
  let all = Array(0..<logits.count)
  expectClose(ce.scalars, numericGradient(of: logits, indices: all, epsilon: 1e-3) {
    Double(Loss.softmaxCrossEntropy(logits: $0, targets: targets, ignoreIndex: -1).loss)
  }, rtol: fdTolerance.rtol, atol: fdTolerance.atol, "cross-entropy")
  #expect(ce.scalars[10..<15].allSatisfy { $0 == 0 }, "ignored row has no gradient")

  let prediction = Tensor(normal: [3, 4], using: &rng)
  let target = Tensor(normal: [3, 4], using: &rng)
  let (_, mse) = Loss.meanSquaredError(prediction, target)
  expectClose(mse.scalars, numericGradient(of: prediction, indices: Array(0..<12), epsilon: 1e-3) {
    Double(Loss.meanSquaredError($0, target).loss)
  }, rtol: fdTolerance.rtol, atol: fdTolerance.atol, "mse")

  let bceTargets = Tensor(shape: [6], scalars: [0, 1, 1, 0, 0.5, 1])
  let bceLogits = Tensor(normal: [6], standardDeviation: 2, using: &rng)
  let (_, bce) = Loss.binaryCrossEntropyWithLogits(bceLogits, bceTargets)
  expectClose(bce.scalars, numericGradient(of: bceLogits, indices: Array(0..<6), epsilon: 1e-3) {
    Double(Loss.binaryCrossEntropyWithLogits($0, bceTargets).loss)
  }, rtol: fdTolerance.rtol, atol: fdTolerance.atol, "bce")
}
