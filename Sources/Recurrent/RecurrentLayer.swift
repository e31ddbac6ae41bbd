import CKernels
import TensorCore

/// The four parameter tensors of one direction of one layer, PyTorch's layout.
/// G = gate blocks (`CellKind.gateCount`), H = hidden size, I = input width of the layer.
public struct RecurrentWeights: Sendable, Equatable {
  /// Input weights `[G*H, I]`, gates stacked in PyTorch's order.
  public var weightIH: Tensor  // [G*H, I]
  /// Recurrent weights `[G*H, H]`.
  public var weightHH: Tensor  // [G*H, H]
  /// Input bias `[G*H]`.
  public var biasIH: Tensor  // [G*H]
  /// Recurrent bias `[G*H]`.
  public var biasHH: Tensor  // [G*H]
  /// The cell's own parameters `[P*H]` (`CellKind.cellParameters`: a peephole LSTM's p_i|p_f|p_o),
  /// nil for cells without.
  public var cellParameters: Tensor?
  /// A projected LSTM's projection `W_hr` `[P, H]` (PyTorch's `weight_hr_l{k}`): the state is
  /// `h = W_hr·(o⊙tanh c)`, `[P]` wide; nil without a projection.
  public var projection: Tensor?

  /// Weights from their tensors (shapes are checked by the layer).
  public init(
    weightIH: Tensor, weightHH: Tensor, biasIH: Tensor, biasHH: Tensor, cellParameters: Tensor? = nil,
    projection: Tensor? = nil
  ) {
    self.weightIH = weightIH
    self.weightHH = weightHH
    self.biasIH = biasIH
    self.biasHH = biasHH
    self.cellParameters = cellParameters
    self.projection = projection
  }

  /// The tensors in `forEachParameter` order (a min cell's empty `weightHH`/`biasHH` left out).
  public var tensors: [Tensor] {
    ([weightIH, weightHH, biasIH, biasHH] + (cellParameters.map { [$0] } ?? []) + (projection.map { [$0] } ?? []))
      .filter { $0.count > 0 }
  }
}

/// Hidden (and, for LSTM, cell) state of a recurrent layer: `[L*D, B, H]` each, index
/// `layer * D + direction`, as PyTorch's `h_n` / `c_n` (a projected LSTM's `h` is `[L*D, B, P]`).
public struct RecurrentState: Sendable, Equatable {
  /// `h` `[L*D, B, H]` (layers times directions), as PyTorch's `h_0`/`h_n`; `P` wide when projected.
  public var hidden: Tensor
  /// `c` `[L*D, B, H]` for LSTM; nil otherwise.
  public var cell: Tensor?

