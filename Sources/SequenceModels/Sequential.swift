import Recurrent

/// One layer of a `Sequential` model, as Keras names them. Build with the static helpers:
/// `.gru(64)`, `.lstm(32, returnSequences: true)`, `.simpleRNN(16)`, `.bidirectional(.gru(8))`,
/// `.embedding(1000, 32, maskZero: true)`, `.dense(1, activation: .sigmoid)`, `.dropout(0.2)`.
public indirect enum Layer: Codable, Sendable, Equatable {
  /// Token ids in `0..<vocabularySize` to vectors; only as the first layer. `maskZero`: id 0 is
  /// padding, and each sequence ends after its last non-zero id (right padding).
  case embedding(vocabularySize: Int, outputSize: Int, maskZero: Bool, trainable: Bool)
  /// A recurrent layer over the sequence; the last step only unless `returnSequences`.
  case recurrent(kind: CellKind, units: Int, returnSequences: Bool)
  /// An LSTM whose state is projected to `projection` units (PyTorch's `proj_size`, `weight_hr`):
  /// `0 < projection < units`; its output is `projection` wide.
  case projectedLSTM(units: Int, projection: Int, returnSequences: Bool)
  /// Both directions of a recurrent layer, outputs concatenated (Keras `merge_mode="concat"`).
  case bidirectional(Layer)
  /// A fully connected layer on the last axis (per step on sequences).
  case dense(units: Int, activation: Activation)
  /// Inverted dropout in training, identity otherwise.
  case dropout(rate: Float)

  /// Keras `GRU`: `resetAfter: true` (the default, as Keras and PyTorch) or Cho et al.'s cell.
  public static func gru(_ units: Int, returnSequences: Bool = false, resetAfter: Bool = true) -> Layer {
    .recurrent(kind: resetAfter ? .gru : .gruResetBefore, units: units, returnSequences: returnSequences)
  }
  /// Keras `LSTM`; with `projection`, PyTorch's projected LSTM (`proj_size`).
  public static func lstm(_ units: Int, projection: Int = 0, returnSequences: Bool = false) -> Layer {
    projection == 0
      ? .recurrent(kind: .lstm, units: units, returnSequences: returnSequences)
      : .projectedLSTM(units: units, projection: projection, returnSequences: returnSequences)
  }

  /// The recurrent layer this is (`.recurrent` or `.projectedLSTM`), nil for the others.
  var recurrentShape: (kind: CellKind, units: Int, projection: Int, returnSequences: Bool)? {
    switch self {
    case .recurrent(let kind, let units, let returnSequences): (kind, units, 0, returnSequences)
    case .projectedLSTM(let units, let projection, let returnSequences): (.lstm, units, projection, returnSequences)
    default: nil
    }
  }
  /// An LSTM with peephole connections (`CellKind.lstmPeephole`; TensorFlow's `PeepholeLSTMCell`).
  public static func peepholeLSTM(_ units: Int, returnSequences: Bool = false) -> Layer {
    .recurrent(kind: .lstmPeephole, units: units, returnSequences: returnSequences)
  }
  /// haste's LayerNormGRU (`CellKind.gruLN`) or, with `lstm`, LayerNormLSTM (`CellKind.lstmLN`).
  public static func layerNorm(_ units: Int, lstm: Bool = false, returnSequences: Bool = false) -> Layer {
    .recurrent(kind: lstm ? .lstmLN : .gruLN, units: units, returnSequences: returnSequences)
  }
  /// minGRU (`CellKind.minGRU`, Feng et al. 2024): gates from the input only, trained in
  /// parallel over time.
  public static func minGRU(_ units: Int, returnSequences: Bool = false) -> Layer {
    .recurrent(kind: .minGRU, units: units, returnSequences: returnSequences)
  }
  /// minLSTM (`CellKind.minLSTM`, Feng et al. 2024).
  public static func minLSTM(_ units: Int, returnSequences: Bool = false) -> Layer {
    .recurrent(kind: .minLSTM, units: units, returnSequences: returnSequences)
  }
  /// Keras `SimpleRNN` (Elman), `activation` `.tanh` or `.relu`.
  public static func simpleRNN(_ units: Int, activation: Activation = .tanh, returnSequences: Bool = false) -> Layer {
    .recurrent(kind: activation == .relu ? .rnnRelu : .rnnTanh, units: units, returnSequences: returnSequences)
  }
  /// Keras `Dense`.
  public static func dense(_ units: Int, activation: Activation = .none) -> Layer {
    .dense(units: units, activation: activation)
  }
  /// Keras `Dropout`.
  public static func dropout(_ rate: Float) -> Layer { .dropout(rate: rate) }
  /// Keras `Embedding(input_dim, output_dim, mask_zero=)`.
  public static func embedding(_ vocabularySize: Int, _ outputSize: Int, maskZero: Bool = false, trainable: Bool = true) -> Layer {
    .embedding(vocabularySize: vocabularySize, outputSize: outputSize, maskZero: maskZero, trainable: trainable)
  }
}

