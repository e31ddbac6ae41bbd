import CKernels
import TensorCore

/// The four parameter tensors of one direction of one layer, PyTorch's layout.
/// G = gate blocks (`CellKind.gateCount`), H = hidden size, I = input width of the layer.
public struct RecurrentWeights: Sendable, Equatable {
  public var weightIH: Tensor  // [G*H, I]
  public var weightHH: Tensor  // [G*H, H]
  public var biasIH: Tensor  // [G*H]
  public var biasHH: Tensor  // [G*H]

  public init(weightIH: Tensor, weightHH: Tensor, biasIH: Tensor, biasHH: Tensor) {
    self.weightIH = weightIH
    self.weightHH = weightHH
    self.biasIH = biasIH
    self.biasHH = biasHH
  }
}

/// Hidden (and, for LSTM, cell) state of a recurrent layer: `[L*D, B, H]` each, index
/// `layer * D + direction`, as PyTorch's `h_n` / `c_n`.
public struct RecurrentState: Sendable, Equatable {
  public var hidden: Tensor
  public var cell: Tensor?

  public init(hidden: Tensor, cell: Tensor? = nil) {
    self.hidden = hidden
    self.cell = cell
  }
}

/// Everything one forward saved for its backward. Returned by `forward`; never stored in
/// the layer.
public struct RecurrentTrace: @unchecked Sendable {
  struct Sweep {
    let gx: FloatBuffer  // [T, B, G*H] by time: x·W_ihᵀ + b_ih
    let saved: FloatBuffer  // [T, B, S*H] by processing step
    let hs: FloatBuffer  // [T+1, B, H] by processing step; hs[0] = initial state
    let cs: FloatBuffer?  // [T+1, B, H], LSTM only
  }
  let sequenceLength: Int
  let batchSize: Int
  let lengths: [Int]?  // real steps of each batch row, nil when all are T
  let layerInputs: [FloatBuffer]  // [T, B, width] input of each layer (after dropout)
  let masks: [FloatBuffer?]  // dropout mask applied to each layer's output, if any
  let sweeps: [Sweep]  // index layer * D + direction
}

/// A multi-layer, optionally bidirectional recurrent layer: PyTorch's `nn.RNN`, `nn.LSTM`
/// and `nn.GRU` with `batch_first=False`. Input `[T, B, I]`, output `[T, B, D*H]` (both
/// directions concatenated), final state `[L*D, B, H]`.
///
/// Follows the performance shape of cuDNN: one input-projection product for all steps,
/// one recurrent product and one fused pointwise kernel per step, weight gradients as
/// large products after the reverse loop, no allocation inside the time loop.
public struct RecurrentLayer: Parameterized, Sendable, Equatable {
  public let kind: CellKind
  public let inputSize: Int
  public let hiddenSize: Int
  public let layerCount: Int
  public let bidirectional: Bool
  /// Dropout probability on the outputs of each layer but the last, in training only.
  public var dropout: Float
  /// Index `layer * directionCount + direction`.
  public var weights: [RecurrentWeights]

  public var directionCount: Int { bidirectional ? 2 : 1 }
  public var outputSize: Int { directionCount * hiddenSize }

  /// Parameters drawn from U(-1/√H, 1/√H), as PyTorch.
  public init(
    kind: CellKind, inputSize: Int, hiddenSize: Int, layerCount: Int = 1,
    bidirectional: Bool = false, dropout: Float = 0, using rng: inout some RandomNumberGenerator
  ) {
    precondition(inputSize > 0 && hiddenSize > 0 && layerCount > 0,
      "RecurrentLayer: sizes must be positive (input \(inputSize), hidden \(hiddenSize), layers \(layerCount))")
    precondition(dropout >= 0 && dropout < 1, "RecurrentLayer: dropout must be in [0, 1), got \(dropout)")
    self.kind = kind
    self.inputSize = inputSize
    self.hiddenSize = hiddenSize
    self.layerCount = layerCount
    self.bidirectional = bidirectional
    self.dropout = dropout
    let bound = 1 / Float(hiddenSize).squareRoot()
    let gh = kind.gateCount * hiddenSize
    var weights: [RecurrentWeights] = []
    for layer in 0..<layerCount {
      let width = layer == 0 ? inputSize : (bidirectional ? 2 : 1) * hiddenSize
      for _ in 0..<(bidirectional ? 2 : 1) {
        weights.append(
          RecurrentWeights(
            weightIH: Tensor(uniform: [gh, width], low: -bound, high: bound, using: &rng),
            weightHH: Tensor(uniform: [gh, hiddenSize], low: -bound, high: bound, using: &rng),
            biasIH: Tensor(uniform: [gh], low: -bound, high: bound, using: &rng),
            biasHH: Tensor(uniform: [gh], low: -bound, high: bound, using: &rng)))
      }
    }
    self.weights = weights
  }