  /// A state from its parts.
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
    let hs: FloatBuffer  // [T+1, B, Hs] by processing step; hs[0] = initial state (Hs: P when projected, else H)
    let cs: FloatBuffer?  // [T+1, B, H], LSTM only
    var raw: FloatBuffer? = nil  // projected LSTM: [T, B, H] o⊙tanh(c) by processing step, before W_hr
    var normalizedInput: FloatBuffer? = nil  // layer-normalised cells: [T, B, G*H] LN(x·W_ihᵀ) before γx
    var inputRstd: FloatBuffer? = nil  // and each row's 1/√(var + ε) [T, B]
    var zoneout: RecurrentSweepZoneout? = nil  // training with zoneout: its masks and h_new
    var weights: RecurrentWeights? = nil  // with weight drop: the weights this sweep ran with
    var weightMask: FloatBuffer? = nil  // with weight drop: W_hh's mask [G*H, H]
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
  /// The cell of every layer and direction.
  public let kind: CellKind
  /// Features `I` of each input step.
  public let inputSize: Int
  /// Units `H` per direction.
  public let hiddenSize: Int
  /// A projected LSTM's state width `P` (PyTorch's `proj_size`, `0 < P < H`): each step's
  /// `o⊙tanh(c)` `[H]` is multiplied by `W_hr` `[P, H]` into `h` `[P]`, which is the output, the
  /// next step's recurrent operand (`W_hh` is `[4H, P]`) and the next layer's input; 0: none.
  public let projectionSize: Int
  /// Stacked layers `L`.
  public let layerCount: Int
  /// Whether each layer also runs backwards in time.
  public let bidirectional: Bool
  /// Dropout probability on the outputs of each layer but the last, in training only.
  public var dropout: Float
  /// Locked (variational) dropout on the outputs of each layer but the last, in training only:
  /// one mask per sequence, the same at every step (see `Dropout.locked`).
  public var lockedDropout: Float = 0
  /// Weight drop (DropConnect on `W_hh`, AWD-LSTM): in training each recurrent weight is zeroed
  /// with this probability and the rest scaled by 1/(1-p), one mask per forward pass (a window)
  /// for every step and row; the gradient reaches only the kept weights. The identity at inference,
  /// and for the min cells, which have no `W_hh`.
  public var weightDrop: Float = 0
  /// Zoneout probability on `h` (haste's form, not on an LSTM's `c`): in training each unit
  /// keeps its previous value with this probability, `h = d⊙h_prev + (1-d)⊙h_new`; at
  /// inference `h = p·h_prev + (1-p)·h_new`, the expectation. Unlike the others this changes
  /// the model at inference, so checkpoints store it.
  public var zoneout: Float = 0
  /// Index `layer * directionCount + direction`.
  public var weights: [RecurrentWeights]

  /// Directions `D`: 2 when bidirectional, else 1.
  public var directionCount: Int { bidirectional ? 2 : 1 }
  /// Width of `h`: `projectionSize` when projected, else `hiddenSize`.
  public var stateSize: Int { projectionSize > 0 ? projectionSize : hiddenSize }
  /// Features of each output step: `D * H` (`D * P` when projected).
  public var outputSize: Int { directionCount * stateSize }

