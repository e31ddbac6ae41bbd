import Testing

import TensorCore

/// Runs `gemm` and its naive twin on the same random operands and returns the worst
/// difference relative to the magnitude of the result.
private func compareWithReference(
  transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float, beta: Float,
  threads: Int, kernel: GEMMKernel, padding: Int = 3
) -> Float {
  var rng = SplitMix64(seed: UInt64(m * 1_000_003 + n * 1009 + k))
  // Leading dimensions larger than the logical width exercise the strides.
  let lda = (transposeA ? m : k) + padding
  let ldb = (transposeB ? k : n) + padding
  let ldc = n + padding
  let a = Tensor(uniform: [(transposeA ? k : m) * lda], low: -1, high: 1, using: &rng)
  let b = Tensor(uniform: [(transposeB ? n : k) * ldb], low: -1, high: 1, using: &rng)
  let c0 = Tensor(uniform: [m * ldc], low: -1, high: 1, using: &rng)
  var fast = c0
  var slow = c0
  a.scalars.withUnsafeBufferPointer { ap in
    b.scalars.withUnsafeBufferPointer { bp in
      fast.scalars.withUnsafeMutableBufferPointer { cp in
        gemm(
          transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
          a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb, beta: beta,
          c: cp.baseAddress!, ldc: ldc, compute: Compute(threads: threads), kernel: kernel)
      }
      slow.scalars.withUnsafeMutableBufferPointer { cp in
        gemmReference(
          transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
          a: ap.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: ldb, beta: beta,
          c: cp.baseAddress!, ldc: ldc)
      }
    }
  }
  // Padding columns of C must be untouched.
  for i in 0..<m {
    for j in n..<ldc where fast.scalars[i * ldc + j] != c0.scalars[i * ldc + j] {
      return .infinity
    }
  }
  return fast.maxAbsoluteDifference(slow) / Float(max(1, k)).squareRoot()
}

/// Every kernel this CPU runs; the ones it cannot are named once in the test log.
private let kernels: [GEMMKernel] = {
  let skipped = GEMMKernel.allCases.filter { $0 != .automatic && !GEMMKernel.supported.contains($0) }
  if !skipped.isEmpty { print("GEMM tests: this CPU cannot run \(skipped); skipped") }
  return GEMMKernel.supported
}()

@Test(arguments: [1, 7, 33, 65, 257])
func gemmMatchesNaiveTwinOnOddShapes(size: Int) {
  for kernel in kernels {
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
      for (m, n, k) in [(size, 7, 33), (65, size, 7), (33, 65, size), (size, size, size)] {
        let error = compareWithReference(
          transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 1, beta: 0, threads: 1,
          kernel: kernel)
        #expect(error < 1e-5, "kernel \(kernel) tA=\(ta) tB=\(tb) m=\(m) n=\(n) k=\(k): \(error)")
      }
    }
  }
}

@Test func gemmHonoursAlphaAndBeta() {
  for kernel in kernels {
    for (alpha, beta) in [(Float(0.5), Float(0)), (1, 1), (-2, 0.25), (0, 3)] {
      let error = compareWithReference(
        transposeA: false, transposeB: true, m: 19, n: 37, k: 300, alpha: alpha, beta: beta,
        threads: 1, kernel: kernel)
      #expect(error < 1e-5, "alpha \(alpha) beta \(beta): \(error)")
    }
  }
}

@Test func gemmBetaZeroIgnoresNaNInOutput() {
  let a = Tensor(repeating: 1, shape: [4, 3])
  let b = Tensor(repeating: 2, shape: [3, 5])
  var c = Tensor(repeating: .nan, shape: [4, 5])
  a.scalars.withUnsafeBufferPointer { ap in
    b.scalars.withUnsafeBufferPointer { bp in
      c.scalars.withUnsafeMutableBufferPointer { cp in
        gemm(
          transposeA: false, transposeB: false, m: 4, n: 5, k: 3, a: ap.baseAddress!, lda: 3,
          b: bp.baseAddress!, ldb: 5, beta: 0, c: cp.baseAddress!, ldc: 5)
      }
    }
  }
  #expect(c.scalars.allSatisfy { $0 == 6 })
}

@Test func gemmThreadedIsBitIdenticalToSingleThreaded() {
  // Large enough that the threaded path really splits, across both split directions.
  for (m, n, k) in [(300, 700, 129), (700, 200, 300)] {
    var rng = SplitMix64(seed: 11)
    let a = Tensor(uniform: [m, k], low: -1, high: 1, using: &rng)
    let b = Tensor(uniform: [k, n], low: -1, high: 1, using: &rng)
    let one = a.matmul(b, compute: .singleThread)
    let two = a.matmul(b, compute: Compute(threads: 2))
    let three = a.matmul(b, compute: Compute(threads: 3))
    #expect(one == two)
    #expect(one == three)
    var reference = Tensor(zeros: [m, n])
    a.scalars.withUnsafeBufferPointer { ap in
      b.scalars.withUnsafeBufferPointer { bp in
        reference.scalars.withUnsafeMutableBufferPointer { cp in
          gemmReference(
            transposeA: false, transposeB: false, m: m, n: n, k: k, a: ap.baseAddress!, lda: k,
            b: bp.baseAddress!, ldb: n, c: cp.baseAddress!, ldc: n)
        }
      }
    }
    #expect(two.maxAbsoluteDifference(reference) < 1e-4)
  }
}