  public mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows {
    for index in weights.indices {
      let suffix = "_l\(index / directionCount)" + (index % directionCount == 1 ? "_reverse" : "")
      try body("weight_ih" + suffix, &weights[index].weightIH)
      try body("weight_hh" + suffix, &weights[index].weightHH)
      try body("bias_ih" + suffix, &weights[index].biasIH)
      try body("bias_hh" + suffix, &weights[index].biasHH)
    }
  }

  /// A zero state for batch size `batchSize`.
  public func zeroState(batchSize: Int) -> RecurrentState {
    let shape = [layerCount * directionCount, batchSize, hiddenSize]
    return RecurrentState(hidden: Tensor(zeros: shape), cell: kind.hasCellState ? Tensor(zeros: shape) : nil)
  }

  /// Inference: no dropout.
  public func callAsFunction(
    _ input: Tensor, initialState: RecurrentState? = nil, lengths: [Int]? = nil,
    compute: Compute = .singleThread
  ) -> (output: Tensor, state: RecurrentState) {
    var rng = SplitMix64(seed: 0)  // unused: dropout is off outside training
    let result = forward(
      input, initialState: initialState, lengths: lengths, training: false, keepTrace: false, using: &rng,
      compute: compute)
    return (result.output, result.state)
  }

  /// Forward over a whole sequence.
  /// - Parameters:
  ///   - input: `[T, B, I]`
  ///   - initialState: `[L*D, B, H]` (and the cell state for LSTM); zeros when nil.
  ///   - lengths: for right-padded batches, the number of real steps of each sequence (`B`
  ///     values in `0...T`), as PyTorch's packed sequences and Keras masks: steps at or past a
  ///     sequence's length carry its state unchanged and output zeros, so the final state is
  ///     taken at its own length, the backward direction starts at its last real step, and
  ///     padded steps get no gradient. Nil: every sequence has `T` steps.
  ///   - training: applies inter-layer dropout, drawing masks from `rng`.
  /// - Returns: every step's output `[T, B, D*H]`, the final state, and the trace for `backward`.
  public func forward(
    _ input: Tensor, initialState: RecurrentState? = nil, lengths: [Int]? = nil, training: Bool,
    using rng: inout some RandomNumberGenerator, compute: Compute = .singleThread
  ) -> (output: Tensor, state: RecurrentState, trace: RecurrentTrace) {
    forward(
      input, initialState: initialState, lengths: lengths, training: training, keepTrace: true, using: &rng,
      compute: compute)
  }

