/// The recurrent cells Recurrent implements, named as on the command line.
public enum CellKind: String, Codable, CaseIterable, Sendable {
  /// Elman RNN, `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)` (PyTorch `nn.RNN`).
  case rnnTanh = "rnn-tanh"
  /// Elman RNN with ReLU (PyTorch `nn.RNN(nonlinearity="relu")`).
  case rnnRelu = "rnn-relu"
  /// LSTM with forget gate, gate order i|f|g|o (PyTorch `nn.LSTM`).
  case lstm
  /// LSTM with peephole connections (Gers & Schmidhuber 2000): diagonal weights from c_{t-1}
  /// into the i and f gates and from c_t into the o gate, `peephole_l{k}` `[3H]` in the order
  /// i|f|o (TensorFlow's `use_peepholes`; ONNX LSTM's `P` holds them as i|o|f).
  case lstmPeephole = "lstm-peephole"
  /// GRU with the reset gate applied after the recurrent product, gate order r|z|n
  /// (PyTorch `nn.GRU`, cuDNN, Keras `reset_after=True`).
  case gru
  /// GRU with the reset gate applied before the recurrent product (Cho et al. 2014;
  /// Keras `reset_after=False`): `n = tanh(W_in x + b_in + W_hn (r ⊙ h) + b_hn)`.
  case gruResetBefore = "gru-reset-before"
  /// haste's LayerNormGRU (reset after, gates r|z|n): `gx = LN(x·W_ihᵀ)⊙γx + b_ih` and
  /// `gh = LN(h·W_hhᵀ)⊙γh + b_hh`, each LN over the row's 3H values without a shift (the biases
  /// are the shifts), then the GRU step. Gains `layer_norm_l{k}` `[6H]` = γx|γh, initially 1.
  case gruLN = "gru-ln"
  /// haste's LayerNormLSTM (PyTorch's gate order i|f|g|o and two biases, whose sum is haste's
  /// one): gx and gh normalised as `gru-ln`'s over 4H, and `h' = o⊙tanh(LN(c')⊙γc + βc)` (c'
  /// itself unnormalised). `layer_norm_l{k}` `[10H]` = γx (4H)|γh (4H)|γc (H)|βc (H), initially
  /// 1 (β 0).
  case lstmLN = "lstm-ln"
  /// minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): gates from x only, z|h,
  /// `h' = (1-z)⊙h + z⊙g(k_h)` with `z = σ(k_z)`, g(x) = x + 0.5 for x >= 0 and σ(x) otherwise.
  /// Parameters `weight_ih_l{k}` `[2H, I]` and `bias_ih_l{k}` `[2H]` only (no `weight_hh`):
  /// trained in parallel over time (one product over all T·B rows, then a scan in log space),
  /// stepped one token at a time for generation.
  case minGRU = "min-gru"
  /// minLSTM (Feng et al. 2024): gates from x only, f|i|h, `h' = (f⊙h + i⊙g(k_h)) / (f + i)`
  /// with `f = σ(k_f)`, `i = σ(k_i)`; `weight_ih_l{k}` `[3H, I]`, `bias_ih_l{k}` `[3H]`.
  case minLSTM = "min-lstm"

  /// Gate blocks G in the weight matrices (`[G*H, in]`).
  public var gateCount: Int { kernels.gateCount }

  /// Whether the cell carries a memory cell `c` besides `h`.
  public var hasCellState: Bool { kernels.hasCellState }

  /// H-wide slots per step the forward saves for the backward.
  package var savedSlots: Int { kernels.savedSlots }

  /// Whether the gates are an LSTM's i|f|g|o (a forget gate whose bias `--forget-bias` sets).
  public var isLSTM: Bool { self == .lstm || self == .lstmPeephole || self == .lstmLN }

  /// Whether the cell has a recurrent product (`weight_hh`, `bias_hh`); the min cells have none.
  public var hasRecurrentWeights: Bool { !kernels.blocks.isEmpty }

  /// The cell's own per-unit parameters besides PyTorch's four tensors: their name (without the
  /// `_l{k}` suffix) and how many H-wide blocks they hold; nil for none.
  public var cellParameters: (name: String, blocks: Int)? {
    kernels.parameterBlocks > 0 ? (kernels.parameterName, kernels.parameterBlocks) : nil
  }
}
