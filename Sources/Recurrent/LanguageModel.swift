import TensorCore

/// Shape of a language model: PyTorch's `word_language_model` example, `RNNModel`.
public struct LanguageModelConfiguration: Codable, Sendable, Equatable {
  /// The recurrent cell of every layer.
  public var cell: CellKind
  /// Stacked recurrent layers.
  public var layers: Int
  /// Units `H` of each layer.
  public var hiddenSize: Int
  /// Width `E` of the token embedding.
  public var embeddingSize: Int
  /// Tokens `V`: rows of the embedding, outputs of the decoder.
  public var vocabularySize: Int
  /// Dropout on the embeddings, between recurrent layers and before the decoder (training only).
  public var dropout: Float
  /// The decoder uses the embedding matrix as its weight (Press & Wolf 2017); needs
  /// `hiddenSize == embeddingSize`.
  public var tied: Bool
  /// The regularizers of training (all off by default); zoneout also acts at inference.
  public var regularization = Regularization()
  /// A projected LSTM's state width `P` (PyTorch's `proj_size`, `0 < P < hiddenSize`; 0: none):
  /// the decoder then reads `[P]` and `tied` needs `embeddingSize == P`.
  public var projectionSize = 0

  /// Width of each recurrent layer's output `h`: `projectionSize` when projected, else `hiddenSize`.
  public var stateSize: Int { projectionSize > 0 ? projectionSize : hiddenSize }

  /// A configuration; `tied` needs `embeddingSize == hiddenSize`.
  public init(
    cell: CellKind, layers: Int, hiddenSize: Int, embeddingSize: Int, vocabularySize: Int, dropout: Float = 0,
    tied: Bool = false
  ) {
    self.tied = tied
    self.cell = cell
    self.layers = layers
    self.hiddenSize = hiddenSize
    self.embeddingSize = embeddingSize
    self.vocabularySize = vocabularySize
    self.dropout = dropout
  }
}

/// The regularizers of a language model (AWD-LSTM, Merity et al. 2018; haste), each a rate
/// that is exactly the identity at 0. All but zoneout act in training only.
public struct Regularization: Codable, Sendable, Equatable {
  /// Embedding dropout: whole rows of the embedding (every occurrence of a token in the window)
  /// zeroed with this probability, the rest scaled by 1/(1-p) (AWD-LSTM's `embedded_dropout`).
  public var embeddingDropout: Float = 0
  /// Locked (variational) dropout, one mask per sequence for all its steps, on the embeddings,
  /// between recurrent layers and before the decoder: the same places as `dropout`, which draws
  /// a new mask at every step (both may be on; their masks multiply).
  public var lockedDropout: Float = 0
  /// Weight drop: DropConnect on every `W_hh`, one mask per window (`RecurrentLayer.weightDrop`).
  public var weightDrop: Float = 0
  /// Zoneout on each layer's `h` (`RecurrentLayer.zoneout`); acts at inference as its expectation.
  public var zoneout: Float = 0
  /// Activation regularization (AR): adds `α · mean(o²)` over the last layer's output after
  /// dropout to the training objective.
  public var activation: Float = 0
  /// Temporal activation regularization (TAR): adds `β · mean((h_t - h_{t-1})²)` over the last
  /// layer's output before dropout (consecutive steps of the window).
  public var temporalActivation: Float = 0

  /// The rates (and the AR and TAR factors; all 0, every regularizer off, by default), checked:
  /// rates in [0, 1), factors finite and >= 0.
  public init(
    embeddingDropout: Float = 0, lockedDropout: Float = 0, weightDrop: Float = 0, zoneout: Float = 0,
    activation: Float = 0, temporalActivation: Float = 0
  ) {
    (self.embeddingDropout, self.lockedDropout, self.weightDrop, self.zoneout) =
      (embeddingDropout, lockedDropout, weightDrop, zoneout)
    (self.activation, self.temporalActivation) = (activation, temporalActivation)
    precondition(problem == nil, "Regularization: \(problem ?? "")")
  }