  /// `keepTrace: false` keeps only what the next step needs (inference); the returned trace
  /// must then not be passed to `backward`.
  package func forward(
    _ input: Tensor, initialState: RecurrentState?, lengths: [Int]? = nil, training: Bool, keepTrace: Bool,
    using rng: inout some RandomNumberGenerator, compute: Compute
  ) -> (output: Tensor, state: RecurrentState, trace: RecurrentTrace) {
    precondition(input.rank == 3 && input.shape[2] == inputSize,
      "RecurrentLayer: expected input [T, B, \(inputSize)], got \(input.shape)")
    let T = input.shape[0]
    let B = input.shape[1]
    if let lengths {
      precondition(lengths.count == B && lengths.allSatisfy { $0 >= 0 && $0 <= T },
        "RecurrentLayer: expected \(B) lengths in 0...\(T), got \(lengths)")
    }
    let H = hiddenSize
    let D = directionCount
    let L = layerCount
    let stateShape = [L * D, B, H]
    if let state = initialState {
      precondition(state.hidden.shape == stateShape,
        "RecurrentLayer: expected initial hidden state \(stateShape), got \(state.hidden.shape)")
      if kind.hasCellState {
        precondition(state.cell?.shape == stateShape,
          "RecurrentLayer: LSTM needs an initial cell state \(stateShape)")
      }
    }
    let h0 = initialState.map { FloatBuffer($0.hidden) }
    let c0 = initialState?.cell.map { FloatBuffer($0) }
    let finalH = FloatBuffer(count: L * D * B * H)
    let finalC = kind.hasCellState ? FloatBuffer(count: L * D * B * H) : nil
    var layerInput = FloatBuffer(input)
    var layerInputs: [FloatBuffer] = []
    var masks: [FloatBuffer?] = []
    var sweeps: [RecurrentTrace.Sweep] = []
    for layer in 0..<L {
      let width = layer == 0 ? inputSize : D * H
      layerInputs.append(layerInput)
      let out = FloatBuffer(uninitializedCount: T * B * D * H)  // every column written by a sweep
      for direction in 0..<D {
        let index = layer * D + direction
        let sweep = makeSweep(T: T, B: B, keep: keepTrace)
        if let h0 { sweep.hs.pointer.update(from: h0.pointer + index * B * H, count: B * H) }
        if let c0, let cs = sweep.cs { cs.pointer.update(from: c0.pointer + index * B * H, count: B * H) }
        sweepForward(
          weights[index], sweep, x: layerInput.pointer, width: width, out: out.pointer,
          column: direction * H, stride: D * H, reverse: direction == 1, T: T, B: B, lengths: lengths,
          keep: keepTrace, compute: compute)
        let last = keepTrace ? T : T % 2
        (finalH.pointer + index * B * H).update(from: sweep.hs.pointer + last * B * H, count: B * H)
        if let finalC, let cs = sweep.cs {
          (finalC.pointer + index * B * H).update(from: cs.pointer + last * B * H, count: B * H)
        }
        sweeps.append(sweep)
      }
      var mask: FloatBuffer? = nil
      if layer < L - 1 && training && dropout > 0 {
        let m = dropoutMask(count: out.count, probability: dropout, using: &rng)
        for i in 0..<out.count { out.pointer[i] *= m.pointer[i] }
        mask = m
      }
      masks.append(mask)
      layerInput = out
    }
    let state = RecurrentState(
      hidden: finalH.tensor(shape: stateShape), cell: finalC?.tensor(shape: stateShape))
    let trace = RecurrentTrace(
      sequenceLength: T, batchSize: B, lengths: lengths, layerInputs: layerInputs, masks: masks, sweeps: sweeps)
    return (layerInput.tensor(shape: [T, B, D * H]), state, trace)
  }

