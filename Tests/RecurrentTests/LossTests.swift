import Testing
import TestSupport

import Recurrent

// Loss.rows is the one loss kernel: class ids and one-hot rows give the same cross-entropy,
// padding rows count for nothing, and the predictions it hands out are the model's.

@Test func classIdsAndOneHotRowsGiveTheSameCrossEntropy() {
  var rng = SplitMix64(seed: 17)
  let (N, K) = (6, 5)
  let logits = Tensor(normal: [N, K], standardDeviation: 4, using: &rng)
  let ids = (0..<N).map { ($0 * 3 + 1) % K }
  var oneHot = Tensor(zeros: [N, K])
  for (n, k) in ids.enumerated() { oneHot.scalars[n * K + k] = 1 }
  let sparse = Loss.rows(.categoricalCrossEntropy, output: logits, targets: .classes(ids, ignoreIndex: nil), gradientScale: 0.5)
  let dense = Loss.rows(.categoricalCrossEntropy, output: logits, targets: .values(oneHot), gradientScale: 0.5)
  #expect(sparse.counted == N && dense.counted == N)
  #expect(abs(sparse.sum - dense.sum) < 1e-5 * sparse.sum)
  expectClose(sparse.gradient.scalars, dense.gradient.scalars, rtol: 1e-5, atol: 1e-7, "gradient")
  // softmaxCrossEntropy is the mean of the same rows.
  let (mean, gradient) = Loss.softmaxCrossEntropy(logits: logits, targets: ids)
  #expect(abs(Double(mean) - sparse.sum / Double(N)) < 1e-6)
  expectClose(gradient.scalars, sparse.gradient.scalars.map { $0 * 2 / Float(N) }, rtol: 1e-5, atol: 1e-7, "mean gradient")
}

@Test(arguments: LossFunction.allCases)
func paddingRowsCountForNothingAndPredictionsAreTheModels(function: LossFunction) {
  var rng = SplitMix64(seed: 3)
  let (N, K) = (4, 3)
  let output = Tensor(normal: [N, K], using: &rng)
  var target = Tensor(uniform: [N, K], low: 0, high: 1, using: &rng)
  if function == .categoricalCrossEntropy {
    for n in 0..<N { for k in 0..<K { target.scalars[n * K + k] = k == n % K ? 1 : 0 } }
  }
  var visited: [Int] = []
  var predictions: [[Float]] = []
  let weights: [Float] = [1, 0, 1, 0]
  let all = Loss.rows(function, output: output, targets: .values(target), gradientScale: 1)
  let some = Loss.rows(function, output: output, targets: .values(target), weights: weights, gradientScale: 1) { n, p in
    visited.append(n)
    predictions.append(Array(p))
  }
  #expect(visited == [0, 2] && some.counted == 2 && all.counted == 4)
  for n in [1, 3] { #expect(some.gradient.scalars[(n * K)..<((n + 1) * K)].allSatisfy { $0 == 0 }) }
  for n in [0, 2] {
    #expect(Array(some.gradient.scalars[(n * K)..<((n + 1) * K)]) == Array(all.gradient.scalars[(n * K)..<((n + 1) * K)]))
  }
  for (row, p) in zip([0, 2], predictions) {
    let o = Array(output.scalars[(row * K)..<((row + 1) * K)])
    switch function {
    case .meanSquaredError: #expect(p == o)
    case .binaryCrossEntropy: expectClose(p, o.map { 1 / (1 + _exp(-$0)) }, rtol: 1e-6, atol: 1e-7, "sigmoid")
    case .categoricalCrossEntropy: #expect(abs(p.reduce(0, +) - 1) < 1e-6 && p.allSatisfy { $0 > 0 })
    }
  }
}