  /// Parameters drawn as `initialization` says: `.pytorch` (every weight and bias from
  /// U(-1/√H, 1/√H), PyTorch's `nn.GRU`/`nn.LSTM`) or `.keras` (Glorot-uniform `weight_ih`,
  /// orthogonal `weight_hh`, zero biases, Keras's defaults). `forgetBias` (LSTM only) then sets
  /// the forget gate's bias to that value: `bias_ih`'s forget block to `forgetBias` and
  /// `bias_hh`'s to 0, so their sum is `forgetBias` (Keras's `unit_forget_bias` is 1).
  /// `projectionSize` (LSTM only, `0 < P < H`): PyTorch's `proj_size`; `W_hr` is drawn as the
  /// other weights (Keras: Glorot-uniform).
  public init(
    kind: CellKind, inputSize: Int, hiddenSize: Int, layerCount: Int = 1,
    bidirectional: Bool = false, dropout: Float = 0, initialization: Initialization = .pytorch,
    forgetBias: Float? = nil, projectionSize: Int = 0, using rng: inout some RandomNumberGenerator
  ) {
    precondition(inputSize > 0 && hiddenSize > 0 && layerCount > 0,
      "RecurrentLayer: sizes must be positive (input \(inputSize), hidden \(hiddenSize), layers \(layerCount))")
    precondition(dropout >= 0 && dropout < 1, "RecurrentLayer: dropout must be in [0, 1), got \(dropout)")
    precondition(forgetBias == nil || kind.isLSTM, "RecurrentLayer: a forget-gate bias needs an LSTM, not \(kind)")
    precondition(projectionSize == 0 || (kind == .lstm && projectionSize > 0 && projectionSize < hiddenSize),
      "RecurrentLayer: a projection needs an lstm and 0 < P < H, got \(kind.rawValue) P=\(projectionSize) H=\(hiddenSize)")
    self.projectionSize = projectionSize
    self.kind = kind
    self.inputSize = inputSize
    self.hiddenSize = hiddenSize
    self.layerCount = layerCount
    self.bidirectional = bidirectional
    self.dropout = dropout
    let bound = 1 / Float(hiddenSize).squareRoot()
    let gh = kind.gateCount * hiddenSize
    let hh = kind.hasRecurrentWeights ? gh : 0  // rows of weight_hh and bias_hh (none in a min cell)
    let state = projectionSize > 0 ? projectionSize : hiddenSize  // columns of weight_hh
    var weights: [RecurrentWeights] = []
    for layer in 0..<layerCount {
      let width = layer == 0 ? inputSize : (bidirectional ? 2 : 1) * state
      for _ in 0..<(bidirectional ? 2 : 1) {
        var w: RecurrentWeights
        switch initialization {
        case .pytorch:
          w = RecurrentWeights(
            weightIH: Tensor(uniform: [gh, width], low: -bound, high: bound, using: &rng),
            weightHH: Tensor(uniform: [hh, state], low: -bound, high: bound, using: &rng),
            biasIH: Tensor(uniform: [gh], low: -bound, high: bound, using: &rng),
            biasHH: Tensor(uniform: [hh], low: -bound, high: bound, using: &rng))
        case .keras:
          let limit = (6 / Float(width + gh)).squareRoot()  // Glorot over Keras's [width, G*H] kernel
          w = RecurrentWeights(
            weightIH: Tensor(uniform: [gh, width], low: -limit, high: limit, using: &rng),
            weightHH: hh > 0 ? Tensor(orthogonalColumns: [hh, state], using: &rng) : Tensor(zeros: [0, state]),
            biasIH: Tensor(zeros: [gh]), biasHH: Tensor(zeros: [hh]))
        }
        if let own = kind.cellParameters {
          // Layer norms start at gain 1 and shift 0; peepholes PyTorch-style U(-1/√H, 1/√H), or
          // zeros as Keras starts its biases.
          let shape = [own.blocks * hiddenSize]
          if let initial = kind.kernels.initialParameters {
            w.cellParameters = Tensor(shape: shape, scalars: initial(hiddenSize))
          } else {
            w.cellParameters =
              initialization == .pytorch
              ? Tensor(uniform: shape, low: -bound, high: bound, using: &rng) : Tensor(zeros: shape)
          }
        }
        if projectionSize > 0 {
          let limit = initialization == .pytorch ? bound : (6 / Float(projectionSize + hiddenSize)).squareRoot()
          w.projection = Tensor(uniform: [projectionSize, hiddenSize], low: -limit, high: limit, using: &rng)
        }
        if let forgetBias {
          for j in hiddenSize..<(2 * hiddenSize) {  // LSTM gates i, f, g, o: f is the second block
            w.biasIH.scalars[j] = forgetBias
            w.biasHH.scalars[j] = 0
          }
        }
        weights.append(w)
      }
    }
    self.weights = weights
  }

  /// Visits the weights by PyTorch's names (`weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0`, `..._reverse`);
  /// the min cells have no `weight_hh`/`bias_hh` (their `RecurrentWeights` hold them empty, `[0, H]` and `[0]`).
  public mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows {
    for index in weights.indices {
      let suffix = "_l\(index / directionCount)" + (index % directionCount == 1 ? "_reverse" : "")
      try body("weight_ih" + suffix, &weights[index].weightIH)
      if kind.hasRecurrentWeights { try body("weight_hh" + suffix, &weights[index].weightHH) }
      try body("bias_ih" + suffix, &weights[index].biasIH)
      if kind.hasRecurrentWeights { try body("bias_hh" + suffix, &weights[index].biasHH) }
      if let name = kind.cellParameters?.name, weights[index].cellParameters != nil {
        try body(name + suffix, &weights[index].cellParameters!)
      }
      if weights[index].projection != nil { try body("weight_hr" + suffix, &weights[index].projection!) }
    }
  }

