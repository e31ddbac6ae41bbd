import CKernels
import Foundation
import Testing
import TestSupport

import Recurrent
import TensorCore

// The fused softmax cross-entropy kernel (vectorised exp, 16-lane maximum and sum, rows split
// over threads) against the plain Swift loop of `Loss.rows` on the same logits, on every
// instruction set's copy this CPU runs; and batch-invariant: a row's loss and gradient are the same bits alone or among
// others, on any thread count.

@Test(arguments: GEMMKernel.supported)
func fusedSoftmaxCrossEntropyAgreesWithADoubleReference(kernel: GEMMKernel) {
  var rng = SplitMix64(seed: 9)
  for (N, K) in [(37, 1000), (5, 17), (3, 33_278), (64, 65)] {
    var logits = Tensor(normal: [N, K], using: &rng)
    for i in 0..<logits.count { logits.scalars[i] *= 4 }
    let targets = (0..<N).map { $0 == 2 ? -100 : Int(rng.next() % UInt64(K)) }
    let (fused, gradient) = Loss.softmaxCrossEntropy(
      logits: logits, targets: targets, ignoreIndex: -100, meanOver: nil, compute: Compute(threads: 2),
      kernel: kernel)
    // The reference in Double: log-sum-exp and softmax of each row.
    var total = 0.0
    var worst = 0.0
    for n in 0..<N where n != 2 {
      let row = (0..<K).map { Double(logits.scalars[n * K + $0]) }
      let top = row.max()!
      let sum = row.reduce(0) { $0 + Foundation.exp($1 - top) }
      total += Foundation.log(sum) + top - row[targets[n]]
      for k in 0..<K {
        let expected = (Foundation.exp(row[k] - top) / sum - (k == targets[n] ? 1 : 0)) / Double(N - 1)
        worst = max(worst, abs(Double(gradient.scalars[n * K + k]) - expected))
      }
    }
    let reference = total / Double(N - 1)
    #expect(abs(Double(fused) - reference) <= 1e-6 * reference, "N \(N) K \(K): \(fused) vs \(reference)")
    // Within 2e-6 of the largest |gradient| a row can have (1/counted): the exponential is a
    // branch-free polynomial good to a few ulp, the sum kept in 16 lanes.
    #expect(worst <= 2e-6 / Double(N - 1), "N \(N) K \(K): gradient differs by \(worst)")
    #expect(gradient.scalars[(2 * K)..<(3 * K)].allSatisfy { $0 == 0 })  // the ignored row
    // And against the plain Swift loop of Loss.rows (sequential Float sums: less exact at large K).
    let (sum, counted, _) = Loss.rows(
      .categoricalCrossEntropy, output: logits, targets: .classes(targets, ignoreIndex: -100),
      gradientScale: 1 / Float(N - 1))
    #expect(counted == N - 1)
    #expect(abs(Double(fused) - sum / Double(counted)) <= 1e-5 * reference)
  }
}

@Test func fusedSoftmaxCrossEntropyIsBatchInvariant() {
  var rng = SplitMix64(seed: 4)
  let (N, K) = (50, 3001)
  let logits = Tensor(normal: [N, K], using: &rng)
  let targets = (0..<N).map { _ in Int(rng.next() % UInt64(K)) }
  for kernel in GEMMKernel.supported {
    let (_, all) = Loss.softmaxCrossEntropy(
      logits: logits, targets: targets, ignoreIndex: nil, meanOver: N, compute: Compute(threads: 2), kernel: kernel)
    let (_, one) = Loss.softmaxCrossEntropy(
      logits: logits, targets: targets, ignoreIndex: nil, meanOver: N, compute: .singleThread, kernel: kernel)
    #expect(all.scalars == one.scalars)
    for row in [0, 17, 49] {
      let alone = Tensor(shape: [1, K], scalars: Array(logits.scalars[(row * K)..<((row + 1) * K)]))
      let (_, g) = Loss.softmaxCrossEntropy(
        logits: alone, targets: [targets[row]], ignoreIndex: nil, meanOver: N, compute: .singleThread, kernel: kernel)
      #expect(g.scalars == Array(all.scalars[(row * K)..<((row + 1) * K)]), "row \(row)")
    }
  }
}
