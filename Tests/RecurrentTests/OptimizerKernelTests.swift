import CKernels
import Testing

import Recurrent
import TensorCore

// The vectorised, threaded Adam/AdamW kernel against the rule written out in plain Swift
// (Swift never fuses a multiply and an add, and the kernel is compiled with contraction off):
// the same bits on every instruction set this CPU runs and any thread count.

private struct AdamCase {
  var l1: Float = 0, weightDecay: Float = 0, decoupled = false
}

@Test(arguments: [AdamCase(), AdamCase(l1: 1e-3, weightDecay: 1e-2), AdamCase(weightDecay: 0.1, decoupled: true)])
private func adamKernelIsTheRuleBitForBit(rule: AdamCase) {
  let count = 100_003  // several threads' parts and a ragged tail
  var rng = SplitMix64(seed: 21)
  let p0 = Tensor(normal: [count], using: &rng).scalars
  var g = Tensor(normal: [count], using: &rng).scalars
  g[0] = 0
  g[1] = 1e-30
  let m0 = Tensor(normal: [count], standardDeviation: 0.1, using: &rng).scalars
  let v0 = Tensor(uniform: [count], low: 0, high: 0.01, using: &rng).scalars
  let (beta1, beta2, lr, epsilon, step): (Float, Float, Float, Float, Float) = (0.9, 0.999, 1e-3, 1e-8, 7)
  let stepSize = lr / (1 - _pow(beta1, step))
  let root2 = (1 - _pow(beta2, step)).squareRoot()
  let decay = 1 - lr * rule.weightDecay
  // The rule in Swift.
  var p = p0, m = m0, v = v0
  for j in 0..<count {
    let value = p[j]
    var grad = g[j]
    if rule.l1 != 0 { grad += rule.l1 * (value > 0 ? 1 : (value < 0 ? -1 : 0)) }
    if rule.weightDecay != 0 && !rule.decoupled { grad += rule.weightDecay * value }
    let start = rule.decoupled ? value * decay : value
    let m1 = beta1 * m[j] + (1 - beta1) * grad
    let m2 = beta2 * v[j] + (1 - beta2) * grad * grad
    m[j] = m1
    v[j] = m2
    p[j] = start - stepSize * m1 / (m2.squareRoot() / root2 + epsilon)
  }
  for kernel in GEMMKernel.supported {
    for threads: Int32 in [1, 2, 3] {
      var (pk, mk, vk) = (p0, m0, v0)
      pk.withUnsafeMutableBufferPointer { pp in
        mk.withUnsafeMutableBufferPointer { mp in
          vk.withUnsafeMutableBufferPointer { vp in
            g.withUnsafeBufferPointer { gp in
              var args = rc_adam_args(
                p: pp.baseAddress, first: mp.baseAddress, second: vp.baseAddress, g: gp.baseAddress, beta1: beta1,
                beta2: beta2, step_size: stepSize, root2: root2, epsilon: epsilon, l1: rule.l1,
                l2: rule.decoupled ? 0 : rule.weightDecay, decay: decay, decoupled: rule.decoupled ? 1 : 0)
              rc_adam_update(threads, kernel.c, &args, count)
            }
          }
        }
      }
      #expect(pk == p && mk == m && vk == v, "kernel \(kernel), \(threads) threads")
    }
  }
}

#if os(Linux) && canImport(Glibc)
@Test func allocatorKeepsFreedMemoryOnGlibc() {
  // The command-line tool's allocator settings must reach glibc (they were once compiled out
  // by a missing header, and every large buffer was faulted in afresh each training step).
  #expect(rc_keep_freed_memory() == 1)
}
#endif