  /// Tensors per direction and layer: PyTorch's four, and the cell's own parameters if any.
  public var tensorsPerDirection: Int {
    (kind.hasRecurrentWeights ? 4 : 2) + (kind.cellParameters == nil ? 0 : 1) + (projectionSize > 0 ? 1 : 0)
  }

  /// Checks the regularizers' rates (each in [0, 1)).
  func checkRates() {
    for (name, p) in [("lockedDropout", lockedDropout), ("weightDrop", weightDrop), ("zoneout", zoneout)] {
      precondition(p >= 0 && p < 1, "RecurrentLayer: \(name) must be in [0, 1), got \(p)")
    }
  }

  /// A zero state for batch size `batchSize`.
  public func zeroState(batchSize: Int) -> RecurrentState {
    let shape = [layerCount * directionCount, batchSize, hiddenSize]
    return RecurrentState(
      hidden: Tensor(zeros: [layerCount * directionCount, batchSize, stateSize]),
      cell: kind.hasCellState ? Tensor(zeros: shape) : nil)
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
  ///   - rows: which rows of a global batch `input` holds (data-parallel training), so the
  ///     dropout masks are the global batch's; nil: all of them.
  ///   - rng: the dropout masks' random source.
  ///   - compute: threads for the products; results do not depend on the count.
  /// - Returns: every step's output `[T, B, D*H]`, the final state, and the trace for `backward`.
  public func forward(
    _ input: Tensor, initialState: RecurrentState? = nil, lengths: [Int]? = nil, training: Bool,
    rows: BatchRows? = nil, using rng: inout some RandomNumberGenerator, compute: Compute = .singleThread
  ) -> (output: Tensor, state: RecurrentState, trace: RecurrentTrace) {
    forward(
      input, initialState: initialState, lengths: lengths, training: training, keepTrace: true, rows: rows, using: &rng,
      compute: compute)
  }

  /// `keepTrace: false` keeps only what the next step needs (inference); the returned trace
  /// must then not be passed to `backward`.
  package func forward(
    _ input: Tensor, initialState: RecurrentState?, lengths: [Int]? = nil, training: Bool, keepTrace: Bool,
    rows: BatchRows? = nil, using rng: inout some RandomNumberGenerator, compute: Compute
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
    let Hs = stateSize
    let D = directionCount
    let L = layerCount
    let stateShape = [L * D, B, Hs]
    let cellShape = [L * D, B, H]
    if let state = initialState {
      precondition(state.hidden.shape == stateShape,
        "RecurrentLayer: expected initial hidden state \(stateShape), got \(state.hidden.shape)")
      if kind.hasCellState {
        precondition(state.cell?.shape == cellShape,
          "RecurrentLayer: LSTM needs an initial cell state \(cellShape)")
      }
    }
    checkRates()
    let h0 = initialState.map { FloatBuffer($0.hidden) }
    let c0 = initialState?.cell.map { FloatBuffer($0) }
    let finalH = FloatBuffer(count: L * D * B * Hs)
    let finalC = kind.hasCellState ? FloatBuffer(count: L * D * B * H) : nil
    var layerInput = FloatBuffer(input)
    var layerInputs: [FloatBuffer] = []
    var masks: [FloatBuffer?] = []
    var sweeps: [RecurrentTrace.Sweep] = []
    for layer in 0..<L {
      let width = layer == 0 ? inputSize : D * Hs
      layerInputs.append(layerInput)
      let out = FloatBuffer(uninitializedCount: T * B * D * Hs)  // every column written by a sweep
      for direction in 0..<D {
        let index = layer * D + direction
        var buffers = makeSweepBuffers(T: T, B: B, keep: keepTrace)
        if let h0 { buffers.hs.pointer.update(from: h0.pointer + index * B * Hs, count: B * Hs) }
        if let c0, let cs = buffers.cs { cs.pointer.update(from: c0.pointer + index * B * H, count: B * H) }
        var used = weights[index]
        if training && weightDrop > 0 && kind.hasRecurrentWeights {
          // One key per direction and layer: every rank and row group draws the same mask.
          let mask = dropoutMask(count: used.weightHH.count, probability: weightDrop, using: &rng)
          used.weightHH.withMutablePointer { w in
            for i in 0..<mask.count { w[i] *= mask.pointer[i] }
          }
          buffers.weights = used
          buffers.weightMask = mask
        }
        var zone: Sweep.Zoneout? = nil
        if zoneout > 0 {
          if training {
            // d = 1 (keep h_prev) where a dropout mask over [T, B, H] drops, so masks are per global row.
            let drawn = dropoutMask(count: T * B * Hs, probability: zoneout, shape: [T, B, Hs], rows: rows, using: &rng)
            for i in 0..<drawn.count { drawn.pointer[i] = drawn.pointer[i] == 0 ? 1 : 0 }
            let fresh = FloatBuffer(uninitializedCount: T * B * Hs)
            zone = .training(keep: drawn, fresh: fresh)
            buffers.zoneout = RecurrentSweepZoneout(keep: drawn, fresh: fresh)
          } else {
            zone = .inference(zoneout)
          }
        }
        var sweep = Sweep(
          cell: kind.kernels, weights: used, buffers: buffers, steps: T, batch: B, hidden: H, width: width,
          reverse: direction == 1, lengths: lengths, column: direction * Hs, stride: D * Hs, compute: compute)
        sweep.zoneout = zone
        sweep.forward(x: layerInput.pointer, out: out.pointer, keep: keepTrace)
        let last = keepTrace ? T : T % 2
        (finalH.pointer + index * B * Hs).update(from: buffers.hs.pointer + last * B * Hs, count: B * Hs)
        if let finalC, let cs = buffers.cs {
          (finalC.pointer + index * B * H).update(from: cs.pointer + last * B * H, count: B * H)
        }
        sweeps.append(buffers)
      }
      var mask: FloatBuffer? = nil
      if layer < L - 1 && training && dropout > 0 {
        let m = dropoutMask(count: out.count, probability: dropout, shape: [T, B, D * Hs], rows: rows, using: &rng)
        for i in 0..<out.count { out.pointer[i] *= m.pointer[i] }
        mask = m
      }
      if layer < L - 1 && training && lockedDropout > 0 {
        let m = FloatBuffer(
          lockedDropoutMask(shape: [T, B, D * Hs], probability: lockedDropout, rows: rows, using: &rng))
        for i in 0..<out.count { out.pointer[i] *= m.pointer[i] }
        if let mask {
          for i in 0..<out.count { m.pointer[i] *= mask.pointer[i] }  // the one mask backward applies
        }
        mask = m
      }
      masks.append(mask)
      layerInput = out
    }
    let state = RecurrentState(
      hidden: finalH.tensor(shape: stateShape), cell: finalC?.tensor(shape: cellShape))
    let trace = RecurrentTrace(
      sequenceLength: T, batchSize: B, lengths: lengths, layerInputs: layerInputs, masks: masks, sweeps: sweeps)
    return (layerInput.tensor(shape: [T, B, D * Hs]), state, trace)
  }

  /// Backward of `forward`: adds parameter gradients into `gradient`.
  /// - Parameters:
  ///   - trace: what `forward` kept.
  ///   - outputGradient: ∂loss/∂output `[T, B, D*H]`, or nil for zero.
  ///   - stateGradient: ∂loss/∂(final state), or nil for zero.
  ///   - gradient: a layer-shaped accumulator the parameter gradients are added into.
  ///   - compute: threads for the products; results do not depend on the count.
  ///   - layerReady: told each layer index, from the top, with its directions' gradients, once
  ///     they are final.
  /// - Returns: ∂loss/∂input `[T, B, I]` and ∂loss/∂(initial state).
  public func backward(
    _ trace: RecurrentTrace, outputGradient: Tensor?, stateGradient: RecurrentState? = nil,
    into gradient: inout RecurrentLayer, compute: Compute = .singleThread, layerReady: ((Int, ArraySlice<RecurrentWeights>) -> Void)? = nil
  ) -> (input: Tensor, initialState: RecurrentState) {
    let T = trace.sequenceLength
    let B = trace.batchSize
    let H = hiddenSize
    let Hs = stateSize
    let D = directionCount
    let L = layerCount
    let stateShape = [L * D, B, Hs]
    let cellShape = [L * D, B, H]
    if let g = outputGradient {
      precondition(g.shape == [T, B, D * Hs],
        "RecurrentLayer.backward: output gradient \(g.shape), expected \([T, B, D * Hs])")
    }
    if let g = stateGradient {
      precondition(g.hidden.shape == stateShape, "RecurrentLayer.backward: state gradient \(g.hidden.shape)")
    }
    var dOut = outputGradient.map { FloatBuffer($0) } ?? FloatBuffer(count: T * B * D * Hs)
    let dhT = stateGradient.map { FloatBuffer($0.hidden) }
    let dcT = stateGradient?.cell.map { FloatBuffer($0) }
    let dH0 = FloatBuffer(count: L * D * B * Hs)
    let dC0 = kind.hasCellState ? FloatBuffer(count: L * D * B * H) : nil
    var dInput = dOut
    for layer in (0..<L).reversed() {
      let width = layer == 0 ? inputSize : D * Hs
      let dIn = FloatBuffer(count: T * B * width)
      for direction in 0..<D {
        let index = layer * D + direction
        let buffers = trace.sweeps[index]
        var sweep = Sweep(
          cell: kind.kernels, weights: buffers.weights ?? weights[index], buffers: buffers, steps: T, batch: B,
          hidden: H, width: width, reverse: direction == 1, lengths: trace.lengths, column: direction * Hs,
          stride: D * Hs, compute: compute)
        if let z = buffers.zoneout { sweep.zoneout = .training(keep: z.keep, fresh: z.fresh) }
        // Weight drop: this pass's W_hh gradient is computed alone, then only the kept weights
        // get it (scaled as they were).
        var held: Tensor? = nil
        if buffers.weightMask != nil {
          held = Tensor(zeros: gradient.weights[index].weightHH.shape)
          swap(&held!, &gradient.weights[index].weightHH)
        }
        sweep.backward(
          x: trace.layerInputs[layer].pointer, dOut: dOut.pointer, dhT: dhT.map { $0.pointer + index * B * Hs },
          dcT: dcT.map { $0.pointer + index * B * H }, dx: dIn.pointer, dh0: dH0.pointer + index * B * Hs,
          dc0: dC0.map { $0.pointer + index * B * H }, into: &gradient.weights[index])
        if let mask = buffers.weightMask, var fresh = held {
          held = nil
          swap(&fresh, &gradient.weights[index].weightHH)  // back to the accumulated gradient
          gradient.weights[index].weightHH.withMutablePointer { g in
            fresh.withPointer { f in
              for i in 0..<mask.count { g[i] += mask.pointer[i] * f[i] }
            }
          }
        }
      }
      layerReady?(layer, gradient.weights[(layer * D)..<((layer + 1) * D)])
      if layer > 0, let mask = trace.masks[layer - 1] {
        for i in 0..<dIn.count { dIn.pointer[i] *= mask.pointer[i] }
      }
      dOut = dIn
      dInput = dIn
    }
    return (
      dInput.tensor(shape: [T, B, inputSize]),
      RecurrentState(hidden: dH0.tensor(shape: stateShape), cell: dC0?.tensor(shape: cellShape))
    )
  }

  // MARK: - One direction of one layer

  /// Buffers of one sweep. Without `keep` (inference) only two states and one step of saved
  /// values are held, reused in turn, instead of every step's.
  private func makeSweepBuffers(T: Int, B: Int, keep: Bool) -> RecurrentTrace.Sweep {
    let H = hiddenSize
    let states = keep ? T + 1 : 2
    var sweep = RecurrentTrace.Sweep(
      gx: FloatBuffer(uninitializedCount: T * B * kind.gateCount * H),
      saved: FloatBuffer(uninitializedCount: (keep ? T : 1) * B * kind.savedSlots * H),
      hs: FloatBuffer(count: states * B * stateSize),
      cs: kind.hasCellState ? FloatBuffer(count: states * B * H) : nil)
    if projectionSize > 0 { sweep.raw = FloatBuffer(uninitializedCount: (keep ? T : 1) * B * H) }
    if kind.kernels.layerNorm {
      sweep.normalizedInput = FloatBuffer(uninitializedCount: T * B * kind.gateCount * H)
      sweep.inputRstd = FloatBuffer(uninitializedCount: T * B)
    }
    return sweep
  }

  /// Blocks of batch rows for the time loop: one per thread, at least 8 rows each.
  static func rowParts(batch: Int, compute: Compute) -> Int {
    max(1, min(compute.threads, batch / 8))
  }
}

extension RecurrentLayer {
  /// The last step of each direction, `[B, D*H]`: the forward direction's output at T-1
  /// and the backward direction's at 0 (its final step), as Keras `return_sequences=False`.
  /// With `lengths`, the forward direction's output at each sequence's own last step
  /// (zeros for an empty sequence).
  public func lastStep(of output: Tensor, lengths: [Int]? = nil) -> Tensor {
    let (T, B) = (output.shape[0], output.shape[1])
    precondition(T > 0, "lastStep: empty sequence")
    var result = Tensor(zeros: [B, outputSize])
    forEachLastStepRow(steps: T, batch: B, lengths: lengths) { sequence, last in
      for j in 0..<stateSize { result.scalars[last + j] = output.scalars[sequence + j] }
    }
    return result
  }

