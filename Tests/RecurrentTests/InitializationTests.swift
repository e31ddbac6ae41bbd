import Testing
import TestSupport

import Recurrent
import TensorCore

// `--init keras` (Glorot-uniform input weights, orthogonal recurrent weights, zero biases) and
// `--forget-bias` (issue 17, item 2), checked on the drawn parameters.

@Test(arguments: [CellKind.gru, .lstm, .rnnTanh])
func kerasInitialisationIsGlorotOrthogonalAndZero(kind: CellKind) {
  var rng = SplitMix64(seed: 7)
  let (I, H) = (40, 24)
  let layer = RecurrentLayer(kind: kind, inputSize: I, hiddenSize: H, layerCount: 2, initialization: .keras, using: &rng)
  let G = kind.gateCount * H
  for (index, w) in layer.weights.enumerated() {
    let width = index == 0 ? I : H
    // W_hh [G*H, H] has orthonormal columns: W_hhᵀ·W_hh = I.
    let gram = w.weightHH.matmul(w.weightHH, transposeSelf: true)
    var worst: Float = 0
    for i in 0..<H {
      for j in 0..<H { worst = max(worst, abs(gram.scalars[i * H + j] - (i == j ? 1 : 0))) }
    }
    #expect(worst < 1e-5, "\(kind) layer \(index): WᵀW differs from I by \(worst)")
    // W_ih: Glorot-uniform over Keras's [width, G*H] kernel: inside the limit, variance limit²/3.
    let limit = (6 / Float(width + G)).squareRoot()
    #expect(w.weightIH.scalars.allSatisfy { abs($0) <= limit })
    let variance = w.weightIH.scalars.map { $0 * $0 }.reduce(0, +) / Float(w.weightIH.count)
    #expect(abs(variance / (limit * limit / 3) - 1) < 0.15, "\(kind): variance \(variance)")
    #expect(w.biasIH.scalars.allSatisfy { $0 == 0 } && w.biasHH.scalars.allSatisfy { $0 == 0 })
  }
}

@Test func forgetBiasSetsTheForgetBlockAndNothingElse() {
  let H = 9
  for initialization in Initialization.allCases {
    var a = SplitMix64(seed: 3)
    var b = SplitMix64(seed: 3)
    let plain = RecurrentLayer(kind: .lstm, inputSize: 5, hiddenSize: H, layerCount: 2, initialization: initialization, using: &a)
    let biased = RecurrentLayer(
      kind: .lstm, inputSize: 5, hiddenSize: H, layerCount: 2, initialization: initialization, forgetBias: 1, using: &b)
    for (p, q) in zip(plain.weights, biased.weights) {
      #expect(p.weightIH == q.weightIH && p.weightHH == q.weightHH)
      for j in 0..<(4 * H) {
        let forget = j >= H && j < 2 * H
        #expect(q.biasIH.scalars[j] == (forget ? 1 : p.biasIH.scalars[j]), "\(initialization) bias_ih[\(j)]")
        #expect(q.biasHH.scalars[j] == (forget ? 0 : p.biasHH.scalars[j]), "\(initialization) bias_hh[\(j)]")
      }
    }
  }
  // PyTorch's initialisation is the default and draws what it always drew.
  var c = SplitMix64(seed: 3)
  var d = SplitMix64(seed: 3)
  #expect(
    RecurrentLayer(kind: .gru, inputSize: 5, hiddenSize: H, using: &c).weights
      == RecurrentLayer(kind: .gru, inputSize: 5, hiddenSize: H, initialization: .pytorch, using: &d).weights)
}