  /// What is out of range, in one line, or nil.
  public var problem: String? {
    for (name, p) in [
      ("embedding dropout", embeddingDropout), ("locked dropout", lockedDropout), ("weight drop", weightDrop),
      ("zoneout", zoneout),
    ] where !(p >= 0 && p < 1) {
      return "\(name) must be in [0, 1), got \(p)"
    }
    for (name, f) in [("AR", activation), ("TAR", temporalActivation)] where !(f >= 0 && f.isFinite) {
      return "\(name) must be a finite number >= 0, got \(f)"
    }
    return nil
  }

  /// The regularizers that are on, e.g. "weight drop 0.5, AR 2" ("none" when none is).
  public var summary: String {
    let parts = [
      ("embedding dropout", embeddingDropout), ("locked dropout", lockedDropout), ("weight drop", weightDrop),
      ("zoneout", zoneout), ("AR", activation), ("TAR", temporalActivation),
    ].filter { $0.1 != 0 }.map { "\($0.0) \($0.1)" }
    return parts.isEmpty ? "none" : parts.joined(separator: ", ")
  }
}

/// What `LanguageModel.forward` saved for its backward.
public struct LanguageModelTrace: Sendable {
  let ids: [Int]
  let sequenceLength: Int
  let batchSize: Int
  let wordMask: FloatBuffer?  // embedding dropout: [V], one factor per token
  let embeddingMask: Tensor?
  let embeddingLockedMask: Tensor?
  let rnn: RecurrentTrace
  let outputMask: Tensor?
  let outputLockedMask: Tensor?
  let decoder: LinearTrace
  /// AR/TAR: the last layer's output before and after dropout, and the element counts their
  /// means divide by (the global batch's when data-parallel).
  let output: Tensor?
  let dropped: Tensor?
  let meanCount: Int
  /// The AR and TAR terms this window adds to the training objective (0 when both are off);
  /// the cross-entropy the training loop reports does not include it.
  public let regularizationLoss: Float
}

/// Embedding → recurrent layers → Linear decoder over the vocabulary. Parameter names are
/// the `state_dict` names of PyTorch's `word_language_model` `RNNModel`: `encoder.weight`,
/// `rnn.weight_ih_l0`, …, `decoder.weight`, `decoder.bias`.
public struct LanguageModel: Parameterized, Sendable, Equatable {
  /// The sizes this model was made with.
  public let configuration: LanguageModelConfiguration
  /// The token embedding `[V, E]`.
  public var encoder: Embedding
  /// The stacked recurrent layers.
  public var rnn: RecurrentLayer
  /// The output layer. When `tied`, its weight is empty: the decoder uses `encoder.weight`.
  public var decoder: Linear

  /// A model with PyTorch's initialisation for each part, drawn from `rng`; the recurrent layers'
  /// as `initialization` says, with the LSTM forget-gate bias `forgetBias` when given (see
  /// `RecurrentLayer.init`).
  public init(
    _ configuration: LanguageModelConfiguration, initialization: Initialization = .pytorch, forgetBias: Float? = nil,
    using rng: inout some RandomNumberGenerator
  ) {
    precondition(!configuration.tied || configuration.stateSize == configuration.embeddingSize,
      "LanguageModel: tied embeddings need the state size (hiddenSize, or projectionSize) == embeddingSize")
    self.configuration = configuration
    encoder = Embedding(
      vocabularySize: configuration.vocabularySize, embeddingSize: configuration.embeddingSize, using: &rng)
    precondition(configuration.regularization.problem == nil,
      "LanguageModel: \(configuration.regularization.problem ?? "")")
    rnn = RecurrentLayer(
      kind: configuration.cell, inputSize: configuration.embeddingSize, hiddenSize: configuration.hiddenSize,
      layerCount: configuration.layers, dropout: configuration.dropout, initialization: initialization,
      forgetBias: forgetBias, projectionSize: configuration.projectionSize, using: &rng)
    rnn.lockedDropout = configuration.regularization.lockedDropout
    rnn.weightDrop = configuration.regularization.weightDrop
    rnn.zoneout = configuration.regularization.zoneout
    decoder = Linear(inputSize: configuration.stateSize, outputSize: configuration.vocabularySize, using: &rng)
    // Tied: the decoder's weight is the embedding itself, never a copy that could go stale.
    if configuration.tied { decoder.weight = Tensor(zeros: [0, configuration.stateSize]) }
  }

