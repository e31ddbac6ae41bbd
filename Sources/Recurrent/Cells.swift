import TensorCore

/// What a cell's `forward` saved for its `backward`.
public struct CellTrace: Sendable {
  let trace: RecurrentTrace
  let batchSize: Int
}

/// The state a cell carries between steps: `h` `[B, H]`, and `c` `[B, H]` for LSTM.
public struct CellState: Sendable, Equatable {
  /// `h` `[B, H]`.
  public var hidden: Tensor
  /// `c` `[B, H]` for LSTM; nil for GRU and RNN.
  public var cell: Tensor?
  /// A state from its parts.
  public init(hidden: Tensor, cell: Tensor? = nil) {
    self.hidden = hidden
    self.cell = cell
  }
}

/// The shared single-step machinery: a one-layer, one-direction `RecurrentLayer` run over
/// one time step, so cells and layers use the very same kernels.
public protocol RecurrentCell: Parameterized, Sendable {
  var layer: RecurrentLayer { get set }
}

extension RecurrentCell {
  /// Features of each input `x_t`.
  public var inputSize: Int { layer.inputSize }
  /// Units `H` of the state.
  public var hiddenSize: Int { layer.hiddenSize }

  /// A zero state for `batchSize` sequences.
  public func zeroState(batchSize: Int) -> CellState {
    let shape = [batchSize, hiddenSize]
    return CellState(hidden: Tensor(zeros: shape), cell: layer.kind.hasCellState ? Tensor(zeros: shape) : nil)
  }

  /// One step. - Parameters: input `[B, I]`, state `[B, H]`. - Returns: the new state.
  public func forward(
    _ input: Tensor, state: CellState, compute: Compute = .singleThread
  ) -> (state: CellState, trace: CellTrace) {
    precondition(input.rank == 2 && input.shape[1] == inputSize,
      "\(Self.self): expected input [B, \(inputSize)], got \(input.shape)")
    let B = input.shape[0]
    let H = hiddenSize
    precondition(state.hidden.shape == [B, H], "\(Self.self): expected state [\(B), \(H)], got \(state.hidden.shape)")
    var rng = SplitMix64(seed: 0)  // unused: one layer has no inter-layer dropout
    let (_, s, trace) = layer.forward(
      input.reshaped([1, B, inputSize]),
      initialState: RecurrentState(
        hidden: state.hidden.reshaped([1, B, H]), cell: state.cell?.reshaped([1, B, H])),
      training: false, using: &rng, compute: compute)
    return (
      CellState(hidden: s.hidden.reshaped([B, H]), cell: s.cell?.reshaped([B, H])),
      CellTrace(trace: trace, batchSize: B)
    )
  }

  /// Adds parameter gradients into `gradient`; returns ∂loss/∂input and ∂loss/∂(old state).
  public func backward(
    _ trace: CellTrace, stateGradient: CellState, into gradient: inout Self,
    compute: Compute = .singleThread
  ) -> (input: Tensor, state: CellState) {
    let B = trace.batchSize
    let H = hiddenSize
    let (dx, ds) = layer.backward(
      trace.trace, outputGradient: nil,
      stateGradient: RecurrentState(
        hidden: stateGradient.hidden.reshaped([1, B, H]),
        cell: stateGradient.cell?.reshaped([1, B, H])
          ?? (layer.kind.hasCellState ? Tensor(zeros: [1, B, H]) : nil)),
      into: &gradient.layer, compute: compute)
    return (
      dx.reshaped([B, inputSize]),
      CellState(hidden: ds.hidden.reshaped([B, H]), cell: ds.cell?.reshaped([B, H]))
    )
  }

  /// PyTorch cell names: `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh` (the min cells: `weight_ih`, `bias_ih`).
  public mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows {
    try layer.forEachParameter { name, tensor in
      try body(String(name.dropLast(3)), &tensor)  // drop "_l0"
    }
  }
}

/// Elman RNN cell (PyTorch `nn.RNNCell`): `h' = act(W_ih x + b_ih + W_hh h + b_hh)`.
public struct RNNCell: RecurrentCell {
  /// The one-layer, one-direction layer that holds the weights.
  public var layer: RecurrentLayer
  /// A tanh (or, with `relu`, ReLU) RNN cell with PyTorch's `RNNCell` initialisation, U(-1/sqrt(H), 1/sqrt(H)).
  public init(inputSize: Int, hiddenSize: Int, relu: Bool = false, using rng: inout some RandomNumberGenerator) {
    layer = RecurrentLayer(kind: relu ? .rnnRelu : .rnnTanh, inputSize: inputSize, hiddenSize: hiddenSize, using: &rng)
  }
  /// `h' = cell(x, h)`: input `[B, I]`, hidden `[B, H]`.
  public func callAsFunction(_ input: Tensor, _ hidden: Tensor) -> Tensor {
    forward(input, state: CellState(hidden: hidden)).state.hidden
  }
}

