import CKernels
import Testing
import TestSupport

import Recurrent
import TensorCore

/// Pre-activations spread over a normal range plus extremes, where sigmoid and tanh saturate
/// and a naive exp would overflow.
private func inputs(_ count: Int, seed: UInt64) -> [Float] {
  var rng = SplitMix64(seed: seed)
  var values = Tensor(normal: [count], standardDeviation: 3, using: &rng).scalars
  let extremes: [Float] = [0, -0, 1e-8, -1e-8, 0.6, -0.65, 9.5, -9.5, 30, -30, 88, -88, 100, -100, 1e30, -1e30]
  for (i, e) in extremes.enumerated() where i < count { values[i] = e }
  return values
}

private func expectTwins(_ fast: [Float], _ naive: [Float], _ label: String, normwise: Bool = false) {
  let finite = !fast.contains { !$0.isFinite }
  #expect(finite, "\(label): non-finite values")
  // Backward products like (1 - n²) lose relative accuracy where a gate saturates (FMA or not
  // changes the last bits), so those are compared against the largest value of the vector.
  let scale = normwise ? (naive.map(abs).max() ?? 0) : 0
  expectClose(fast, naive, rtol: 1e-5, atol: max(2e-7, 1e-5 * scale), label)
}

/// Every instruction set's copy of the step kernels this CPU runs; the others named once.
private let stepKernelPaths: [GEMMKernel] = {
  let skipped = GEMMKernel.allCases.filter { $0 != .automatic && rc_step_kernels_for($0.c) == nil }
  if !skipped.isEmpty { print("step kernel tests: this CPU cannot run \(skipped); skipped") }
  return GEMMKernel.allCases.filter { $0 != .automatic && rc_step_kernels_for($0.c) != nil }
}()