  /// Backward of `forward`: adds parameter gradients into `gradient`.
  /// - Parameters:
  ///   - outputGradient: ∂loss/∂output `[T, B, D*H]`, or nil for zero.
  ///   - stateGradient: ∂loss/∂(final state), or nil for zero.
  ///   - layerReady: told each layer index, from the top, once its gradients are final.
  /// - Returns: ∂loss/∂input `[T, B, I]` and ∂loss/∂(initial state).
  public func backward(
    _ trace: RecurrentTrace, outputGradient: Tensor?, stateGradient: RecurrentState? = nil,
    into gradient: inout RecurrentLayer, compute: Compute = .singleThread, layerReady: ((Int) -> Void)? = nil
  ) -> (input: Tensor, initialState: RecurrentState) {
    let T = trace.sequenceLength
    let B = trace.batchSize
    let H = hiddenSize
    let D = directionCount
    let L = layerCount
    let stateShape = [L * D, B, H]
    if let g = outputGradient {
      precondition(g.shape == [T, B, D * H],
        "RecurrentLayer.backward: output gradient \(g.shape), expected \([T, B, D * H])")
    }
    if let g = stateGradient {
      precondition(g.hidden.shape == stateShape, "RecurrentLayer.backward: state gradient \(g.hidden.shape)")
    }
    var dOut = outputGradient.map { FloatBuffer($0) } ?? FloatBuffer(count: T * B * D * H)
    let dhT = stateGradient.map { FloatBuffer($0.hidden) }
    let dcT = stateGradient?.cell.map { FloatBuffer($0) }
    let dH0 = FloatBuffer(count: L * D * B * H)
    let dC0 = kind.hasCellState ? FloatBuffer(count: L * D * B * H) : nil
    var dInput = dOut
    for layer in (0..<L).reversed() {
      let width = layer == 0 ? inputSize : D * H
      let dIn = FloatBuffer(count: T * B * width)
      for direction in 0..<D {
        let index = layer * D + direction
        sweepBackward(
          weights[index], gradient: &gradient.weights[index], trace.sweeps[index],
          x: trace.layerInputs[layer].pointer, width: width, dOut: dOut.pointer,
          column: direction * H, stride: D * H, reverse: direction == 1, T: T, B: B, lengths: trace.lengths,
          dhT: dhT.map { $0.pointer + index * B * H }, dcT: dcT.map { $0.pointer + index * B * H },
          dx: dIn.pointer, dh0: dH0.pointer + index * B * H, dc0: dC0.map { $0.pointer + index * B * H },
          compute: compute)
      }
      layerReady?(layer)
      if layer > 0, let mask = trace.masks[layer - 1] {
        for i in 0..<dIn.count { dIn.pointer[i] *= mask.pointer[i] }
      }
      dOut = dIn
      dInput = dIn
    }
    return (
      dInput.tensor(shape: [T, B, inputSize]),
      RecurrentState(hidden: dH0.tensor(shape: stateShape), cell: dC0?.tensor(shape: stateShape))
    )
  }

  // MARK: - One direction of one layer

  /// Buffers of one sweep. Without `keep` (inference) only two states and one step of saved
  /// values are held, reused in turn, instead of every step's.
  private func makeSweep(T: Int, B: Int, keep: Bool) -> RecurrentTrace.Sweep {
    let H = hiddenSize
    let states = keep ? T + 1 : 2
    return RecurrentTrace.Sweep(
      gx: FloatBuffer(uninitializedCount: T * B * kind.gateCount * H),
      saved: FloatBuffer(uninitializedCount: (keep ? T : 1) * B * kind.savedSlots * H),
      hs: FloatBuffer(count: states * B * H),
      cs: kind.hasCellState ? FloatBuffer(count: states * B * H) : nil)
  }