/// LSTM cell (PyTorch `nn.LSTMCell`), gate order i|f|g|o; with `peephole`, Gers &
/// Schmidhuber's peephole connections (`CellKind.lstmPeephole`, parameter `peephole`).
public struct LSTMCell: RecurrentCell {
  /// The one-layer, one-direction layer that holds the weights.
  public var layer: RecurrentLayer
  /// An LSTM cell with PyTorch's `LSTMCell` initialisation, U(-1/sqrt(H), 1/sqrt(H)) (the peepholes too).
  public init(inputSize: Int, hiddenSize: Int, peephole: Bool = false, using rng: inout some RandomNumberGenerator) {
    layer = RecurrentLayer(kind: peephole ? .lstmPeephole : .lstm, inputSize: inputSize, hiddenSize: hiddenSize, using: &rng)
  }
  /// `(h', c') = cell(x, (h, c))`.
  public func callAsFunction(_ input: Tensor, _ state: (hidden: Tensor, cell: Tensor)) -> (hidden: Tensor, cell: Tensor) {
    let s = forward(input, state: CellState(hidden: state.hidden, cell: state.cell)).state
    return (s.hidden, s.cell!)
  }
}

/// GRU cell, gate order r|z|n. `resetAfter: true` is PyTorch `nn.GRUCell` (reset gate after
/// the recurrent product); `false` is Cho et al. 2014 (Keras `reset_after=False`).
public struct GRUCell: RecurrentCell {
  /// The one-layer, one-direction layer that holds the weights.
  public var layer: RecurrentLayer
  /// A GRU cell with PyTorch's `GRUCell` initialisation, U(-1/sqrt(H), 1/sqrt(H)); `resetAfter: false` is the reset-before variant.
  public init(inputSize: Int, hiddenSize: Int, resetAfter: Bool = true, using rng: inout some RandomNumberGenerator) {
    layer = RecurrentLayer(
      kind: resetAfter ? .gru : .gruResetBefore, inputSize: inputSize, hiddenSize: hiddenSize, using: &rng)
  }
  /// `h' = cell(x, h)`: input `[B, I]`, hidden `[B, H]`.
  public func callAsFunction(_ input: Tensor, _ hidden: Tensor) -> Tensor {
    forward(input, state: CellState(hidden: hidden)).state.hidden
  }
}

/// minGRU cell (`CellKind.minGRU`): gates z|h from the input only, `h' = (1-z)⊙h + z⊙g(k_h)`;
/// with `lstm`, minLSTM (`CellKind.minLSTM`): gates f|i|h, `h' = (f⊙h + i⊙g(k_h)) / (f + i)`.
/// Parameters `weight_ih` `[G*H, I]` and `bias_ih` `[G*H]` only.
public struct MinCell: RecurrentCell {
  /// The one-layer, one-direction layer that holds the weights.
  public var layer: RecurrentLayer
  /// A minGRU (or, with `lstm`, minLSTM) cell, weights U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's cells.
  public init(inputSize: Int, hiddenSize: Int, lstm: Bool = false, using rng: inout some RandomNumberGenerator) {
    layer = RecurrentLayer(kind: lstm ? .minLSTM : .minGRU, inputSize: inputSize, hiddenSize: hiddenSize, using: &rng)
  }
  /// `h' = cell(x, h)`: input `[B, I]`, hidden `[B, H]`.
  public func callAsFunction(_ input: Tensor, _ hidden: Tensor) -> Tensor {
    forward(input, state: CellState(hidden: hidden)).state.hidden
  }
}

/// haste's layer-normalised cells: LayerNormGRU (`CellKind.gruLN`) or, with `lstm`,
/// LayerNormLSTM (`CellKind.lstmLN`); parameters `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`
/// and the gains `layer_norm`. Step with `forward(_:state:)`.
public struct LayerNormCell: RecurrentCell {
  /// The one-layer, one-direction layer that holds the weights.
  public var layer: RecurrentLayer
  /// A layer-normalised GRU (or, with `lstm`, LSTM) cell: weights U(-1/sqrt(H), 1/sqrt(H)),
  /// gains 1, the LSTM's shift 0.
  public init(inputSize: Int, hiddenSize: Int, lstm: Bool = false, using rng: inout some RandomNumberGenerator) {
    layer = RecurrentLayer(kind: lstm ? .lstmLN : .gruLN, inputSize: inputSize, hiddenSize: hiddenSize, using: &rng)
  }
}