/// Metrics of `Sequential.compile`, Keras names as raw values.
public enum Metric: String, Codable, CaseIterable, Sendable {
  /// Arg-max match for several units; for one unit, the same as `binaryAccuracy` (as Keras).
  case accuracy
  /// Prediction above 0.5 equals target above 0.5, per unit.
  case binaryAccuracy = "binary_accuracy"
  /// Mean absolute error between prediction and target.
  case meanAbsoluteError = "mae"
}

/// A model that cannot be built or used, by kind, with a message naming what is wrong.
public enum ModelError: Error, CustomStringConvertible, Equatable {
  /// A stack of layers that cannot work (sizes, order, wrapping).
  case invalidModel(String)
  /// Inputs, targets or lengths that do not fit the model.
  case invalidData(String)
  /// An argument out of range (epochs, batch size, validation split, ...).
  case invalidArgument(String)
  /// `fit`, `evaluate` or `trainOnBatch` before `compile`.
  case notCompiled(String)
  /// A loss the model's final layer cannot feed.
  case lossDoesNotFitOutput(String)

  /// The message, one line.
  public var description: String {
    switch self {
    case .invalidModel(let m), .invalidData(let m), .invalidArgument(let m), .notCompiled(let m),
      .lossDoesNotFitOutput(let m):
      m
    }
  }
}

/// A built layer holding its parameters.
public enum SequentialPart: Sendable, Equatable {
  case embedding(Embedding, maskZero: Bool, trainable: Bool)
  case recurrent(RecurrentLayer, returnSequences: Bool)
  case dense(Linear)
  case dropout(Dropout)
}

extension SequentialPart {
  /// The part's parameter tensors in `forEachParameter` order.
  var parameterTensors: [Tensor] {
    switch self {
    case .embedding(let e, _, _): e.namedParameters.map(\.tensor)
    case .recurrent(let r, _): r.namedParameters.map(\.tensor)
    case .dense(let l): l.namedParameters.map(\.tensor)
    case .dropout: []
    }
  }
}

/// How a model learns, set by `compile`; `fit` updates the optimizer state.
public struct CompiledSetup: Sendable {
  /// The loss `fit` minimises and `evaluate` reports.
  public var loss: LossFunction
  /// Metrics `fit` and `evaluate` report beside the loss.
  public var metrics: [Metric]
  /// The shared training step: the optimizer, global-norm clipping (Keras `clipnorm`, here
  /// global) and the NaN policy.
  public var trainer: TrainingStep
  /// The optimizer and its state.
  public var optimizer: Optimizer { trainer.optimizer }
  /// Global-norm clipping threshold, or nil for none.
  public var clipNorm: Float? { trainer.clipNorm }
}

/// One epoch of `fit`, Keras `History` entries.
public struct EpochLog: Sendable, Codable, Equatable {
  /// The epoch, from 1.
  public var epoch: Int
  /// Mean training loss over the epoch's batches.
  public var loss: Double
  /// Training metrics by name.
  public var metrics: [String: Double]
  /// Validation loss, when validation data was given.
  public var validationLoss: Double?
  /// Validation metrics by name.
  public var validationMetrics: [String: Double]
  /// Wall-clock seconds of the epoch.
  public var seconds: Double
}