  private func sweepForward(
    _ w: RecurrentWeights, _ s: RecurrentTrace.Sweep, x: UnsafePointer<Float>, width: Int,
    out: UnsafeMutablePointer<Float>, column: Int, stride: Int, reverse: Bool, T: Int, B: Int,
    lengths: [Int]?, keep: Bool, compute: Compute
  ) {
    let H = hiddenSize
    let GH = kind.gateCount * H
    let S = kind.savedSlots * H
    let gx = s.gx.pointer
    // All input projections in one product: [T*B, I] x [I, G*H].
    w.biasIH.withPointer { broadcastRows($0, rows: T * B, columns: GH, into: gx, ld: GH) }
    w.weightIH.withPointer { wih in
      gemm(
        transposeA: false, transposeB: true, m: T * B, n: GH, k: width, a: x, lda: width,
        b: wih, ldb: width, beta: 1, c: gx, ldc: GH, compute: compute)
    }
    let ghBuffer = FloatBuffer(uninitializedCount: B * GH)  // h·W_hhᵀ + b_hh, rows split by thread
    // W_hhᵀ packed once per sweep: every step's product then streams contiguous panels.
    // Reset-before GRU multiplies r⊙h by the n block separately, so it packs two pieces.
    let (packedMain, packedN) = w.weightHH.withPointer { whh in
      kind == .gruResetBefore
        ? (PackedMatrix(whh, ldb: H, k: H, n: 2 * H, transposed: true),
          PackedMatrix(whh + 2 * H * H, ldb: H, k: H, n: H, transposed: true))
        : (PackedMatrix(whh, ldb: H, k: H, n: GH, transposed: true), nil)
    }
    // The recurrence of each batch row is independent: each thread runs the whole time loop
    // on its own block of rows, so the loop needs no synchronisation per step.
    let parts = Self.rowParts(batch: B, compute: compute)
    w.biasHH.withPointer { bhh in
      parallelFor(parts: parts) { part in
        let b0 = B * part / parts
        let rows = B * (part + 1) / parts - b0
        let gh = ghBuffer.pointer + b0 * GH
        for step in 0..<T {
          let t = reverse ? T - 1 - step : step
          let current = keep ? step : step % 2
          let next = keep ? step + 1 : (step + 1) % 2
          let hPrev = s.hs.pointer + current * B * H + b0 * H
          let hNext = s.hs.pointer + next * B * H + b0 * H
          let gxt = gx + (t * B + b0) * GH
          let saved = s.saved.pointer + ((keep ? step : 0) * B + b0) * S
          if kind == .gruResetBefore {
            broadcastRows(bhh, rows: rows, columns: 2 * H, into: gh, ld: GH)
            packedMain.multiply(hPrev, lda: H, m: rows, beta: 1, into: gh, ldc: GH)
            rc_gru_reset_before_gates(gxt, gh, hPrev, saved, rows, H)
            broadcastRows(bhh + 2 * H, rows: rows, columns: H, into: gh + 2 * H, ld: GH)
            packedN!.multiply(saved + 3 * H, lda: S, m: rows, beta: 1, into: gh + 2 * H, ldc: GH)
            rc_gru_reset_before_output(gxt, gh, hPrev, hNext, saved, rows, H)
          } else {
            broadcastRows(bhh, rows: rows, columns: GH, into: gh, ld: GH)
            packedMain.multiply(hPrev, lda: H, m: rows, beta: 1, into: gh, ldc: GH)
            switch kind {
            case .rnnTanh, .rnnRelu:
              rc_rnn_forward(kind == .rnnRelu ? 1 : 0, gxt, gh, hNext, rows * H)
            case .lstm:
              let cs = s.cs!.pointer
              rc_lstm_forward(gxt, gh, cs + current * B * H + b0 * H, hNext, cs + next * B * H + b0 * H, saved, rows, H)
            case .gru:
              rc_gru_forward(gxt, gh, hPrev, hNext, saved, rows, H)
            case .gruResetBefore:
              break
            }
          }
          for b in 0..<rows {
            let o = out + (t * B + b0 + b) * stride + column
            if let lengths, t >= lengths[b0 + b] {
              // Padding: the state passes through unchanged and the output is zero.
              (hNext + b * H).update(from: hPrev + b * H, count: H)
              if let cs = s.cs?.pointer {
                (cs + next * B * H + (b0 + b) * H).update(from: cs + current * B * H + (b0 + b) * H, count: H)
              }
              o.update(repeating: 0, count: H)
            } else {
              o.update(from: hNext + b * H, count: H)
            }
          }
        }
      }
    }
  }

  /// Blocks of batch rows for the time loop: one per thread, at least 8 rows each.
  static func rowParts(batch: Int, compute: Compute) -> Int {
    max(1, min(compute.threads, batch / 8))
  }