  /// The output gradient `[T, B, D*H]` that `lastStep(of:)` passes back from `[B, D*H]`.
  public func lastStepBackward(_ gradient: Tensor, sequenceLength T: Int, lengths: [Int]? = nil) -> Tensor {
    let B = gradient.shape[0]
    var result = Tensor(zeros: [T, B, outputSize])
    forEachLastStepRow(steps: T, batch: B, lengths: lengths) { sequence, last in
      for j in 0..<stateSize { result.scalars[sequence + j] = gradient.scalars[last + j] }
    }
    return result
  }

  /// Calls `body` with the offsets of each direction's last-step row `[H]` in a `[T, B, D*H]`
  /// sequence and in `[B, D*H]`: the forward direction at each sequence's last real step, the
  /// backward direction at 0; none for an empty sequence.
  private func forEachLastStepRow(steps T: Int, batch B: Int, lengths: [Int]?, _ body: (Int, Int) -> Void) {
    let (H, D) = (stateSize, directionCount)
    for b in 0..<B {
      let last = (lengths?[b] ?? T) - 1
      for d in 0..<D {
        let t = d == 0 ? last : 0
        if last < 0 { continue }
        body((t * B + b) * D * H + d * H, b * D * H + d * H)
      }
    }
  }
}

/// Zoneout's training record for one sweep: `keep` `[T, B, H]` by time (1 where a unit kept its
/// previous value), `fresh` `[T, B, H]` by processing step (the cell's new state before zoneout).
struct RecurrentSweepZoneout {
  let keep: FloatBuffer
  let fresh: FloatBuffer
}

/// The rows of a global batch that a forward pass holds: a data-parallel rank holds rows
/// `first ..< first + B` of `total`. Dropout masks are drawn per global row, so they do not
/// depend on how the batch is split.
public struct BatchRows: Sendable, Equatable {
  /// The first global row held.
  public var first: Int
  /// Rows of the global batch.
  public var total: Int