/// What `fit` returns: one log per epoch; `history["val_loss"]` reads a column as Keras does.
public struct History: Sendable, Equatable {
  /// One entry per epoch, in order.
  public var epochs: [EpochLog] = []

  /// `"loss"`, `"val_loss"`, a metric name (`"binary_accuracy"`) or `"val_"` + a metric name.
  public subscript(key: String) -> [Double] {
    epochs.compactMap { log in
      if key == "loss" { return log.loss }
      if key == "val_loss" { return log.validationLoss }
      if key.hasPrefix("val_") { return log.validationMetrics[String(key.dropFirst(4))] }
      return log.metrics[key]
    }
  }
}

/// Progress reported by `fit` as it goes.
public enum FitProgress: Sendable {
  case batch(epoch: Int, batch: Int, batches: Int, loss: Double)
  case epoch(EpochLog)
}

/// A stack of layers trained with `fit`, as Keras `Sequential`:
///
///     var model = try Sequential(inputFeatures: 1, [.gru(64, returnSequences: true), .dense(1)])
///     model.compile(loss: .meanSquaredError, optimizer: .init(kind: .adam, learningRate: 1e-2))
///     let history = try model.fit(x, y, epochs: 20, batchSize: 32)
///     let predictions = try model.predict(x)
///
/// Inputs are batch-major as in Keras: `[N, T, F]` features, or `[N, T]` token ids (whole
/// numbers stored as Float) when the first layer is an embedding. Sequences of different
/// lengths are right-padded and passed with `lengths:` (or marked by id 0 with `maskZero`).
/// Outputs are `[N, K]` after a last-step recurrent layer or `[N, T, K]` for sequences.
public struct Sequential: Parameterized, Sendable {
  /// The layers as given.
  public let layers: [Layer]
  /// Features per step of the input; nil when the first layer is an embedding.
  public let inputFeatures: Int?
  /// The layers' weights, one part per layer that has any.
  public var parts: [SequentialPart]
  /// The loss, metrics and training step set by `compile`; nil before.
  public var compiled: CompiledSetup?

  /// Units of the output, and whether it has a time axis.
  public let outputUnits: Int
  /// Whether the output has a time axis (`[N, T, K]`) or not (`[N, K]`).
  public let outputIsSequence: Bool
  /// The regularizers (all off by default): weight drop and zoneout on every recurrent layer,
  /// locked dropout on each recurrent layer's output sequence, embedding dropout on the first
  /// layer's embedding, AR and TAR on the last recurrent layer's output sequence (real steps).
  /// Zoneout also acts at inference; the others in training only.
  public let regularization: Regularization