  /// The decoder as used: with the embedding matrix as its weight when tied.
  var effectiveDecoder: Linear {
    guard configuration.tied else { return decoder }
    var d = decoder
    d.weight = encoder.weight
    return d
  }

  /// Visits every parameter by its PyTorch name (`encoder.weight`, `rnn.weight_ih_l0`, ..., `decoder.weight`, `decoder.bias`).
  public mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows {
    try encoder.forEachParameter { name, t in try body("encoder." + name, &t) }
    try rnn.forEachParameter { name, t in try body("rnn." + name, &t) }
    let tied = configuration.tied
    try decoder.forEachParameter { name, t in
      if tied && name == "weight" { return }  // the same tensor as encoder.weight
      try body("decoder." + name, &t)
    }
  }

  /// Training forward pass over a window.
  /// - Parameters:
  ///   - ids: `[T, B]` token ids, time-major.
  ///   - T: time steps of the window.
  ///   - B: rows (sequences) of the batch.
  ///   - state: the state carried from the previous window, or nil for zeros.
  ///   - training: apply dropout (drawn from `rng`) and keep what `backward` needs.
  ///   - rows: which rows of a global batch these B are (data-parallel training), so dropout
  ///     masks are drawn per global row and do not depend on the split; nil: all of them.
  ///   - rng: the dropout masks' random source.
  ///   - compute: threads for the products; results do not depend on the count.
  /// - Returns: logits `[T*B, V]` (row `t*B + b`), the final state and the trace.
  public func forward(
    ids: [Int], sequenceLength T: Int, batchSize B: Int, state: RecurrentState? = nil,
    training: Bool, rows: BatchRows? = nil, using rng: inout some RandomNumberGenerator, compute: Compute = .singleThread
  ) -> (logits: Tensor, state: RecurrentState, trace: LanguageModelTrace) {
    let r = configuration.regularization
    let dropout = Dropout(probability: configuration.dropout)
    let locked = Dropout(probability: r.lockedDropout, locked: true)
    var looked = encoder(ids, shape: [T, B])
    var wordMask: FloatBuffer? = nil
    if training && r.embeddingDropout > 0 {
      // Whole tokens: one factor per vocabulary row, drawn from one key (the same on every rank).
      let mask = tokenDropoutMask(vocabularySize: encoder.vocabularySize, probability: r.embeddingDropout, using: &rng)
      scaleRows(&looked, ids: ids, by: mask)
      wordMask = mask
    }
    let (embedded, embeddingMask) = dropout.forward(looked, training: training, rows: rows, using: &rng)
    let (lockedEmbedded, embeddingLockedMask) = locked.forward(embedded, training: training, rows: rows, using: &rng)
    let (output, newState, rnnTrace) = rnn.forward(
      lockedEmbedded, initialState: state, training: training, rows: rows, using: &rng, compute: compute)
    let (droppedOnce, outputMask) = dropout.forward(output, training: training, rows: rows, using: &rng)
    let (dropped, outputLockedMask) = locked.forward(droppedOnce, training: training, rows: rows, using: &rng)
    let (logits, decoderTrace) = effectiveDecoder.forward(dropped.reshaped([T * B, configuration.stateSize]), compute: compute)
    let regularize = training && (r.activation > 0 || r.temporalActivation > 0)
    let meanCount = T * (rows?.total ?? B) * configuration.stateSize
    var penalty: Float = 0
    if regularize {
      penalty = ActivityPenalty.loss(
        output: output, dropped: dropped, activation: r.activation, temporal: r.temporalActivation, lengths: nil,
        meanCount: meanCount)
    }
    let trace = LanguageModelTrace(
      ids: ids, sequenceLength: T, batchSize: B, wordMask: wordMask, embeddingMask: embeddingMask,
      embeddingLockedMask: embeddingLockedMask, rnn: rnnTrace, outputMask: outputMask,
      outputLockedMask: outputLockedMask, decoder: decoderTrace, output: regularize ? output : nil,
      dropped: regularize ? dropped : nil, meanCount: meanCount, regularizationLoss: penalty)
    return (logits, newState, trace)
  }

