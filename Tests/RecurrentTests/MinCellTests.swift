import Testing
import TestSupport

import Recurrent
import TensorCore

// minGRU and minLSTM (Feng et al. 2024): the layer trains them in parallel over time (one
// product over all T·B rows, then a scan in log space); generation steps them one token at a
// time in linear space. The two forms agree to 1e-5 over long sequences. (PyTorch parity is in
// RecurrentParityTests, gradients in FiniteDifferenceTests, the kernels in KernelTwinTests.)

@Test(arguments: [CellKind.minGRU, .minLSTM])
func parallelAndSequentialFormsAgreeOverLongSequences(kind: CellKind) {
  var rng = SplitMix64(seed: 17)
  let (T, B, I, H) = (200, 5, 6, 16)
  let layer = RecurrentLayer(kind: kind, inputSize: I, hiddenSize: H, layerCount: 2, using: &rng)
  let x = Tensor(normal: [T, B, I], using: &rng)
  let (output, state) = layer(x, compute: Compute(threads: 2))
  // The sequential form, step by step from the weights: gx = x·W_ihᵀ + b_ih, then minStep.
  var input = x.scalars
  var width = I
  var worst: Float = 0
  for l in 0..<2 {
    let w = layer.weights[l]
    let G = kind.gateCount * H
    var h = [Float](repeating: 0, count: B * H)
    var next = h
    var out = [Float](repeating: 0, count: T * B * H)
    for t in 0..<T {
      var gx = [Float](repeating: 0, count: B * G)
      for b in 0..<B {
        for r in 0..<G {
          var sum = w.biasIH.scalars[r]
          for k in 0..<width { sum += w.weightIH.scalars[r * width + k] * input[(t * B + b) * width + k] }
          gx[b * G + r] = sum
        }
      }
      minStep(lstm: kind == .minLSTM, gx: gx, hPrev: h, hNext: &next, B: B, H: H)
      h = next
      out.replaceSubrange((t * B * H)..<((t + 1) * B * H), with: h)
    }
    if l == 1 {
      for i in 0..<out.count { worst = max(worst, abs(out[i] - output.scalars[i])) }
      expectClose(out, output.scalars, rtol: 1e-5, atol: 1e-5, "\(kind): sequential vs parallel outputs")
    }
    expectClose(h, Array(state.hidden.scalars[(l * B * H)..<((l + 1) * B * H)]), rtol: 1e-5, atol: 1e-5, "\(kind) layer \(l): final state")
    input = out
    width = H
  }
  print("\(kind): sequential vs parallel over \(T) steps, largest difference \(worst)")
}

@Test(arguments: [CellKind.minGRU, .minLSTM])
func minCellsHaveInputWeightsOnlyAndIgnoreWeightDrop(kind: CellKind) throws {
  var rng = SplitMix64(seed: 3)
  var layer = RecurrentLayer(kind: kind, inputSize: 4, hiddenSize: 5, layerCount: 2, bidirectional: true, using: &rng)
  #expect(layer.namedParameters.map(\.name) == [
    "weight_ih_l0", "bias_ih_l0", "weight_ih_l0_reverse", "bias_ih_l0_reverse",
    "weight_ih_l1", "bias_ih_l1", "weight_ih_l1_reverse", "bias_ih_l1_reverse",
  ])
  #expect(layer.weights[2].weightIH.shape == [kind.gateCount * 5, 10] && layer.tensorsPerDirection == 2)
  #expect(layer.weights.allSatisfy { $0.weightHH.count == 0 && $0.biasHH.count == 0 && $0.tensors.count == 2 })
  // Weight drop acts on W_hh, which these cells have not: training with it is training without.
  let x = Tensor(normal: [6, 3, 4], using: &rng)
  var a = SplitMix64(seed: 1)
  let plain = layer.forward(x, training: true, using: &a).output
  layer.weightDrop = 0.5
  var b = SplitMix64(seed: 1)
  #expect(layer.forward(x, training: true, using: &b).output == plain)
}
