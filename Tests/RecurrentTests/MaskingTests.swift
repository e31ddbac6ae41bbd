import Testing
import TestSupport

import Recurrent
import TensorCore

// Variable-length sequences: a right-padded batch with lengths must give, for every sequence,
// exactly what that sequence gives alone (a batch of one, T = its length): outputs at its real
// steps, zeros past them, the final state at its own length, the backward direction starting
// at its last real step, and gradients that padded steps do not touch.

/// Row `b` of a `[T, B, F]` tensor over its first `steps` steps, as `[steps, 1, F]`.
private func sequence(_ x: Tensor, _ b: Int, steps: Int) -> Tensor {
  let (B, F) = (x.shape[1], x.shape[2])
  var out = Tensor(zeros: [steps, 1, F])
  for t in 0..<steps {
    for f in 0..<F { out.scalars[t * F + f] = x.scalars[(t * B + b) * F + f] }
  }
  return out
}

/// Batch row `b` of a state `[L*D, B, H]`, as `[L*D, 1, H]`.
private func stateRow(_ s: Tensor, _ b: Int) -> Tensor {
  let (N, B, H) = (s.shape[0], s.shape[1], s.shape[2])
  var out = Tensor(zeros: [N, 1, H])
  for n in 0..<N {
    for j in 0..<H { out.scalars[n * H + j] = s.scalars[(n * B + b) * H + j] }
  }
  return out
}

@Test(arguments: CellKind.allCases)
func paddedBatchEqualsOneSequenceAtATime(kind: CellKind) {
  for threads in [1, 2] {
    var rng = SplitMix64(seed: 31)
    let (T, I, H, L) = (6, 3, 4, 2)
    // 17 rows so that two threads each take a block; lengths cover 0, 1 and T.
    let lengths = [6, 3, 1, 0, 5, 2, 6, 4, 1, 3, 6, 2, 5, 4, 3, 6, 1]
    let B = lengths.count
    let compute = Compute(threads: threads)
    let layer = RecurrentLayer(
      kind: kind, inputSize: I, hiddenSize: H, layerCount: L, bidirectional: true, using: &rng)
    let D = layer.directionCount
    let x = Tensor(normal: [T, B, I], using: &rng)
    let stateShape = [L * D, B, H]
    let h0 = Tensor(normal: stateShape, standardDeviation: 0.5, using: &rng)
    let c0 = kind.hasCellState ? Tensor(normal: stateShape, standardDeviation: 0.5, using: &rng) : nil
    // Gradients arriving at the outputs (also at padded steps: they must be ignored) and states.
    let dOut = Tensor(normal: [T, B, D * H], using: &rng)
    let dH = Tensor(normal: stateShape, using: &rng)
    let dC = kind.hasCellState ? Tensor(normal: stateShape, using: &rng) : nil

    var noDropout = SplitMix64(seed: 0)
    let (out, state, trace) = layer.forward(
      x, initialState: RecurrentState(hidden: h0, cell: c0), lengths: lengths, training: true,
      using: &noDropout, compute: compute)
    var gradient = layer.zeroGradient
    let (dx, d0) = layer.backward(
      trace, outputGradient: dOut, stateGradient: RecurrentState(hidden: dH, cell: dC), into: &gradient,
      compute: compute)
    let inference = layer(x, initialState: RecurrentState(hidden: h0, cell: c0), lengths: lengths, compute: compute)
    #expect(inference.output == out && inference.state == state, "\(kind): inference path differs")

    var summed = layer.zeroGradient
    let label = "\(kind) threads=\(threads)"
    for b in 0..<B {
      let n = lengths[b]
      let rowLabel = "\(label) row \(b) (length \(n))"
      if n == 0 {
        // Nothing ran: the state is the initial one, outputs and input gradients are zero,
        // and the state gradient passes straight through.
        #expect(stateRow(state.hidden, b) == stateRow(h0, b), "\(rowLabel): final state")
        #expect(sequence(out, b, steps: T).scalars.allSatisfy { $0 == 0 }, "\(rowLabel): outputs")
        #expect(sequence(dx, b, steps: T).scalars.allSatisfy { $0 == 0 }, "\(rowLabel): dx")
        #expect(stateRow(d0.hidden, b) == stateRow(dH, b), "\(rowLabel): dh0")
        continue
      }
      let alone = layer.forward(
        sequence(x, b, steps: n),
        initialState: RecurrentState(hidden: stateRow(h0, b), cell: c0.map { stateRow($0, b) }),
        training: true, using: &noDropout)
      expectClose(sequence(out, b, steps: n).scalars, alone.output.scalars, rtol: 1e-5, atol: 1e-6, "\(rowLabel): outputs")
      let padding = (n..<T).flatMap { t in (0..<(D * H)).map { out.scalars[(t * B + b) * D * H + $0] } }
      #expect(padding.allSatisfy { $0 == 0 }, "\(rowLabel): padded outputs must be zero")
      expectClose(stateRow(state.hidden, b).scalars, alone.state.hidden.scalars, rtol: 1e-5, atol: 1e-6, "\(rowLabel): h_n")
      if let cell = state.cell {
        expectClose(stateRow(cell, b).scalars, alone.state.cell!.scalars, rtol: 1e-5, atol: 1e-6, "\(rowLabel): c_n")
      }
      let (dxAlone, d0Alone) = layer.backward(
        alone.trace, outputGradient: sequence(dOut, b, steps: n),
        stateGradient: RecurrentState(hidden: stateRow(dH, b), cell: dC.map { stateRow($0, b) }),
        into: &summed)
      expectClose(sequence(dx, b, steps: n).scalars, dxAlone.scalars, rtol: 1e-4, atol: 1e-5, "\(rowLabel): dx")
      let paddedDx = (n..<T).flatMap { t in (0..<I).map { dx.scalars[(t * B + b) * I + $0] } }
      #expect(paddedDx.allSatisfy { $0 == 0 }, "\(rowLabel): padded steps must get no input gradient")
      expectClose(stateRow(d0.hidden, b).scalars, d0Alone.hidden.scalars, rtol: 1e-4, atol: 1e-5, "\(rowLabel): dh0")
      if let dc = d0.cell {
        expectClose(stateRow(dc, b).scalars, d0Alone.cell!.scalars, rtol: 1e-4, atol: 1e-5, "\(rowLabel): dc0")
      }
    }
    // The batch's weight gradients are the sum of the sequences' own.
    for (batch, alone) in zip(gradient.namedParameters, summed.namedParameters) {
      expectClose(batch.tensor.scalars, alone.tensor.scalars, rtol: 1e-4, atol: 1e-5, "\(label): \(batch.name)")
    }
  }
}