  /// Inference: logits `[T*B, V]` and the final state, keeping no activations for a backward.
  public func logits(
    ids: [Int], sequenceLength T: Int, batchSize B: Int, state: RecurrentState? = nil,
    compute: Compute = .singleThread
  ) -> (logits: Tensor, state: RecurrentState) {
    let (output, newState) = rnn(encoder(ids, shape: [T, B]), initialState: state, compute: compute)
    let logits = effectiveDecoder(output.reshaped([T * B, configuration.stateSize]), compute: compute)
    return (logits, newState)
  }

  /// Adds all parameter gradients into `gradient`, given ∂loss/∂logits `[T*B, V]`. The
  /// carried-in state is treated as a constant (truncated backpropagation through time).
  /// - Parameters:
  ///   - trace: what `forward` kept.
  ///   - logitsGradient: ∂loss/∂logits `[T*B, V]`.
  ///   - gradient: a model-shaped accumulator the gradients are added into.
  ///   - compute: threads for the products; results do not depend on the count.
  ///   - parametersReady: told the indices (in `forEachParameter` order) and the
  ///     final gradients of the decoder, then each recurrent layer from the top, then the
  ///     embedding.
  public func backward(
    _ trace: LanguageModelTrace, logitsGradient: Tensor, into gradient: inout LanguageModel,
    compute: Compute = .singleThread, parametersReady: ParametersReady? = nil
  ) {
    let perLayer = rnn.tensorsPerDirection * rnn.directionCount
    let rnnStart = 1  // after encoder.weight
    let T = trace.sequenceLength
    let B = trace.batchSize
    let dropout = Dropout(probability: configuration.dropout)
    // When tied, decoder.weight is not a parameter of its own: the encoder's gradient is swapped
    // in and the decoder's product adds into it (no [V, E] copy or extra pass); the gradients
    // are written in place, never through a second reference (which would copy them).
    if configuration.tied { swap(&gradient.decoder.weight, &gradient.encoder.weight) }
    let dDropped = effectiveDecoder.backward(
      trace.decoder, outputGradient: logitsGradient, into: &gradient.decoder, compute: compute)
    if configuration.tied { swap(&gradient.decoder.weight, &gradient.encoder.weight) }
    let decoderStart = rnnStart + perLayer * rnn.layerCount
    if let parametersReady {
      let tensors = Array(gradient.decoder.namedParameters.map(\.tensor).dropFirst(configuration.tied ? 1 : 0))
      parametersReady(decoderStart..<(decoderStart + tensors.count), tensors)
    }
    let r = configuration.regularization
    let locked = Dropout(probability: r.lockedDropout, locked: true)
    var dFinal = dDropped.reshaped([T, B, configuration.stateSize])
    if let dropped = trace.dropped, r.activation > 0 {
      ActivityPenalty.addActivationGradient(&dFinal, dropped: dropped, factor: r.activation, meanCount: trace.meanCount)
    }
    var dOutput = dropout.backward(locked.backward(dFinal, mask: trace.outputLockedMask), mask: trace.outputMask)
    if let output = trace.output, r.temporalActivation > 0 {
      ActivityPenalty.addTemporalGradient(
        &dOutput, output: output, factor: r.temporalActivation, lengths: nil, meanCount: trace.meanCount)
    }
    let (dEmbedded, _) = rnn.backward(
      trace.rnn, outputGradient: dOutput, into: &gradient.rnn, compute: compute,
      layerReady: parametersReady.map { ready in
        { layer, weights in
          let tensors = weights.flatMap(\.tensors)
          ready((rnnStart + perLayer * layer)..<(rnnStart + perLayer * (layer + 1)), tensors)
        }
      })
    var dLooked = dropout.backward(locked.backward(dEmbedded, mask: trace.embeddingLockedMask), mask: trace.embeddingMask)
    if let wordMask = trace.wordMask { scaleRows(&dLooked, ids: trace.ids, by: wordMask) }
    encoder.backward(ids: trace.ids, outputGradient: dLooked, into: &gradient.encoder)
    parametersReady?(0..<rnnStart, [gradient.encoder.weight])
  }
}