  private func sweepBackward(
    _ w: RecurrentWeights, gradient g: inout RecurrentWeights, _ s: RecurrentTrace.Sweep,
    x: UnsafePointer<Float>, width: Int, dOut: UnsafePointer<Float>, column: Int, stride: Int,
    reverse: Bool, T: Int, B: Int, lengths: [Int]?, dhT: UnsafePointer<Float>?, dcT: UnsafePointer<Float>?,
    dx: UnsafeMutablePointer<Float>, dh0: UnsafeMutablePointer<Float>,
    dc0: UnsafeMutablePointer<Float>?, compute: Compute
  ) {
    let H = hiddenSize
    let GH = kind.gateCount * H
    let S = kind.savedSlots * H
    // Rows of W_hh whose product takes h directly (GRU reset-before: only r and z).
    let directRows = kind == .gruResetBefore ? 2 * H : GH
    let dgx = FloatBuffer(uninitializedCount: T * B * GH)  // by time, like gx; fully written
    let dgh = FloatBuffer(uninitializedCount: T * B * GH)  // by processing step, like hs
    let dhA = FloatBuffer(count: B * H)
    let dhB = FloatBuffer(count: B * H)
    let dc = FloatBuffer(count: B * H)
    let dRH = FloatBuffer(count: kind == .gruResetBefore ? B * H : 0)
    if let dhT { dhA.pointer.update(from: dhT, count: B * H) }
    if let dcT { dc.pointer.update(from: dcT, count: B * H) }
    let parts = Self.rowParts(batch: B, compute: compute)
    // W_hh packed once as the right operand of the per-step products.
    let (packedDirect, packedN) = w.weightHH.withPointer { whh in
      (PackedMatrix(whh, ldb: H, k: directRows, n: H, transposed: false),
        kind == .gruResetBefore ? PackedMatrix(whh + 2 * H * H, ldb: H, k: H, n: H, transposed: false) : nil)
    }
    do {
      parallelFor(parts: parts) { part in
        let b0 = B * part / parts
        let rows = B * (part + 1) / parts - b0
        var d = dhA.pointer + b0 * H  // ∂/∂h of this step's output
        var dPrev = dhB.pointer + b0 * H  // becomes ∂/∂h of the step before
        let dcRows = dc.pointer + b0 * H
        let dRHRows = dRH.pointer + b0 * H
        // Padded rows keep their cell-state gradient through a step: saved here, restored after.
        let dcKept = FloatBuffer(count: lengths != nil && kind == .lstm ? rows * H : 0)
        for step in (0..<T).reversed() {
          let t = reverse ? T - 1 - step : step
          for b in 0..<rows {
            if let lengths, t >= lengths[b0 + b] {
              if kind == .lstm { (dcKept.pointer + b * H).update(from: dcRows + b * H, count: H) }
              continue  // a padded step's output is a constant zero
            }
            let row = dOut + (t * B + b0 + b) * stride + column
            for j in 0..<H { d[b * H + j] += row[j] }
          }
          let hPrev = s.hs.pointer + step * B * H + b0 * H
          let saved = s.saved.pointer + (step * B + b0) * S
          let dgxt = dgx.pointer + (t * B + b0) * GH
          let dghs = dgh.pointer + (step * B + b0) * GH
          switch kind {
          case .rnnTanh, .rnnRelu:
            rc_rnn_backward(kind == .rnnRelu ? 1 : 0, hPrev + B * H, d, dgxt, dghs, dPrev, rows * H)
          case .lstm:
            rc_lstm_backward(saved, s.cs!.pointer + step * B * H + b0 * H, d, dcRows, dgxt, dghs, dPrev, rows, H)
          case .gru:
            rc_gru_backward(saved, hPrev, d, dgxt, dghs, dPrev, rows, H)
          case .gruResetBefore:
            gruResetBeforeBackwardOutput(
              saved: saved, hPrev: hPrev, dh: d, dgx: dgxt, dgh: dghs, dhPrev: dPrev, B: rows, H: H)
            // d(r⊙h) = dgh_n · W_hn
            packedN!.multiply(dghs + 2 * H, lda: GH, m: rows, beta: 0, into: dRHRows, ldc: H)
            gruResetBeforeBackwardGates(
              saved: saved, hPrev: hPrev, dRH: dRHRows, dgx: dgxt, dgh: dghs, dhPrev: dPrev, B: rows, H: H)
          }
          if let lengths {
            // Padded steps are the identity on the state: the gradient passes straight through
            // and nothing reaches the gates or the weights.
            for b in 0..<rows where t >= lengths[b0 + b] {
              (dgxt + b * GH).update(repeating: 0, count: GH)
              (dghs + b * GH).update(repeating: 0, count: GH)
              (dPrev + b * H).update(from: d + b * H, count: H)
              if kind == .lstm { (dcRows + b * H).update(from: dcKept.pointer + b * H, count: H) }
            }
          }
          packedDirect.multiply(dghs, lda: GH, m: rows, beta: 1, into: dPrev, ldc: H)
          swap(&d, &dPrev)
        }
        (dh0 + b0 * H).update(from: d, count: rows * H)
        if let dc0 { (dc0 + b0 * H).update(from: dcRows, count: rows * H) }
      }
    }
    // Weight gradients as three large products over all steps.
    g.weightIH.withMutablePointer { gw in
      gemm(
        transposeA: true, transposeB: false, m: GH, n: width, k: T * B, a: dgx.pointer, lda: GH,
        b: x, ldb: width, beta: 1, c: gw, ldc: width, compute: compute)
    }
    g.biasIH.withMutablePointer { addColumnSums(dgx.pointer, rows: T * B, columns: GH, ld: GH, into: $0) }
    g.weightHH.withMutablePointer { gw in
      gemm(
        transposeA: true, transposeB: false, m: directRows, n: H, k: T * B, a: dgh.pointer,
        lda: GH, b: s.hs.pointer, ldb: H, beta: 1, c: gw, ldc: H, compute: compute)
      if kind == .gruResetBefore {
        gemm(
          transposeA: true, transposeB: false, m: H, n: H, k: T * B, a: dgh.pointer + 2 * H,
          lda: GH, b: s.saved.pointer + 3 * H, ldb: S, beta: 1, c: gw + 2 * H * H, ldc: H,
          compute: compute)
      }
    }
    g.biasHH.withMutablePointer { addColumnSums(dgh.pointer, rows: T * B, columns: GH, ld: GH, into: $0) }
    w.weightIH.withPointer { wih in
      gemm(
        transposeA: false, transposeB: false, m: T * B, n: width, k: GH, a: dgx.pointer, lda: GH,
        b: wih, ldb: width, beta: 1, c: dx, ldc: width, compute: compute)
    }
  }
}

