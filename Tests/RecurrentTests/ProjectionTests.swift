import Testing
import TestSupport

import Recurrent
import TensorCore

// The projected LSTM (PyTorch's proj_size): h = W_hr·(o⊙tanh c) is [P] wide. PyTorch parity
// is in RecurrentParityTests (four fixture cases); here its gradients with every feature of the
// sweep on (lengths, zoneout, weight drop, locked and plain dropout, two bidirectional layers),
// and the batch-1 stepper against the layer.

@Test func projectedLSTMGradientsMatchFiniteDifferences() {
  var rng = SplitMix64(seed: 21)
  let (T, B, I, H, P) = (4, 3, 3, 5, 3)
  var layer = RecurrentLayer(
    kind: .lstm, inputSize: I, hiddenSize: H, layerCount: 2, bidirectional: true, dropout: 0.3, projectionSize: P,
    using: &rng)
  (layer.weightDrop, layer.lockedDropout, layer.zoneout) = (0.3, 0.3, 0.3)
  #expect(layer.outputSize == 2 * P && layer.weights[2].weightIH.shape == [4 * H, 2 * P])
  #expect(layer.weights.allSatisfy { $0.weightHH.shape == [4 * H, P] && $0.projection?.shape == [P, H] })
  #expect(layer.namedParameters.map(\.name).prefix(5) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0"])
  let x = Tensor(normal: [T, B, I], using: &rng)
  let lengths = [4, 2, 3]
  let h0 = Tensor(normal: [4, B, P], standardDeviation: 0.5, using: &rng)
  let c0 = Tensor(normal: [4, B, H], standardDeviation: 0.5, using: &rng)
  let wOut = Tensor(normal: [T, B, 2 * P], using: &rng)
  let wH = Tensor(normal: [4, B, P], using: &rng)
  let wC = Tensor(normal: [4, B, H], using: &rng)
  func loss(_ l: RecurrentLayer, _ x: Tensor, _ h0: Tensor, _ c0: Tensor) -> Double {
    var masks = SplitMix64(seed: 99)
    let (out, state, _) = l.forward(
      x, initialState: RecurrentState(hidden: h0, cell: c0), lengths: lengths, training: true, using: &masks)
    return projection(out, wOut) + projection(state.hidden, wH) + projection(state.cell!, wC)
  }
  var masks = SplitMix64(seed: 99)
  let (_, _, trace) = layer.forward(
    x, initialState: RecurrentState(hidden: h0, cell: c0), lengths: lengths, training: true, using: &masks)
  var gradient = layer.zeroGradient
  let (dx, dState) = layer.backward(
    trace, outputGradient: wOut, stateGradient: RecurrentState(hidden: wH, cell: wC), into: &gradient,
    compute: Compute(threads: 2))
  var skipped = 0
  func check(_ analytic: [Float], _ of: Tensor, _ indices: [Int], _ what: String, _ f: (Tensor) -> Double) {
    skipped += expectCloseWhereSmooth(analytic, of: of, indices: indices, rtol: 1e-2, atol: 2e-3, "projected: \(what)", loss: f)
  }
  let xi = sampleIndices(x.count, 10)
  check(xi.map { dx.scalars[$0] }, x, xi, "dx") { loss(layer, $0, h0, c0) }
  let hi = sampleIndices(h0.count, 8)
  check(hi.map { dState.hidden.scalars[$0] }, h0, hi, "dh0") { loss(layer, x, $0, c0) }
  let ci = sampleIndices(c0.count, 8)
  check(ci.map { dState.cell!.scalars[$0] }, c0, ci, "dc0") { loss(layer, x, h0, $0) }
  forEachParameterGradient(of: layer, gradient: gradient, samples: 8, check) { loss($0, x, h0, c0) }
  #expect(skipped == 0, "\(skipped) entries not smooth")
}

@Test func projectedLanguageModelStepsAsItsLayerRuns() {
  var rng = SplitMix64(seed: 5)
  for tied in [false, true] {
    var c = LanguageModelConfiguration(
      cell: .lstm, layers: 2, hiddenSize: 24, embeddingSize: tied ? 10 : 7, vocabularySize: 11, tied: tied)
    c.projectionSize = 10
    let model = LanguageModel(c, using: &rng)
    #expect(model.decoder.weight.shape == (tied ? [0, 10] : [11, 10]))
    let ids = (0..<9).map { ($0 * 5 + 2) % 11 }
    let (logits, state, _) = model.forward(ids: ids, sequenceLength: 9, batchSize: 1, training: false, using: &rng)
    #expect(state.hidden.shape == [2, 1, 10] && state.cell?.shape == [2, 1, 24])
    let stepper = LanguageModelStepper(model, capacity: 3, compute: Compute(threads: 2))
    var stepped: [Float] = []
    for id in ids { stepped += stepper.step(tokens: [id, 3, id])[0..<11] }
    expectClose(stepped, logits.scalars, rtol: 1e-5, atol: 1e-5, "tied=\(tied): stepper logits")
    expectClose(stepper.state.hidden.scalars, state.hidden.scalars, rtol: 1e-5, atol: 1e-6, "tied=\(tied): h")
    expectClose(stepper.state.cell!.scalars, state.cell!.scalars, rtol: 1e-5, atol: 1e-6, "tied=\(tied): c")
  }
}