@Test(arguments: CellKind.allCases, stepKernelPaths)
func vectorisedStepKernelsMatchTheirNaiveTwins(kind: CellKind, path: GEMMKernel) {
  let k = rc_step_kernels_for(path.c)!.pointee
  let (B, H) = (3, 37)  // odd sizes exercise the vector loops' tails
  let G = kind.gateCount * H
  let S = kind.savedSlots * H
  let gx = inputs(B * G, seed: 1)
  let gh = inputs(B * G, seed: 2)
  let hPrev = inputs(B * H, seed: 3).map { max(-1, min(1, $0 / 3)) }
  let cPrev = inputs(B * H, seed: 4).map { max(-10, min(10, $0)) }  // a cell state, not a pre-activation
  let dh = inputs(B * H, seed: 5).map { $0 / 3 }
  var fastH = [Float](repeating: 0, count: B * H), naiveH = fastH
  var fastC = fastH, naiveC = fastH
  var fastS = [Float](repeating: 0, count: max(S, 1) * B), naiveS = fastS
  let peephole = inputs(3 * H, seed: 7).map { max(-1, min(1, $0 / 3)) }
  if kind == .gruLN || kind == .lstmLN { return }  // their steps run in Swift (no vectorised copy)
  switch kind {
  case .rnnTanh, .rnnRelu:
    k.rnn_forward!(kind == .rnnRelu ? 1 : 0, gx, gh, &fastH, B * H)
    rnnForward(relu: kind == .rnnRelu, gx: gx, gh: gh, hNext: &naiveH, B: B, H: H)
  case .lstm:
    k.lstm_forward!(gx, gh, cPrev, &fastH, &fastC, &fastS, B, H)
    lstmForward(gx: gx, gh: gh, cPrev: cPrev, hNext: &naiveH, cNext: &naiveC, saved: &naiveS, B: B, H: H)
  case .lstmPeephole:
    k.lstm_peephole_forward!(gx, gh, cPrev, peephole, &fastH, &fastC, &fastS, B, H)
    lstmForward(gx: gx, gh: gh, cPrev: cPrev, hNext: &naiveH, cNext: &naiveC, saved: &naiveS, B: B, H: H, peephole: peephole)
  case .gru:
    k.gru_forward!(gx, gh, hPrev, &fastH, &fastS, B, H)
    gruForward(gx: gx, gh: gh, hPrev: hPrev, hNext: &naiveH, saved: &naiveS, B: B, H: H)
  case .gruResetBefore:
    k.gru_reset_before_gates!(gx, gh, hPrev, &fastS, B, H)
    gruResetBeforeGates(gx: gx, gh: gh, hPrev: hPrev, saved: &naiveS, B: B, H: H)
    k.gru_reset_before_output!(gx, gh, hPrev, &fastH, &fastS, B, H)
    gruResetBeforeOutput(gx: gx, gh: gh, hPrev: hPrev, hNext: &naiveH, saved: &naiveS, B: B, H: H)
  case .gruLN, .lstmLN:
    return
  case .minGRU, .minLSTM:
    // States of both signs and zero: the log-space step (h > 0) and the linear one (h <= 0).
    let lstm: Int32 = kind == .minLSTM ? 1 : 0
    var h = hPrev.map(abs)
    for i in stride(from: 0, to: h.count, by: 3) { h[i] = -h[i] }
    h[1] = 0
    k.min_forward!(lstm, gx, h, &fastH, B, H)
    minForward(lstm: lstm == 1, gx: gx, hPrev: h, hNext: &naiveH, B: B, H: H)
    // The sequential (linear-space) step is the same function computed another way.
    var sequential = naiveH
    minStep(lstm: lstm == 1, gx: gx, hPrev: h, hNext: &sequential, B: B, H: H)
    expectTwins(sequential, naiveH, "\(kind) sequential vs parallel step")
    expectTwins(fastH, naiveH, "\(kind) \(path) forward h'")
    var fastDx = [Float](repeating: 0, count: B * G), naiveDx = fastDx
    var fastPrev = [Float](repeating: 0, count: B * H), naivePrev = fastPrev
    k.min_backward!(lstm, gx, h, dh, &fastDx, &fastPrev, B, H)
    minBackward(lstm: lstm == 1, gx: gx, hPrev: h, dh: dh, dgx: &naiveDx, dhPrev: &naivePrev, B: B, H: H)
    expectTwins(fastDx, naiveDx, "\(kind) backward dgx", normwise: true)
    expectTwins(fastPrev, naivePrev, "\(kind) backward dh", normwise: true)
    return
  }
  expectTwins(fastH, naiveH, "\(kind) \(path) forward h'")
  expectTwins(fastS, naiveS, "\(kind) forward saved")
  expectTwins(fastC, naiveC, "\(kind) forward c'")
  // Backward from the same saved values.
  var fastDx = [Float](repeating: 0, count: B * G), naiveDx = fastDx
  var fastDh = fastDx, naiveDh = fastDx
  var fastPrev = [Float](repeating: 0, count: B * H), naivePrev = fastPrev
  var fastDc = inputs(B * H, seed: 6).map { $0 / 3 }
  var naiveDc = fastDc
  switch kind {
  case .rnnTanh, .rnnRelu:
    k.rnn_backward!(kind == .rnnRelu ? 1 : 0, naiveH, dh, &fastDx, &fastDh, &fastPrev, B * H)
    rnnBackward(relu: kind == .rnnRelu, hNext: naiveH, dh: dh, dgx: &naiveDx, dgh: &naiveDh, dhPrev: &naivePrev, B: B, H: H)
  case .lstm:
    k.lstm_backward!(naiveS, cPrev, dh, &fastDc, &fastDx, &fastDh, &fastPrev, B, H)
    lstmBackward(saved: naiveS, cPrev: cPrev, dh: dh, dc: &naiveDc, dgx: &naiveDx, dgh: &naiveDh, dhPrev: &naivePrev, B: B, H: H)
  case .gru:
    k.gru_backward!(naiveS, hPrev, dh, &fastDx, &fastDh, &fastPrev, B, H)
    gruBackward(saved: naiveS, hPrev: hPrev, dh: dh, dgx: &naiveDx, dgh: &naiveDh, dhPrev: &naivePrev, B: B, H: H)
  case .lstmPeephole:
    var fastDp = [Float](repeating: 0, count: B * 3 * H), naiveDp = fastDp
    k.lstm_peephole_backward!(naiveS, cPrev, peephole, dh, &fastDc, &fastDx, &fastDh, &fastPrev, &fastDp, B, H)
    lstmBackward(
      saved: naiveS, cPrev: cPrev, dh: dh, dc: &naiveDc, dgx: &naiveDx, dgh: &naiveDh, dhPrev: &naivePrev, B: B, H: H,
      peephole: peephole, dPeephole: &naiveDp)
    expectTwins(fastDp, naiveDp, "\(kind) backward dpeephole", normwise: true)
  case .gruResetBefore, .minGRU, .minLSTM, .gruLN, .lstmLN:
    return  // its backward halves have no vectorised copy (min cells: above)
  }
  expectTwins(fastDx, naiveDx, "\(kind) backward dgx", normwise: true)
  expectTwins(fastDh, naiveDh, "\(kind) backward dgh", normwise: true)
  expectTwins(fastPrev, naivePrev, "\(kind) backward dh", normwise: true)
  expectTwins(fastDc, naiveDc, "\(kind) backward dc", normwise: true)
}