  /// Builds the layers with PyTorch's initialisation drawn from `rng`; the recurrent layers'
  /// as `initialization` says (`.keras`: Glorot-uniform input weights, orthogonal recurrent
  /// weights, zero biases), and every LSTM's forget-gate bias set to `forgetBias` when given.
  /// `regularization`: see `regularization`.
  /// - Throws: `ModelError` when the stack cannot work (a recurrent layer after one that
  ///   returns a single vector, an embedding not first, sizes not positive, a rate out of range, ...).
  public init(
    inputFeatures: Int? = nil, _ layers: [Layer], initialization: Initialization = .pytorch, forgetBias: Float? = nil,
    regularization: Regularization = Regularization(), using rng: inout some RandomNumberGenerator
  ) throws {
    guard !layers.isEmpty else { throw ModelError.invalidModel("a Sequential model needs at least one layer") }
    if let problem = regularization.problem { throw ModelError.invalidModel(problem) }
    var parts: [SequentialPart] = []
    var width: Int
    var isSequence = true
    if case .embedding = layers[0] {
      width = 0
    } else {
      guard let inputFeatures else {
        throw ModelError.invalidModel("inputFeatures is needed when the first layer is not an embedding")
      }
      guard inputFeatures > 0 else { throw ModelError.invalidModel("inputFeatures must be positive, got \(inputFeatures)") }
      width = inputFeatures
    }
    for (index, layer) in layers.enumerated() {
      let position = "layer \(index) (\(Self.name(of: layer)))"
      switch layer {
      case .embedding(let vocabularySize, let outputSize, let maskZero, let trainable):
        guard index == 0 else { throw ModelError.invalidModel("\(position): an embedding can only be the first layer") }
        guard vocabularySize > 0 && outputSize > 0 else { throw ModelError.invalidModel("\(position): sizes must be positive") }
        var e = Embedding(vocabularySize: vocabularySize, embeddingSize: outputSize, using: &rng)
        if maskZero { for j in 0..<outputSize { e.weight.scalars[j] = 0 } }  // padding row
        parts.append(.embedding(e, maskZero: maskZero, trainable: trainable))
        width = outputSize
      case .recurrent, .projectedLSTM, .bidirectional:
        var bidirectional = false
        var inner = layer
        if case .bidirectional(let wrapped) = layer {
          bidirectional = true
          inner = wrapped
        }
        guard let (kind, units, projection, returnSequences) = inner.recurrentShape else {
          throw ModelError.invalidModel("\(position): Bidirectional wraps a recurrent layer (GRU, LSTM, SimpleRNN)")
        }
        guard units > 0 else { throw ModelError.invalidModel("\(position): units must be positive, got \(units)") }
        guard projection >= 0 && projection < units else {
          throw ModelError.invalidModel("\(position): the projection must be in 1..<\(units) (the units), got \(projection)")
        }
        guard isSequence else {
          throw ModelError.invalidModel(
            "\(position) needs a sequence, but the layer before returns one vector per sequence (give it returnSequences: true)")
        }
        guard regularization.weightDrop == 0 || kind.hasRecurrentWeights else {
          throw ModelError.invalidModel("\(position): weight drop acts on weight_hh, which \(kind.rawValue) has not")
        }
        var r = RecurrentLayer(
          kind: kind, inputSize: width, hiddenSize: units, bidirectional: bidirectional, initialization: initialization,
          forgetBias: kind.isLSTM ? forgetBias : nil, projectionSize: projection, using: &rng)
        r.weightDrop = regularization.weightDrop
        r.zoneout = regularization.zoneout
        parts.append(.recurrent(r, returnSequences: returnSequences))
        width = r.outputSize
        isSequence = returnSequences
      case .dense(let units, let activation):
        guard units > 0 else { throw ModelError.invalidModel("\(position): units must be positive, got \(units)") }
        parts.append(.dense(Linear(inputSize: width, outputSize: units, activation: activation, using: &rng)))
        width = units
      case .dropout(let rate):
        guard rate >= 0 && rate < 1 else { throw ModelError.invalidModel("\(position): rate must be in [0, 1), got \(rate)") }
        parts.append(.dropout(Dropout(probability: rate)))
      }
    }
    guard width > 0 else { throw ModelError.invalidModel("the model has no output units") }
    self.layers = layers
    if case .embedding = layers[0] { self.inputFeatures = nil } else { self.inputFeatures = inputFeatures }
    self.parts = parts
    self.outputUnits = width
    self.outputIsSequence = isSequence
    self.regularization = regularization
  }

  /// A layer as Keras would print it: "GRU(64, return_sequences)", "Dense(1, sigmoid)".
  public static func describe(_ layer: Layer) -> String {
    switch layer {
    case .embedding(let v, let d, let mask, _): "Embedding(\(v), \(d)\(mask ? ", mask_zero" : ""))"
    case .recurrent(let kind, let units, let sequences):
      "\(name(of: layer))(\(units)\(kind == .gruResetBefore ? ", reset_after=False" : kind == .rnnRelu ? ", relu" : "")\(sequences ? ", return_sequences" : ""))"
    case .projectedLSTM(let units, let projection, let sequences):
      "LSTM(\(units), proj_size=\(projection)\(sequences ? ", return_sequences" : ""))"
    case .bidirectional(let inner): "Bidirectional(\(describe(inner)))"
    case .dense(let units, let activation): "Dense(\(units)\(activation == .none ? "" : ", \(activation)"))"
    case .dropout(let rate): "Dropout(\(rate))"
    }
  }