  /// Rows `first...` of a global batch of `total`.
  public init(first: Int, total: Int) {
    precondition(first >= 0 && total > first, "BatchRows: first row \(first) outside 0..<\(total)")
    self.first = first
    self.total = total
  }
}

/// Inverted-dropout mask: each entry 0 with probability p, else 1/(1-p). One key is drawn from
/// `rng` per mask; entry i's value is a hash of the key and the entry's index in the global
/// batch (a counter-based generator), so with `rows` (values `[T, B, W]` time-major, B of
/// `rows.total` rows) a rank draws exactly the entries one process would for those rows.
func dropoutMask(
  count: Int, probability p: Float, shape: [Int]? = nil, rows: BatchRows? = nil,
  using rng: inout some RandomNumberGenerator
) -> FloatBuffer {
  let mask = FloatBuffer(count: count)
  let keep = 1 / (1 - p)
  let key = rng.next()
  func draw(_ index: Int) -> Float {
    var z = key &+ UInt64(index &+ 1) &* 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return Float(z >> 40) * 0x1p-24 < p ? 0 : keep
  }
  if let rows, let shape, shape.count == 3, rows.total != shape[1] || rows.first != 0 {
    let (T, B, W) = (shape[0], shape[1], shape[2])
    precondition(rows.first + B <= rows.total, "dropout: rows \(rows.first)..<\(rows.first + B) outside the global \(rows.total)")
    for t in 0..<T {
      for b in 0..<B {
        let local = (t * B + b) * W
        let global = (t * rows.total + rows.first + b) * W
        for j in 0..<W { mask.pointer[local + j] = draw(global + j) }
      }
    }
  } else {
    for i in 0..<count { mask.pointer[i] = draw(i) }
  }
  return mask
}

/// How a recurrent layer's parameters are drawn (`--init`).
public enum Initialization: String, Codable, Sendable, CaseIterable {
  /// U(-1/√H, 1/√H) for every weight and bias, as PyTorch.
  case pytorch
  /// Glorot-uniform input weights, orthogonal recurrent weights, zero biases, as Keras.
  case keras
}

extension Tensor {
  /// A `[rows, columns]` matrix (rows >= columns) with orthonormal columns: a normal random
  /// matrix orthonormalised by modified Gram-Schmidt in Double, each column's sign that of
  /// R's diagonal (Keras's and PyTorch's `orthogonal` initialisers for `Wᵀ` as they store it).
  public init(orthogonalColumns shape: [Int], using rng: inout some RandomNumberGenerator) {
    precondition(shape.count == 2 && shape[0] >= shape[1] && shape[1] > 0, "orthogonalColumns: needs [rows >= columns > 0], got \(shape)")
    let (rows, columns) = (shape[0], shape[1])
    let normal = Tensor(normal: [rows * columns], using: &rng).scalars
    var q = [[Double]](repeating: [Double](repeating: 0, count: rows), count: columns)
    for j in 0..<columns {
      for i in 0..<rows { q[j][i] = Double(normal[i * columns + j]) }
    }
    for j in 0..<columns {
      for k in 0..<j {
        var dot = 0.0
        for i in 0..<rows { dot += q[k][i] * q[j][i] }
        for i in 0..<rows { q[j][i] -= dot * q[k][i] }
      }
      var norm = 0.0
      for i in 0..<rows { norm += q[j][i] * q[j][i] }
      norm = norm.squareRoot()
      for i in 0..<rows { q[j][i] /= norm }
    }
    var scalars = [Float](repeating: 0, count: rows * columns)
    for i in 0..<rows {
      for j in 0..<columns { scalars[i * columns + j] = Float(q[j][i]) }
    }
    self.init(shape: shape, scalars: scalars)
  }
}
