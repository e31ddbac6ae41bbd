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

/// What `LanguageModel.forward` saved for its backward.
public struct LanguageModelTrace: Sendable {
  let ids: [Int]
  let sequenceLength: Int
  let batchSize: Int
  let embeddingMask: Tensor?
  let rnn: RecurrentTrace
  let outputMask: Tensor?
  let decoder: LinearTrace
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
    precondition(!configuration.tied || configuration.hiddenSize == configuration.embeddingSize,
      "LanguageModel: tied embeddings need hiddenSize == embeddingSize")
    self.configuration = configuration
    encoder = Embedding(
      vocabularySize: configuration.vocabularySize, embeddingSize: configuration.embeddingSize, using: &rng)
    rnn = RecurrentLayer(
      kind: configuration.cell, inputSize: configuration.embeddingSize, hiddenSize: configuration.hiddenSize,
      layerCount: configuration.layers, dropout: configuration.dropout, initialization: initialization,
      forgetBias: forgetBias, using: &rng)
    decoder = Linear(inputSize: configuration.hiddenSize, outputSize: configuration.vocabularySize, using: &rng)
    // Tied: the decoder's weight is the embedding itself, never a copy that could go stale.
    if configuration.tied { decoder.weight = Tensor(zeros: [0, configuration.hiddenSize]) }
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
    let dropout = Dropout(probability: configuration.dropout)
    let (embedded, embeddingMask) = dropout.forward(
      encoder(ids, shape: [T, B]), training: training, rows: rows, using: &rng)
    let (output, newState, rnnTrace) = rnn.forward(
      embedded, initialState: state, training: training, rows: rows, using: &rng, compute: compute)
    let (dropped, outputMask) = dropout.forward(output, training: training, rows: rows, using: &rng)
    let (logits, decoderTrace) = effectiveDecoder.forward(dropped.reshaped([T * B, configuration.hiddenSize]), compute: compute)
    let trace = LanguageModelTrace(
      ids: ids, sequenceLength: T, batchSize: B, embeddingMask: embeddingMask, rnn: rnnTrace,
      outputMask: outputMask, decoder: decoderTrace)
    return (logits, newState, trace)
  }

  /// Inference: logits `[T*B, V]` and the final state, keeping no activations for a backward.
  public func logits(
    ids: [Int], sequenceLength T: Int, batchSize B: Int, state: RecurrentState? = nil,
    compute: Compute = .singleThread
  ) -> (logits: Tensor, state: RecurrentState) {
    let (output, newState) = rnn(encoder(ids, shape: [T, B]), initialState: state, compute: compute)
    let logits = effectiveDecoder(output.reshaped([T * B, configuration.hiddenSize]), compute: compute)
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
    let perLayer = 4 * rnn.directionCount
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
    let dOutput = dropout.backward(dDropped.reshaped([T, B, configuration.hiddenSize]), mask: trace.outputMask)
    let (dEmbedded, _) = rnn.backward(
      trace.rnn, outputGradient: dOutput, into: &gradient.rnn, compute: compute,
      layerReady: parametersReady.map { ready in
        { layer, weights in
          let tensors = weights.flatMap { [$0.weightIH, $0.weightHH, $0.biasIH, $0.biasHH] }
          ready((rnnStart + perLayer * layer)..<(rnnStart + perLayer * (layer + 1)), tensors)
        }
      })
    encoder.backward(
      ids: trace.ids, outputGradient: dropout.backward(dEmbedded, mask: trace.embeddingMask), into: &gradient.encoder)
    parametersReady?(0..<rnnStart, [gradient.encoder.weight])
  }
}