  static func name(of layer: Layer) -> String {
    switch layer {
    case .embedding: "Embedding"
    case .recurrent(let kind, _, _):
      switch kind {
      case .gru, .gruResetBefore: "GRU"
      case .lstm: "LSTM"
      case .lstmPeephole: "PeepholeLSTM"
      case .rnnTanh, .rnnRelu: "SimpleRNN"
      case .gruLN: "LayerNormGRU"
      case .lstmLN: "LayerNormLSTM"
      case .minGRU: "MinGRU"
      case .minLSTM: "MinLSTM"
      }
    case .projectedLSTM: "LSTM"
    case .bidirectional(let inner): "Bidirectional(\(name(of: inner)))"
    case .dense: "Dense"
    case .dropout: "Dropout"
    }
  }

  /// Parameters named `layers.{index}.{PyTorch name}`.
  public mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows {
    for index in parts.indices {
      let prefix = "layers.\(index)."
      switch parts[index] {
      case .embedding(var e, let maskZero, let trainable):
        parts[index] = .dropout(Dropout(probability: 0))  // release the storage so edits do not copy
        try e.forEachParameter { try body(prefix + $0, &$1) }
        parts[index] = .embedding(e, maskZero: maskZero, trainable: trainable)
      case .recurrent(var r, let returnSequences):
        parts[index] = .dropout(Dropout(probability: 0))
        try r.forEachParameter { try body(prefix + $0, &$1) }
        parts[index] = .recurrent(r, returnSequences: returnSequences)
      case .dense(var l):
        parts[index] = .dropout(Dropout(probability: 0))
        try l.forEachParameter { try body(prefix + $0, &$1) }
        parts[index] = .dense(l)
      case .dropout:
        break
      }
    }
  }

  /// Sets the loss, optimizer and metrics (Keras `compile`); resets the optimizer state.
  /// `onNaN`: what a step whose loss or gradient is not finite does (never update).
  public mutating func compile(
    loss: LossFunction, optimizer: OptimizerConfiguration = OptimizerConfiguration(kind: .adam, learningRate: 1e-3),
    metrics: [Metric] = [], clipNorm: Float? = nil, onNaN: NaNPolicy = .stop
  ) {
    compiled = CompiledSetup(
      loss: loss, metrics: metrics, trainer: TrainingStep(optimizer: Optimizer(optimizer), clipNorm: clipNorm, onNaN: onNaN))
  }

  /// Index ranges (in `forEachParameter` order) of each part's parameters.
  var parameterRanges: [Range<Int>] {
    var start = 0
    return parts.map { part in
      let count = part.parameterTensors.count
      defer { start += count }
      return start..<(start + count)
    }
  }

  /// The embedding table of the first layer (for pretrained vectors).
  public var embeddingWeight: Tensor? {
    get {
      if case .embedding(let e, _, _)? = parts.first { return e.weight }
      return nil
    }
    set {
      guard let newValue, case .embedding(var e, let maskZero, let trainable)? = parts.first else { return }
      precondition(newValue.shape == e.weight.shape, "embeddingWeight: shape \(newValue.shape), expected \(e.weight.shape)")
      e.weight = newValue
      parts[0] = .embedding(e, maskZero: maskZero, trainable: trainable)
    }
  }

  // MARK: - Data checks

  /// Checks `x` (and `lengths`) against the model; returns the effective lengths.
  func validate(_ x: Tensor, lengths: [Int]?, what: String = "x") throws -> [Int]? {
    if case .embedding(let e, let maskZero, _)? = parts.first {
      guard x.rank == 2 else {
        throw ModelError.invalidData("\(what) must be token ids [N, T] for a model that starts with an embedding, got shape \(x.shape)")
      }
      let V = e.vocabularySize
      for (i, v) in x.scalars.enumerated() where !(v >= 0 && v < Float(V) && v == v.rounded()) {
        throw ModelError.invalidData("\(what): entry \(i) is \(v), not a token id in 0..<\(V)")
      }
      if lengths == nil && maskZero {
        let (N, T) = (x.shape[0], x.shape[1])
        return (0..<N).map { n in
          var length = T
          while length > 0 && x.scalars[n * T + length - 1] == 0 { length -= 1 }
          return length
        }
      }
    } else {
      guard x.rank == 3, x.shape[2] == inputFeatures else {
        throw ModelError.invalidData("\(what) must have shape [N, T, \(inputFeatures ?? 0)], got \(x.shape)")
      }
    }
    guard x.shape[0] > 0 && x.shape[1] > 0 else { throw ModelError.invalidData("\(what) is empty (shape \(x.shape))") }
    if let lengths {
      guard lengths.count == x.shape[0] else {
        throw ModelError.invalidData("lengths: \(lengths.count) values for \(x.shape[0]) sequences")
      }
      if let bad = lengths.firstIndex(where: { $0 < 0 || $0 > x.shape[1] }) {
        throw ModelError.invalidData("lengths[\(bad)] is \(lengths[bad]), outside 0...\(x.shape[1])")
      }
    }
    return lengths
  }