@Test func splitMixIsSeededAndUniform() {
  var a = SplitMix64(seed: 42)
  var b = SplitMix64(seed: 42)
  var c = SplitMix64(seed: 43)
  let xs = (0..<1000).map { _ in a.nextUnitFloat() }
  let ys = (0..<1000).map { _ in b.nextUnitFloat() }
  let zs = (0..<1000).map { _ in c.nextUnitFloat() }
  #expect(xs == ys)
  #expect(xs != zs)
  #expect(xs.allSatisfy { $0 >= 0 && $0 < 1 })
  let mean = xs.reduce(0, +) / 1000
  #expect(abs(mean - 0.5) < 0.05)
  var g = SplitMix64(seed: 5)
  let normals = Tensor(normal: [10000], using: &g).scalars
  let m = normals.reduce(0, +) / 10000
  let v = normals.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 10000
  #expect(abs(m) < 0.05 && abs(v - 1) < 0.05)
}

@Test(arguments: [1, 7, 33, 65, 257, 300])
func packedMatrixProductMatchesNaiveTwin(size: Int) {
  var rng = SplitMix64(seed: UInt64(size))
  for transposed in [false, true] {
    for kernel in kernels {
      let (m, k, n) = (size, size + 3, 2 * size + 1)
      let a = Tensor(uniform: [m, k], low: -1, high: 1, using: &rng)
      let b = Tensor(uniform: transposed ? [n, k] : [k, n], low: -1, high: 1, using: &rng)
      let c0 = Tensor(uniform: [m, n], low: -1, high: 1, using: &rng)
      let packed = b.withPointer { PackedMatrix($0, ldb: transposed ? k : n, k: k, n: n, transposed: transposed) }
      var fast = c0
      var slow = c0
      a.withPointer { ap in
        fast.withMutablePointer { packed.multiply(ap, lda: k, m: m, beta: 0.5, into: $0, ldc: n, kernel: kernel) }
        b.withPointer { bp in
          slow.withMutablePointer {
            gemmReference(
              transposeA: false, transposeB: transposed, m: m, n: n, k: k, a: ap, lda: k, b: bp,
              ldb: transposed ? k : n, beta: 0.5, c: $0, ldc: n)
          }
        }
      }
      #expect(fast.maxAbsoluteDifference(slow) < 1e-5 * Float(k).squareRoot(), "size \(size) transposed \(transposed)")
    }
  }
}

@Test func gemmTileEdgesMatchNaiveTwinOnEveryKernel() {
  // Every ragged edge of the 6x16 and 12x32 tiles, with B read in place (m <= 96), packed
  // (m > 96 or B transposed) and across two depth blocks (k > 256).
  for kernel in kernels {
    for m in [1, 5, 6, 7, 11, 12, 13, 18, 97, 109] {
      for n in [1, 15, 16, 17, 31, 32, 33, 47, 49, 64] {
        for (k, tb) in [(9, false), (300, false), (40, true)] {
          let error = compareWithReference(
            transposeA: false, transposeB: tb, m: m, n: n, k: k, alpha: 1.5, beta: 0.5, threads: 1,
            kernel: kernel)
          #expect(error < 1e-5, "kernel \(kernel) m=\(m) n=\(n) k=\(k) tB=\(tb): \(error)")
        }
      }
    }
  }
}

@Test func gemmKernelsAgreeBitForBit() {
  // Every kernel sums each element over the depth in the same order with one FMA per step, so
  // with alpha = 1 the AVX2 and AVX-512 tiles give the same bits (what keeps a model's numbers
  // the same on both kinds of machine).
  let vector = GEMMKernel.supported.filter { $0 != .generic }
  guard vector.count > 1 else {
    print("gemmKernelsAgreeBitForBit: only \(vector) on this CPU; nothing to compare")
    return
  }
  var rng = SplitMix64(seed: 3)
  for (m, n, k) in [(20, 1950, 650), (131, 77, 513), (7, 33, 1)] {
    let a = Tensor(uniform: [m, k], low: -1, high: 1, using: &rng)
    let b = Tensor(uniform: [k, n], low: -1, high: 1, using: &rng)
    let c0 = Tensor(uniform: [m, n], low: -1, high: 1, using: &rng)
    var results: [Tensor] = []
    for kernel in vector {
      for beta: Float in [0, 1] {
        var c = c0
        a.withPointer { ap in
          b.withPointer { bp in
            c.withMutablePointer {
              gemm(
                transposeA: false, transposeB: false, m: m, n: n, k: k, a: ap, lda: k, b: bp, ldb: n,
                beta: beta, c: $0, ldc: n, kernel: kernel)
            }
          }
        }
        results.append(c)
      }
    }
    for i in 2..<results.count {
      #expect(results[i] == results[i % 2], "m=\(m) n=\(n) k=\(k) kernel \(vector[i / 2]) beta \(i % 2)")
    }
  }
}
