import CKernels
import Testing

import TensorCore

// The bf16 products: operands rounded to bfloat16, products accumulated in float32. The
// emulation (round, then the float32 kernel) runs on any CPU; the AVX512_BF16 kernel where the
// CPU has it, against the naive twin on the rounded operands.

/// bf16 paths this CPU runs: the emulation always, the native kernel where supported.
private let bf16Paths: [Compute] = {
  if !Precision.bfloat16IsSupported { print("bf16 tests: this CPU has no AVX512_BF16; native kernel skipped") }
  return [Compute(threads: 1, emulatingBFloat16: ())]
    + (Precision.bfloat16IsSupported ? [Compute(threads: 1, precision: .bfloat16)] : [])
}()

private func rounded(_ t: Tensor) -> Tensor {
  Tensor(shape: t.shape, scalars: t.scalars.map { rc_round_bf16($0) })
}

@Test func roundingToBFloat16IsNearestEven() {
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1).
  #expect(rc_round_bf16(1 + 0x1p-8) == 1)
  #expect(rc_round_bf16(1 + 0x1p-7 + 0x1p-8) == 1 + 0x1p-6)
  #expect(rc_round_bf16(1 + 0x1p-8 + 0x1p-12) == 1 + 0x1p-7)
  #expect(rc_round_bf16(-3.0) == -3.0)
  #expect(rc_round_bf16(.infinity) == .infinity)
  #expect(rc_round_bf16(.nan).isNaN)
  #expect(rc_round_bf16(Float.leastNormalMagnitude / 4) == 0)  // denormal inputs become zero, as VCVTNE2PS2BF16
  #expect(rc_round_bf16(Float.greatestFiniteMagnitude) == .infinity)
}

@Test func bfloat16ProductsMatchTheNaiveTwinOnRoundedOperands() {
  for compute in bf16Paths {
    for (m, n, k) in [(1, 1, 1), (13, 33, 7), (97, 49, 300), (12, 32, 513), (5, 17, 2)] {
      for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        var rng = SplitMix64(seed: UInt64(m * 131 + n * 7 + k))
        let a = Tensor(uniform: [ta ? k : m, ta ? m : k], low: -1, high: 1, using: &rng)
        let b = Tensor(uniform: [tb ? n : k, tb ? k : n], low: -1, high: 1, using: &rng)
        let c0 = Tensor(uniform: [m, n], low: -1, high: 1, using: &rng)
        var fast = c0, exact = c0, unrounded = c0
        let (ra, rb) = (rounded(a), rounded(b))
        a.withPointer { ap in
          b.withPointer { bp in
            fast.withMutablePointer {
              gemm(
                transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: ap, lda: a.shape[1], b: bp,
                ldb: b.shape[1], beta: 0.25, c: $0, ldc: n, compute: compute)
            }
            unrounded.withMutablePointer {
              gemmReference(
                transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: ap, lda: a.shape[1], b: bp,
                ldb: b.shape[1], beta: 0.25, c: $0, ldc: n)
            }
          }
        }
        ra.withPointer { ap in
          rb.withPointer { bp in
            exact.withMutablePointer {
              gemmReference(
                transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: ap, lda: a.shape[1], b: bp,
                ldb: b.shape[1], beta: 0.25, c: $0, ldc: n)
            }
          }
        }
        let label = "\(compute.emulatesBFloat16 ? "emulated" : "native") m=\(m) n=\(n) k=\(k) tA=\(ta) tB=\(tb)"
        // Against the rounded operands: float32 accumulation only.
        #expect(fast.maxAbsoluteDifference(exact) <= 1e-5 * Float(k).squareRoot(), "\(label)")
        // Against the unrounded ones: bf16's 8-bit significand shows (and really was used).
        let drift = fast.maxAbsoluteDifference(unrounded)
        #expect(drift <= 1e-2 * Float(k).squareRoot(), "\(label): \(drift)")
        if k >= 7 { #expect(drift > 1e-5, "\(label): no rounding seen") }
      }
    }
  }
}

@Test func bfloat16ProductsAreBatchInvariantAndPackedAlike() {
  for compute in bf16Paths {
    var rng = SplitMix64(seed: 8)
    let (m, n, k) = (70, 200, 130)
    let a = Tensor(uniform: [m, k], low: -1, high: 1, using: &rng)
    let w = Tensor(uniform: [n, k], low: -1, high: 1, using: &rng)  // used transposed, as W_hhᵀ
    func product(_ rows: Range<Int>, threads: Int) -> [Float] {
      var c = [Float](repeating: 0, count: rows.count * n)
      var two = compute
      two.threads = threads
      a.withPointer { ap in
        w.withPointer { wp in
          gemm(
            transposeA: false, transposeB: true, m: rows.count, n: n, k: k, a: ap + rows.lowerBound * k, lda: k,
            b: wp, ldb: k, c: &c, ldc: n, compute: two)
        }
      }
      return c
    }
    let all = product(0..<m, threads: 1)
    #expect(product(0..<m, threads: 2) == all)
    #expect(product(13..<14, threads: 1) == Array(all[(13 * n)..<(14 * n)]))
    // The pre-packed recurrent product gives the same bits as the plain one.
    let packed = w.withPointer { PackedMatrix($0, ldb: k, k: k, n: n, transposed: true, compute: compute) }
    var c = [Float](repeating: 0, count: m * n)
    a.withPointer { packed.multiply($0, lda: k, m: m, beta: 0, into: &c, ldc: n) }
    #expect(c == all, "\(compute.emulatesBFloat16 ? "emulated" : "native")")
  }
}
