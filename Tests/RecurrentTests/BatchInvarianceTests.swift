import CKernels
import Testing
import TestSupport

import Recurrent
import TensorCore

// Continuous batching needs every row's arithmetic to be independent of the batch: a stream's
// logits are bit for bit the same alone, beside other streams, in any row, on any thread
// count, on both kernel paths.

@Test func batchedMatrixVectorProductsAreBatchInvariant() {
  var rng = SplitMix64(seed: 3)
  for (rows, cols) in [(13, 7), (64, 40), (301, 129), (4, 8)] {
    let w = Tensor(normal: [rows, cols], using: &rng).scalars
    let xs = Tensor(normal: [9, cols], using: &rng).scalars
    // Every path this CPU runs (1 portable C, 2 AVX2, 3 AVX-512), each against the naive product.
    for portable in GEMMKernel.supported.map({ Int32($0.c.rawValue) }) {
      // Each vector alone.
      var alone = [[Float]](repeating: [], count: 9)
      for v in 0..<9 {
        var y = [Float](repeating: 0.25, count: rows)
        Array(xs[(v * cols)..<((v + 1) * cols)]).withUnsafeBufferPointer { x in
          rc_sgemv_batch(1, portable, rows, cols, w, cols, x.baseAddress, cols, &y, rows, 1)
        }
        alone[v] = y
        // Against the naive product (the kernel is a product, not just consistent).
        var naive = [Float](repeating: 0.25, count: rows)
        for r in 0..<rows {
          var s = 0.0
          for c in 0..<cols { s += Double(w[r * cols + c]) * Double(xs[v * cols + c]) }
          naive[r] += Float(s)
        }
        expectClose(y, naive, rtol: 1e-5, atol: 1e-5, "gemv \(rows)x\(cols)")
      }
      // Every batch size from 1 to 9, with 1 and 2 threads: each vector bit for bit as alone.
      for n in 1...9 {
        for threads: Int32 in [1, 2] {
          var y = [Float](repeating: 0.25, count: n * rows)
          rc_sgemv_batch(threads, portable, rows, cols, w, cols, xs, cols, &y, rows, n)
          for v in 0..<n {
            #expect(Array(y[(v * rows)..<((v + 1) * rows)]) == alone[v], "\(rows)x\(cols) n=\(n) v=\(v) threads=\(threads) portable=\(portable)")
          }
        }
      }
    }
  }
}

@Test(arguments: CellKind.allCases)
func aStreamsLogitsDoNotDependOnItsNeighbours(kind: CellKind) {
  var rng = SplitMix64(seed: 17)
  // Odd sizes exercise every tail of the kernels.
  let model = LanguageModel(
    LanguageModelConfiguration(cell: kind, layers: 2, hiddenSize: 13, embeddingSize: 7, vocabularySize: 11), using: &rng)
  let stream = (0..<12).map { ($0 * 5 + 2) % 11 }
  for portable in [false, true] {
    let single = LanguageModelStepper(model, portableKernels: portable)
    let alone = stream.map { Array(single.step($0)) }
    for threads in [1, 2] {
      let batched = LanguageModelStepper(model, capacity: 8, compute: Compute(threads: threads), portableKernels: portable)
      // The stream sits in row `row`; the other rows hold other streams; the batch size changes.
      for row in [0, 3, 7] {
        batched.reset()
        var neighbours = SplitMix64(seed: UInt64(row + 1))
        for (t, token) in stream.enumerated() {
          let n = max(row + 1, [row + 1, 8, 5][t % 3])
          var tokens = (0..<n).map { _ in Int(neighbours.next() % 11) }
          tokens[row] = token
          let logits = batched.step(tokens: tokens)
          #expect(Array(logits[(row * 11)..<((row + 1) * 11)]) == alone[t], "\(kind) row \(row) step \(t) threads \(threads)")
        }
      }
      // Rows move (compaction) without changing a stream: stepping row 5 after copying row 2's
      // state there continues row 2's stream.
      batched.reset()
      var tokens = [Int](repeating: 1, count: 6)
      for token in stream.prefix(6) {
        tokens[2] = token
        batched.step(tokens: tokens)
      }
      batched.copyRow(2, to: 5)
      batched.reset(row: 2)
      var rest = [Int](repeating: 4, count: 6)
      for (t, token) in stream.enumerated().dropFirst(6) {
        rest[5] = token
        let logits = batched.step(tokens: rest)
        #expect(Array(logits[(5 * 11)..<(6 * 11)]) == alone[t], "\(kind) moved row, step \(t)")
      }
    }
  }
}