  /// Targets as `[N, (T,) K]` floats: class ids become one-hot rows for categorical
  /// cross-entropy, and a missing unit axis of size 1 is added.
  func prepareTargets(_ y: Tensor, samples N: Int, steps T: Int, loss: LossFunction, what: String = "y") throws -> Tensor {
    let K = outputUnits
    let full = outputIsSequence ? [N, T, K] : [N, K]
    let noUnit = Array(full.dropLast())
    if y.shape == full { return y }
    if loss == .categoricalCrossEntropy && (y.shape == noUnit || y.shape == noUnit + [1]) {
      var oneHot = Tensor(zeros: full)
      for (i, v) in y.scalars.enumerated() {
        guard v >= 0 && v < Float(K) && v == v.rounded() else {
          throw ModelError.invalidData("\(what): entry \(i) is \(v), not a class id in 0..<\(K)")
        }
        oneHot.scalars[i * K + Int(v)] = 1
      }
      return oneHot
    }
    if K == 1 && y.shape == noUnit { return y.reshaped(full) }
    throw ModelError.invalidData("\(what) must have shape \(full)\(K == 1 ? " or \(noUnit)" : loss == .categoricalCrossEntropy ? " or class ids \(noUnit)" : ""), got \(y.shape)")
  }

  // MARK: - Forward and backward

  enum Saved {
    /// `wordMask`: embedding dropout's factor per token.
    case embedding(ids: [Int], wordMask: FloatBuffer?)
    /// `lockedMask`: locked dropout's mask on the output sequence; `activity`: the last
    /// recurrent layer's output sequence before and after it, for AR and TAR.
    case recurrent(RecurrentTrace, steps: Int, lockedMask: Tensor?, activity: (output: Tensor, dropped: Tensor)?)
    case dense(LinearTrace, Linear)
    case dropout(Tensor?)
  }

  /// Runs the stack on a batch `x` (batch-major). With `raw`, a final sigmoid or softmax
  /// Dense is left out (its logits are returned).
  func run(
    _ x: Tensor, lengths: [Int]?, training: Bool, raw: Bool, using rng: inout some RandomNumberGenerator,
    compute: Compute
  ) -> (output: Tensor, saved: [Saved]) {
    let B = x.shape[0]
    let T = x.shape[1]
    var h: Tensor
    var saved: [Saved] = []
    var isSequence = true
    var start = 0
    if case .embedding(let e, _, _)? = parts.first {
      var ids = [Int](repeating: 0, count: B * T)  // time-major
      for b in 0..<B { for t in 0..<T { ids[t * B + b] = Int(x.scalars[b * T + t]) } }
      h = e(ids, shape: [T, B])
      var wordMask: FloatBuffer? = nil
      if training && regularization.embeddingDropout > 0 {
        let mask = tokenDropoutMask(vocabularySize: e.vocabularySize, probability: regularization.embeddingDropout, using: &rng)
        scaleRows(&h, ids: ids, by: mask)
        wordMask = mask
      }
      saved.append(.embedding(ids: ids, wordMask: wordMask))
      start = 1
    } else {
      h = swapFirstAxes(x)
    }
    for index in start..<parts.count {
      switch parts[index] {
      case .embedding:
        preconditionFailure("embedding after the first layer")
      case .recurrent(let r, let returnSequences):
        let (out, _, trace) = r.forward(
          h, initialState: nil, lengths: lengths, training: training, keepTrace: training, using: &rng, compute: compute)
        let locked = Dropout(probability: regularization.lockedDropout, locked: true)
        let (dropped, lockedMask) = locked.forward(out, training: training, using: &rng)
        var activity: (output: Tensor, dropped: Tensor)? = nil
        if training && index == lastRecurrentIndex && (regularization.activation > 0 || regularization.temporalActivation > 0) {
          activity = (out, dropped)
        }
        saved.append(.recurrent(trace, steps: T, lockedMask: lockedMask, activity: activity))
        h = returnSequences ? dropped : r.lastStep(of: dropped, lengths: lengths)
        isSequence = returnSequences
      case .dense(var l):
        if raw && index == parts.count - 1 && (l.activation == .sigmoid || l.activation == .softmax) {
          l.activation = .none
        }
        let (out, trace) = l.forward(h, compute: compute)
        saved.append(.dense(trace, l))
        h = out
      case .dropout(let d):
        let (out, mask) = d.forward(h, training: training, using: &rng)
        saved.append(.dropout(mask))
        h = out
      }
    }
    return (isSequence ? swapFirstAxes(h) : h, saved)
  }