@Test func lastStepTakesEachSequenceAtItsOwnLength() {
  var rng = SplitMix64(seed: 5)
  let layer = RecurrentLayer(kind: .gru, inputSize: 2, hiddenSize: 3, bidirectional: true, using: &rng)
  let lengths = [4, 2, 1]
  let x = Tensor(normal: [4, 3, 2], using: &rng)
  let (out, state) = layer(x, lengths: lengths)
  let last = layer.lastStep(of: out, lengths: lengths)
  for b in 0..<3 {
    let alone = layer(sequence(x, b, steps: lengths[b]))
    let expected = layer.lastStep(of: alone.output)
    expectClose(
      Array(last.scalars[(b * 6)..<(b * 6 + 6)]), expected.scalars, rtol: 1e-5, atol: 1e-6, "row \(b)")
    // The forward half is the forward direction's final state.
    expectClose(Array(last.scalars[(b * 6)..<(b * 6 + 3)]), stateRow(state.hidden, b).scalars.prefix(3).map { $0 },
      rtol: 1e-6, atol: 1e-7, "row \(b) forward half")
  }
  // lastStepBackward scatters the gradient to exactly the positions lastStep reads.
  let g = Tensor(normal: [3, 6], using: &rng)
  let scattered = layer.lastStepBackward(g, sequenceLength: 4, lengths: lengths)
  #expect(abs(scattered.dot(out) - g.dot(last)) < 1e-4)
}