extension RecurrentLayer {
  /// The last step of each direction, `[B, D*H]`: the forward direction's output at T-1
  /// and the backward direction's at 0 (its final step), as Keras `return_sequences=False`.
  /// With `lengths`, the forward direction's output at each sequence's own last step
  /// (zeros for an empty sequence).
  public func lastStep(of output: Tensor, lengths: [Int]? = nil) -> Tensor {
    let T = output.shape[0]
    let B = output.shape[1]
    let H = hiddenSize
    let D = directionCount
    precondition(T > 0, "lastStep: empty sequence")
    var result = Tensor(zeros: [B, D * H])
    for b in 0..<B {
      let last = (lengths?[b] ?? T) - 1
      for d in 0..<D {
        let t = d == 0 ? last : 0
        if t < 0 { continue }
        for j in 0..<H {
          result.scalars[b * D * H + d * H + j] = output.scalars[(t * B + b) * D * H + d * H + j]
        }
      }
    }
    return result
  }

  /// The output gradient `[T, B, D*H]` that `lastStep(of:)` passes back from `[B, D*H]`.
  public func lastStepBackward(_ gradient: Tensor, sequenceLength T: Int, lengths: [Int]? = nil) -> Tensor {
    let B = gradient.shape[0]
    let H = hiddenSize
    let D = directionCount
    var result = Tensor(zeros: [T, B, D * H])
    for b in 0..<B {
      let last = (lengths?[b] ?? T) - 1
      for d in 0..<D {
        let t = d == 0 ? last : 0
        if t < 0 { continue }
        for j in 0..<H {
          result.scalars[(t * B + b) * D * H + d * H + j] = gradient.scalars[b * D * H + d * H + j]
        }
      }
    }
    return result
  }
}

/// Inverted-dropout mask: each entry 0 with probability p, else 1/(1-p).
func dropoutMask(count: Int, probability p: Float, using rng: inout some RandomNumberGenerator) -> FloatBuffer {
  let mask = FloatBuffer(count: count)
  let keep = 1 / (1 - p)
  for i in 0..<count { mask.pointer[i] = rng.nextUnitFloat() < p ? 0 : keep }
  return mask
}