  /// Adds the parameter gradients of the batch `run` saved into `gradient`, telling
  /// `parametersReady` each layer's parameter indices once they are final.
  func backward(
    _ saved: [Saved], outputGradient: Tensor, lengths: [Int]?, into gradient: inout Sequential, compute: Compute,
    parametersReady: ParametersReady? = nil
  ) {
    var d = outputIsSequence ? swapFirstAxes(outputGradient) : outputGradient
    let ranges = parametersReady == nil ? [] : parameterRanges
    for index in parts.indices.reversed() {
      defer {
        if let parametersReady, !ranges[index].isEmpty {
          parametersReady(ranges[index], gradient.parts[index].parameterTensors)
        }
      }
      switch (parts[index], saved[index]) {
      case (.embedding(let e, _, let trainable), .embedding(let ids, let wordMask)):
        guard trainable, case .embedding(var g, let maskZero, _) = gradient.parts[index] else { continue }
        gradient.parts[index] = .dropout(Dropout(probability: 0))
        if let wordMask { scaleRows(&d, ids: ids, by: wordMask) }
        e.backward(ids: ids, outputGradient: d, into: &g)
        gradient.parts[index] = .embedding(g, maskZero: maskZero, trainable: trainable)
      case (.recurrent(let r, let returnSequences), .recurrent(let trace, let T, let lockedMask, let activity)):
        guard case .recurrent(var g, _) = gradient.parts[index] else { continue }
        gradient.parts[index] = .dropout(Dropout(probability: 0))
        var dOut = returnSequences ? d : r.lastStepBackward(d, sequenceLength: T, lengths: lengths)
        let count = activity.map { $0.output.count } ?? 1
        if let activity, regularization.activation > 0 {
          ActivityPenalty.addActivationGradient(
            &dOut, dropped: activity.dropped, factor: regularization.activation, meanCount: count)
        }
        dOut = Dropout(probability: regularization.lockedDropout, locked: true).backward(dOut, mask: lockedMask)
        if let activity, regularization.temporalActivation > 0 {
          ActivityPenalty.addTemporalGradient(
            &dOut, output: activity.output, factor: regularization.temporalActivation, lengths: lengths,
            meanCount: count)
        }
        d = r.backward(trace, outputGradient: dOut, into: &g, compute: compute).input
        gradient.parts[index] = .recurrent(g, returnSequences: returnSequences)
      case (.dense, .dense(let trace, let l)):
        guard case .dense(var g) = gradient.parts[index] else { continue }
        gradient.parts[index] = .dropout(Dropout(probability: 0))
        d = l.backward(trace, outputGradient: d, into: &g, compute: compute)
        gradient.parts[index] = .dense(g)
      case (.dropout(let layer), .dropout(let mask)):
        d = layer.backward(d, mask: mask)
      default:
        preconditionFailure("Sequential.backward: trace does not match the layers")
      }
    }
  }

  /// The index of the last recurrent part (AR and TAR act on its output), nil without one.
  var lastRecurrentIndex: Int? {
    parts.lastIndex { if case .recurrent = $0 { true } else { false } }
  }