/// Activation and temporal activation regularization (AR, TAR; Merity et al. 2017) of
/// time-major `[T, B, W]` outputs: `α·Σo²/N` over `dropped` (the output after dropout) plus
/// `β·Σ(h_t - h_{t-1})²/N` over `output` (before it), N = `meanCount`. With `lengths`, TAR
/// counts only pairs of real steps.
package enum ActivityPenalty {
  /// The penalty.
  package static func loss(
    output: Tensor, dropped: Tensor, activation: Float, temporal: Float, lengths: [Int]?, meanCount: Int
  ) -> Float {
    var ar: Double = 0
    if activation > 0 {
      for v in dropped.scalars { ar += Double(v * v) }
    }
    var tar: Double = 0
    if temporal > 0 {
      forEachPair(output, lengths: lengths) { i, j in
        let d = output.scalars[i] - output.scalars[j]
        tar += Double(d * d)
      }
    }
    return Float((Double(activation) * ar + Double(temporal) * tar) / Double(meanCount))
  }

  /// Adds AR's gradient `2α·o/N` into `dDropped`.
  package static func addActivationGradient(_ dDropped: inout Tensor, dropped: Tensor, factor: Float, meanCount: Int) {
    let scale = 2 * factor / Float(meanCount)
    for i in 0..<dDropped.count { dDropped.scalars[i] += scale * dropped.scalars[i] }
  }

  /// Adds TAR's gradient into `dOutput`: `2β(h_t - h_{t-1})/N` to step t, its negative to t-1.
  package static func addTemporalGradient(
    _ dOutput: inout Tensor, output: Tensor, factor: Float, lengths: [Int]?, meanCount: Int
  ) {
    let scale = 2 * factor / Float(meanCount)
    forEachPair(output, lengths: lengths) { i, j in
      let g = scale * (output.scalars[i] - output.scalars[j])
      dOutput.scalars[i] += g
      dOutput.scalars[j] -= g
    }
  }

  /// Calls `body(i, j)` with the flat indices of each value at step t > 0 and the same value at t-1.
  static func forEachPair(_ output: Tensor, lengths: [Int]?, _ body: (Int, Int) -> Void) {
    let (T, B, W) = (output.shape[0], output.shape[1], output.shape[2])
    for t in 1..<max(T, 1) {
      for b in 0..<B where t < (lengths?[b] ?? T) {
        let i = (t * B + b) * W
        for k in 0..<W { body(i + k, i + k - B * W) }
      }
    }
  }
}

/// Multiplies the row of each id in `values` (`[ids.count, W]` in any shape) by `factors[id]`.
package func scaleRows(_ values: inout Tensor, ids: [Int], by factors: FloatBuffer) {
  let width = values.count / max(ids.count, 1)
  values.withMutablePointer { v in
    for (i, id) in ids.enumerated() {
      let f = factors.pointer[id]
      for j in 0..<width { v[i * width + j] *= f }
    }
  }
}

/// Embedding dropout's mask (AWD-LSTM): one factor per token of the vocabulary, 0 with
/// probability p and 1/(1-p) otherwise, drawn from one key of `rng`.
package func tokenDropoutMask(vocabularySize: Int, probability: Float, using rng: inout some RandomNumberGenerator) -> FloatBuffer {
  dropoutMask(count: vocabularySize, probability: probability, using: &rng)
}