  /// AR + TAR of a batch `run` saved (0 when both are off): means over the last recurrent
  /// layer's `[T, B, W]` output. Not part of the loss `fit` reports, only of what it minimises.
  func activityPenalty(_ saved: [Saved], lengths: [Int]?) -> Float {
    for case .recurrent(_, _, _, let activity?) in saved {
      return ActivityPenalty.loss(
        output: activity.output, dropped: activity.dropped, activation: regularization.activation,
        temporal: regularization.temporalActivation, lengths: lengths, meanCount: activity.output.count)
    }
    return 0
  }

  /// Whether the loss is computed from logits of a final sigmoid/softmax Dense.
  var fusesFinalActivation: Bool {
    guard let loss = compiled?.loss, case .dense(let l)? = parts.last else { return false }
    return (loss == .binaryCrossEntropy && l.activation == .sigmoid)
      || (loss == .categoricalCrossEntropy && l.activation == .softmax)
  }

  func checkLossFitsOutput(_ loss: LossFunction) throws {
    let final: Activation = if case .dense(let l)? = parts.last { l.activation } else { .tanh }
    switch loss {
    case .meanSquaredError:
      return
    case .binaryCrossEntropy:
      guard final == .sigmoid || final == .none else {
        throw ModelError.lossDoesNotFitOutput("binary cross-entropy needs a final Dense with sigmoid (or linear logits), not \(final)")
      }
    case .categoricalCrossEntropy:
      guard final == .softmax || final == .none, outputUnits > 1 else {
        throw ModelError.lossDoesNotFitOutput("categorical cross-entropy needs a final Dense of 2 or more units with softmax (or linear logits)")
      }
    }
  }
}

/// `[A, B, ...]` to `[B, A, ...]`: batch-major to time-major and back.
func swapFirstAxes(_ x: Tensor) -> Tensor {
  let (A, B) = (x.shape[0], x.shape[1])
  let inner = x.count / max(1, A * B)
  var out = [Float](repeating: 0, count: x.count)
  x.scalars.withUnsafeBufferPointer { src in
    out.withUnsafeMutableBufferPointer { dst in
      for a in 0..<A {
        for b in 0..<B {
          let from = src.baseAddress! + (a * B + b) * inner
          (dst.baseAddress! + (b * A + a) * inner).update(from: from, count: inner)
        }
      }
    }
  }
  var shape = x.shape
  shape.swapAt(0, 1)
  return Tensor(shape: shape, scalars: out)
}

extension Sequential {
  /// Scalars the model `layers` would hold, computed without building it; nil when a size is
  /// not positive or the count overflows. Lets a reader bound a described model by its data.
  public static func parameterCount(inputFeatures: Int?, layers: [Layer]) -> Int? {
    var width = inputFeatures ?? 0
    var total = 0
    func add(_ a: Int, _ b: Int) -> Bool {
      let (p, o1) = a.multipliedReportingOverflow(by: b)
      let (s, o2) = total.addingReportingOverflow(p)
      total = s
      return !o1 && !o2 && a > 0 && b > 0
    }
    for layer in layers {
      switch layer {
      case .embedding(let v, let d, _, _):
        guard add(v, d) else { return nil }
        width = d
      case .recurrent, .projectedLSTM, .bidirectional:
        var directions = 1
        var inner = layer
        if case .bidirectional(let wrapped) = layer {
          directions = 2
          inner = wrapped
        }
        guard let (kind, units, projection, _) = inner.recurrentShape, units > 0, units <= 1 << 20,
          projection >= 0, projection < units
        else { return nil }
        let gates = kind.gateCount * units
        let state = projection > 0 ? projection : units
        for _ in 0..<directions {
          guard add(gates, width + (kind.hasRecurrentWeights ? state + 2 : 1)) else { return nil }
          if projection > 0, !add(projection, units) { return nil }
          if let own = kind.cellParameters, !add(own.blocks, units) { return nil }
        }
        width = directions * state
      case .dense(let units, _):
        guard add(units, width + 1) else { return nil }
        width = units
      case .dropout:
        break
      }
    }
    return total
  }
}
