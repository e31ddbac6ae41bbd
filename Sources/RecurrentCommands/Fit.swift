import ArgumentParser
import Formats
import Foundation
import Recurrent
import SequenceModels
import Training

/// What `recurrent fit` learns: the loss, final activation and metric follow from it.
enum FitTask: String, ExpressibleByArgument, CaseIterable {
  case regression, binary, multiclass

  var loss: LossFunction {
    switch self {
    case .regression: .meanSquaredError
    case .binary: .binaryCrossEntropy
    case .multiclass: .categoricalCrossEntropy
    }
  }
  var activation: Activation {
    switch self {
    case .regression: .none
    case .binary: .sigmoid
    case .multiclass: .softmax
    }
  }
  var metric: Metric {
    switch self {
    case .regression: .meanAbsoluteError
    case .binary: .binaryAccuracy
    case .multiclass: .accuracy
    }
  }
}

/// Reads an array from `.npy` or `.csv` (by extension; anything else is read as `.npy`).
func readArray(_ path: String, option: String) throws -> NumPyArray {
  do {
    if path.lowercased().hasSuffix(".csv") {
      let (_, values) = try CSVFile.read(path: path)
      return NumPyArray(values, type: .float64)
    }
    return try NumPyArray.read(path: path)
  } catch let error as DataFileError {
    throw CommandError("\(option) \(error)")
  }
}

/// Per-sequence lengths from an integer array of shape `[N]`.
func readLengths(_ path: String?, samples: Int) throws -> [Int]? {
  guard let path else { return nil }
  let array = try readArray(path, option: "--lengths")
  guard array.shape == [samples] else {
    throw CommandError("--lengths \(path): shape \(array.shape), expected [\(samples)] (one length per sequence)")
  }
  guard array.values.allSatisfy({ $0 == $0.rounded() && $0 >= 0 && $0 < 1e9 }) else {
    throw CommandError("--lengths \(path): lengths must be whole numbers >= 0")
  }
  return array.values.map { Int($0) }
}

/// `x` as the model takes it: `[N, T, F]` features, or `[N, T]` ids for an embedding model;
/// a 2-D array without an embedding is one feature per step.
func modelInput(_ array: NumPyArray, path: String, ids: Bool) throws -> Tensor {
  let tensor = array.tensor
  switch (array.shape.count, ids) {
  case (2, true), (3, false): return tensor
  case (2, false): return tensor.reshaped(array.shape + [1])
  default:
    throw CommandError(
      "--x \(path): shape \(array.shape); expected [N, T, F] features or [N, T]\(ids ? " token ids (the model starts with an embedding)" : "")")
  }
}

/// `recurrent fit`'s defaults (Keras's: Adam 1e-3, no clipping).
enum FitDefaults: CommandDefaults {
  static let cell = CellKind.gru
  static let layers = 1
  static let hidden = 64
  static let optimizer = OptimizerKind.adam
  static let learningRate: Float = 1e-3
  static let clip: Float = 0
  static let seed: UInt64 = 1
}

/// `recurrent fit`: train a sequence classifier or regressor on arrays.
struct Fit: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train a sequence model on arrays: regression, binary or multiclass classification.",
    discussion: """
      --x is [N, T, F] (or [N, T]: one feature per step, or token ids with --embedding), .npy or .csv.
      --y is [N] or [N, K] per sequence; with --return-sequences, [N, T] or [N, T, K] per step. For
      multiclass, y holds class ids (or one-hot rows). Sequences of different lengths are right-padded
      and given --lengths (an integer array [N]) or, for token ids, --mask-zero. The model: an optional
      embedding, --layers recurrent layers of --hidden units, optional --dense hidden layers (relu), and
      an output layer (linear, sigmoid or softmax by --task). Loss: MSE, binary or categorical
      cross-entropy; metric: mae, binary_accuracy or accuracy.
      """)

  @Option(help: "Inputs: .npy (float32/float64/int32/int64, C order) or .csv.") var x: String
  @Option(help: "Targets: .npy or .csv.") var y: String
  @Option(help: "Task: regression, binary, multiclass.") var task: FitTask
  @Option(help: "Real steps of each right-padded sequence: integer array [N].") var lengths: String?
  @OptionGroup(title: "Model (dropout after each recurrent layer)") var modelOptions: ModelOptions<FitDefaults>
  @OptionGroup(title: "Regularization (AWD-LSTM, haste; all 0 by default)") var regularizationOptions: RegularizationOptions
  @Flag(help: "Bidirectional recurrent layers.") var bidirectional = false
  @Option(help: "LSTM: project each layer's state to this width P (0 < P < --hidden; PyTorch's proj_size). [default: none]")
  var projSize: Int?
  @Flag(help: "Predict at every step (targets [N, T, ...]) instead of once per sequence.") var returnSequences = false
  @Option(help: "Hidden Dense relu layers after the recurrent ones, e.g. 64,32.") var dense: String?
  @Option(help: "x holds token ids: embed them in vectors of this size.") var embedding: Int?
  @Option(help: "Vocabulary size for --embedding. [default: largest id + 1]") var vocabSize: Int?
  @Flag(help: "Token id 0 is padding: each sequence ends after its last non-zero id.") var maskZero = false
  @Option(help: "Pretrained vectors (GloVe/word2vec text) for the embedding; needs --vocabulary.") var wordVectors: String?
  @Option(help: "Words of the ids, one per line (line i = id i), for --word-vectors.") var vocabulary: String?
  @Flag(help: "Keep the pretrained embedding fixed.") var freezeEmbedding = false
  @Option(help: "Classes for multiclass. [default: largest class id + 1]") var classes: Int?
  @Option(help: "Passes over the training data.") var epochs: Int = 10
  @Option(help: "Sequences per batch.") var batch: Int = 32
  @OptionGroup(title: "Optimizer") var optimizerOptions: OptimizerOptions<FitDefaults>
  @Option(help: "Fraction of the samples (the last ones) held out for validation.") var validationSplit: Double = 0
  @OptionGroup(title: "Run (the seed draws initialisation, shuffling and dropout)") var runOptions: RunOptions<FitDefaults>
  @Option(help: "A NaN or infinite loss or gradient: stop (save nothing) or skip that update.")
  var onNan: NaNPolicy = .stop
  @Option(help: "Write TensorBoard event files (loss, metrics and their validation values per epoch) into this folder.")
  var tensorboard: String?
  @Option(help: "Fine-tune: start from this fit checkpoint's weights (give its architecture options); ids beyond its vocabulary get fresh embedding rows.")
  var initFrom: String?
  @Option(help: "Where to save the trained model (.safetensors).") var checkpoint: String = "fit.safetensors"
  @Flag(help: "One JSON object per line: each epoch's history, then a summary.") var json = false

  func validate() throws {
    if let projSize, !(modelOptions.cellKind == .lstm && projSize > 0 && projSize < modelOptions.hiddenSize) {
      throw ValidationError(
        "--proj-size \(projSize) needs --cell lstm and 0 < P < --hidden \(modelOptions.hiddenSize) (got --cell \(modelOptions.cellKind.rawValue))")
    }
    if regularizationOptions.embeddingDropout ?? 0 > 0 && embedding == nil {
      throw ValidationError("--embedding-dropout drops token ids' vectors: it needs --embedding")
    }
    try Bounds.positive(epochs, "--epochs")
    try Bounds.positive(batch, "--batch")
    if !(validationSplit >= 0 && validationSplit < 1) {
      throw ValidationError("--validation-split must be in [0, 1), got \(validationSplit)")
    }
    try Bounds.check(embedding, Bounds.embedding, "--embedding")
    if let vocabSize, vocabSize <= 0 { throw ValidationError("--vocab-size must be > 0") }
    if let classes, classes < 2 { throw ValidationError("--classes must be >= 2") }
    if embedding == nil && (vocabSize != nil || maskZero || wordVectors != nil || freezeEmbedding) {
      throw ValidationError("--vocab-size, --mask-zero, --word-vectors and --freeze-embedding need --embedding")
    }
    if (wordVectors == nil) != (vocabulary == nil) { throw ValidationError("--word-vectors and --vocabulary go together") }
    if freezeEmbedding && wordVectors == nil { throw ValidationError("--freeze-embedding needs --word-vectors") }
    if classes != nil && task != .multiclass { throw ValidationError("--classes is for --task multiclass") }
    if maskZero && lengths != nil { throw ValidationError("give --lengths or --mask-zero, not both") }
    _ = try denseUnits()
    if checkpoint.isEmpty { throw ValidationError("--checkpoint must not be empty") }
  }

  func denseUnits() throws -> [Int] {
    guard let dense else { return [] }
    return try dense.split(separator: ",").map {
      guard let n = Int($0.trimmingCharacters(in: .whitespaces)), Bounds.hidden.contains(n) else {
        throw ValidationError("--dense must be positive sizes separated by commas, got '\(dense)'")
      }
      return n
    }
  }

  /// `model` with the weights of `initial`, whose layers must be the same but for a smaller
  /// embedding vocabulary (whose rows are copied; the rest keep their fresh initialisation).
  static func transfer(from initial: Sequential, into model: inout Sequential, path: String) throws {
    func shape(_ layers: [Layer]) -> [Layer] {
      layers.map {
        if case .embedding(_, let d, let mask, _) = $0 { return .embedding(vocabularySize: 0, outputSize: d, maskZero: mask, trainable: true) }
        return $0
      }
    }
    guard shape(initial.layers) == shape(model.layers), initial.inputFeatures == model.inputFeatures else {
      throw CommandError(
        "--init-from \(path): its layers are \(initial.layers.map(Sequential.describe).joined(separator: ", ")); these options describe \(model.layers.map(Sequential.describe).joined(separator: ", "))")
    }
    var stored: [String: Tensor] = [:]
    for (name, tensor) in initial.namedParameters { stored[name] = tensor }
    model.forEachParameter { name, tensor in
      guard let old = stored[name] else { return }
      if old.shape == tensor.shape {
        tensor = old
      } else {  // the embedding of a larger vocabulary: the old rows, then fresh ones
        tensor.scalars.replaceSubrange(0..<old.count, with: old.scalars)
      }
    }
  }

  func run() throws {
    try refuseMultiRankWithoutMPI("fit")
    try ensureWritable(checkpoint)
    let initial = try initFrom.map { try SequentialCheckpoint.load(from: $0).model }
    let xArray = try readArray(x, option: "--x")
    let yArray = try readArray(y, option: "--y")
    let input = try modelInput(xArray, path: x, ids: embedding != nil)
    let N = input.shape[0]
    let T = input.shape[1]
    guard N > 0 && T > 0 else { throw CommandError("--x \(x): no sequences (shape \(xArray.shape))") }
    guard yArray.shape.first == N else {
      throw CommandError("--y \(y): \(yArray.shape.first ?? 0) samples (shape \(yArray.shape)), --x has \(N)")
    }
    let lengthValues = try readLengths(lengths, samples: N)
    // Output units from the targets.
    let perStep = returnSequences ? 1 : 0
    let units: Int
    switch task {
    case .regression, .binary:
      guard yArray.shape.count == 1 + perStep || yArray.shape.count == 2 + perStep else {
        throw CommandError("--y \(y): shape \(yArray.shape); expected \(returnSequences ? "[N, T] or [N, T, K]" : "[N] or [N, K]")")
      }
      units = yArray.shape.count == 2 + perStep ? yArray.shape.last! : 1
      if task == .binary, let bad = yArray.values.first(where: { !($0 >= 0 && $0 <= 1) }) {
        throw CommandError("--y \(y): binary targets must be in [0, 1], found \(bad)")
      }
    case .multiclass:
      if yArray.shape.count == 2 + perStep {
        units = yArray.shape.last!  // one-hot rows
      } else {
        guard yArray.shape.count == 1 + perStep else {
          throw CommandError("--y \(y): shape \(yArray.shape); expected class ids \(returnSequences ? "[N, T]" : "[N]") or one-hot rows")
        }
        guard let top = yArray.values.max(), yArray.values.allSatisfy({ $0 >= 0 && $0 == $0.rounded() }) else {
          throw CommandError("--y \(y): class ids must be whole numbers >= 0")
        }
        units = classes ?? Int(top) + 1
      }
      if units < 2 { throw CommandError("--y \(y): multiclass needs at least 2 classes") }
    }
    if returnSequences && yArray.shape.count >= 2 && yArray.shape[1] != T {
      throw CommandError("--y \(y): \(yArray.shape[1]) steps per sequence, --x has \(T)")
    }
    var layerList: [Layer] = []
    var vocabularyWords: [String]? = nil
    if let embedding {
      let top = Int(input.scalars.max() ?? 0)
      guard input.scalars.allSatisfy({ $0 >= 0 && $0 == $0.rounded() }) else {
        throw CommandError("--x \(x): token ids must be whole numbers >= 0")
      }
      if let vocabulary {
        let data: Data
        do { data = try readFile(vocabulary) } catch { throw CommandError("--vocabulary \(error)") }
        guard let text = String(data: data, encoding: .utf8) else {
          throw CommandError("--vocabulary \(vocabulary): not UTF-8 text")
        }
        vocabularyWords = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        if vocabularyWords!.last == "" { vocabularyWords!.removeLast() }
      }
      var size = vocabSize ?? vocabularyWords?.count ?? top + 1
      if case .embedding(let stored, _, _, _)? = initial?.layers.first { size = max(size, stored) }
      guard top < size else { throw CommandError("--x \(x): id \(top) is outside the vocabulary of \(size)") }
      if let words = vocabularyWords, words.count != size {
        throw CommandError("--vocabulary \(vocabulary!): \(words.count) words, the vocabulary size is \(size)")
      }
      layerList.append(.embedding(size, embedding, maskZero: maskZero, trainable: !freezeEmbedding))
    }
    let layers = modelOptions.layerCount
    for index in 0..<layers {
      let sequences = index < layers - 1 || returnSequences
      let recurrent =
        projSize.map { Layer.projectedLSTM(units: modelOptions.hiddenSize, projection: $0, returnSequences: sequences) }
        ?? Layer.recurrent(kind: modelOptions.cellKind, units: modelOptions.hiddenSize, returnSequences: sequences)
      layerList.append(bidirectional ? .bidirectional(recurrent) : recurrent)
      if modelOptions.dropoutProbability > 0 { layerList.append(.dropout(modelOptions.dropoutProbability)) }
    }
    for units in try denseUnits() { layerList.append(.dense(units, activation: .relu)) }
    layerList.append(.dense(units, activation: task.activation))
    var rng = SplitMix64(seed: runOptions.randomSeed)  // initialisation, missing word vectors, shuffling, dropout
    var model = try Sequential(
      inputFeatures: embedding == nil ? input.shape[2] : nil, layerList, initialization: modelOptions.initialization ?? .pytorch,
      forgetBias: modelOptions.forgetBias, regularization: regularizationOptions.regularization(base: nil), using: &rng)
    if let initial, let initFrom { try Self.transfer(from: initial, into: &model, path: initFrom) }
    if let wordVectors, let words = vocabularyWords, let embedding {
      let vectors: WordVectors
      do {
        vectors = try WordVectors.load(
          path: wordVectors, vocabulary: words, dimension: embedding, keepZero: maskZero ? [0] : [], using: &rng)
      } catch let error as DataFileError {
        throw CommandError("--word-vectors \(error)")
      }
      model.embeddingWeight = vectors.weight
      let line = vectors.summary(path: wordVectors)
      if json { emit(jsonLine(["event": "word_vectors", "found": .int(vectors.found), "missing": .int(vectors.missing.count)]))
      } else { emit(line + "\n") }
    }
    model.compile(
      loss: task.loss, optimizer: optimizerOptions.configuration(), metrics: [task.metric],
      clipNorm: optimizerOptions.clipNorm(), onNaN: onNan)
    let compute = runOptions.compute
    let board = try tensorboard.map { try TensorBoardWriter(directory: $0) }
    let targets = yArray.tensor
    let started = Date()
    let history = try model.fit(
      input, targets, lengths: lengthValues, epochs: epochs, batchSize: batch, validationSplit: validationSplit,
      using: &rng, compute: compute
    ) { event in
      guard case .epoch(let log) = event else { return }
      board?.scalars(
        [("epoch/loss", log.loss)] + log.metrics.sorted { $0.key < $1.key }.map { ("epoch/" + $0.key, $0.value) }
          + (log.validationLoss.map { [("epoch/val_loss", $0)] } ?? [])
          + log.validationMetrics.sorted { $0.key < $1.key }.map { ("epoch/val_" + $0.key, $0.value) },
        step: log.epoch)
      if json {
        var fields: [String: JSONValue] = [
          "event": "epoch", "epoch": .int(log.epoch), "loss": .number(log.loss), "seconds": .number(log.seconds),
        ]
        fields.merge(jsonNumbers(log.metrics)) { $1 }
        if let v = log.validationLoss { fields["val_loss"] = .number(v) }
        fields.merge(jsonNumbers(log.validationMetrics, prefix: "val_")) { $1 }
        emit(jsonLine(fields))
      } else {
        var line = "epoch \(log.epoch)/\(epochs)  loss \(format(log.loss))"
        for (k, v) in log.metrics.sorted(by: { $0.key < $1.key }) { line += "  \(k) \(format(v))" }
        if let v = log.validationLoss { line += "  val_loss \(format(v))" }
        for (k, v) in log.validationMetrics.sorted(by: { $0.key < $1.key }) { line += "  val_\(k) \(format(v))" }
        emit(line + String(format: "  (%.1f s)\n", log.seconds))
      }
    }
    try SequentialCheckpoint.save(model, task: task.rawValue, to: checkpoint)
    let seconds = Date().timeIntervalSince(started)
    if json {
      var fields: [String: JSONValue] = [
        "event": "done", "checkpoint": .string(checkpoint), "samples": .int(N), "steps": .int(T),
        "parameters": .int(model.parameterCount), "seconds": .number(seconds),
      ]
      if let last = history.epochs.last {
        fields["loss"] = .number(last.loss)
        fields.merge(jsonNumbers(last.metrics)) { $1 }
      }
      emit(jsonLine(fields))
    } else {
      emit("saved \(checkpoint) (\(model.parameterCount) parameters, \(String(format: "%.1f", seconds)) s)\n")
    }
  }
}

/// `recurrent predict`: run a model saved by `fit` on arrays.
struct Predict: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Predict with a model saved by `recurrent fit` (or a language model); writes the outputs as a float32 .npy.",
    discussion: """
      Outputs are probabilities for binary (sigmoid) and multiclass (softmax) models, values for
      regression: [N, K], or [N, T, K] for models trained with --return-sequences. With --y, the loss
      and metric on these targets are reported too.
      A language-model checkpoint takes --x token ids [T, B] (time-major) and writes the logits
      [T, B, V]; --initial-h/--initial-c give the starting state [L, B, H] (zeros otherwise) and
      --final-h/--final-c write the final one, as the exported ONNX graph's inputs and outputs.
      """)

  @Option(help: "A model written by `recurrent fit`.") var checkpoint: String
  @Option(help: "Inputs: .npy or .csv, shaped as for fit.") var x: String
  @Option(help: "Real steps of each right-padded sequence: integer array [N].") var lengths: String?
  @Option(help: "Where to write the predictions (.npy, float32).") var out: String
  @Option(help: "Targets, to report the loss and metric as well.") var y: String?
  @Option(help: "Sequences per batch.") var batch: Int = 256
  @Option(help: "Language models: the initial hidden state [L, B, H] (.npy).") var initialH: String?
  @Option(help: "Language models: the initial LSTM cell state [L, B, H] (.npy).") var initialC: String?
  @Option(help: "Language models: where to write the final hidden state (.npy).") var finalH: String?
  @Option(help: "Language models: where to write the final LSTM cell state (.npy).") var finalC: String?
  @OptionGroup var threadOptions: ThreadOptions
  @Flag(help: "A JSON summary on standard output.") var json = false

  func validate() throws {
    try Bounds.positive(batch, "--batch")
    if out.isEmpty { throw ValidationError("--out must not be empty") }
  }

  func run() throws {
    try ensureWritable(out, option: "--out")
    if try checkpointFormat(checkpoint) == CheckpointKind.languageModel.format {
      return try predictLanguageModel()
    }
    if let stateOption = [("--initial-h", initialH), ("--initial-c", initialC), ("--final-h", finalH), ("--final-c", finalC)]
      .first(where: { $0.1 != nil })
    {
      throw ValidationError("\(stateOption.0) is for language-model checkpoints")
    }
    let (model, task) = try SequentialCheckpoint.load(from: checkpoint)
    let xArray = try readArray(x, option: "--x")
    let input = try modelInput(xArray, path: x, ids: model.inputFeatures == nil)
    let lengthValues = try readLengths(lengths, samples: input.shape[0])
    let compute = threadOptions.compute
    let started = Date()
    let predictions: Tensor
    do {
      predictions = try model.predict(input, lengths: lengthValues, batchSize: batch, compute: compute)
    } catch let error as ModelError {
      throw CommandError("--x \(x): \(error)")
    }
    var scores: [String: Double] = [:]
    if let y {
      let targets = try readArray(y, option: "--y").tensor
      do {
        scores = try model.evaluate(input, targets, lengths: lengthValues, batchSize: batch, compute: compute)
      } catch let error as ModelError {
        throw CommandError("--y \(y): \(error)")
      }
    }
    try NumPyArray(predictions).write(path: out)
    let seconds = Date().timeIntervalSince(started)
    if json {
      var fields: [String: JSONValue] = [
        "event": "predict", "samples": .int(input.shape[0]), "output_shape": .ints(predictions.shape), "out": .string(out),
        "task": .string(task ?? ""), "seconds": .number(seconds),
      ]
      fields.merge(jsonNumbers(scores)) { $1 }
      emit(jsonLine(fields))
    } else {
      var line = "wrote \(out): \(predictions.shape) \(task.map { "(\($0))" } ?? "")"
      for (k, v) in scores.sorted(by: { $0.key < $1.key }) { line += "  \(k) \(format(v))" }
      emit(line + "\n")
    }
  }

  /// Logits of a language model for token ids `[T, B]`, from and to explicit states.
  func predictLanguageModel() throws {
    if let option = [("--lengths", lengths), ("--y", y)].first(where: { $0.1 != nil }) {
      throw ValidationError("\(option.0) is for models of recurrent fit; \(checkpoint) is a language model")
    }
    let model = try Checkpoint.load(from: checkpoint).model
    let c = model.configuration
    let ids = try readArray(x, option: "--x")
    guard ids.shape.count == 2, ids.shape[0] > 0, ids.shape[1] > 0 else {
      throw CommandError("--x \(x): shape \(ids.shape); a language model takes token ids [T, B]")
    }
    guard ids.values.allSatisfy({ $0 == $0.rounded() && $0 >= 0 && $0 < Double(c.vocabularySize) }) else {
      throw CommandError("--x \(x): token ids must be whole numbers in 0..<\(c.vocabularySize)")
    }
    let (T, B) = (ids.shape[0], ids.shape[1])
    let stateShape = [c.layers, B, c.hiddenSize]
    func state(_ path: String?, _ option: String) throws -> Tensor? {
      guard let path else { return nil }
      let array = try readArray(path, option: option)
      guard array.shape == stateShape else { throw CommandError("\(option) \(path): shape \(array.shape), expected \(stateShape)") }
      return array.tensor
    }
    if initialC != nil || finalC != nil, !c.cell.hasCellState {
      throw ValidationError("--initial-c and --final-c are for LSTM models; this one is \(c.cell.rawValue)")
    }
    for path in [finalH, finalC].compactMap({ $0 }) { try ensureWritable(path, option: "--final-h/--final-c") }
    var initial: RecurrentState? = nil
    if let h = try state(initialH, "--initial-h") {
      initial = RecurrentState(hidden: h, cell: try state(initialC, "--initial-c") ?? (c.cell.hasCellState ? Tensor(zeros: stateShape) : nil))
    } else if let cell = try state(initialC, "--initial-c") {
      initial = RecurrentState(hidden: Tensor(zeros: stateShape), cell: cell)
    }
    let (logits, final) = model.logits(
      ids: ids.values.map { Int($0) }, sequenceLength: T, batchSize: B, state: initial, compute: threadOptions.compute)
    try NumPyArray(logits.reshaped([T, B, c.vocabularySize])).write(path: out)
    if let finalH { try NumPyArray(final.hidden).write(path: finalH) }
    if let finalC, let cell = final.cell { try NumPyArray(cell).write(path: finalC) }
    emit(json ? jsonLine(["event": "predict", "output_shape": .ints([T, B, c.vocabularySize]), "out": .string(out)]) : "wrote \(out): [\(T), \(B), \(c.vocabularySize)]\n")
  }
}

func format(_ v: Double) -> String { String(format: "%.4f", v) }

/// One JSON object on one line, keys sorted (the one JSON writer, `JSONValue`).
func jsonLine(_ fields: [String: JSONValue]) -> String { JSONValue.sorted(fields).line }

/// Named numbers (metrics) as JSON fields.
func jsonNumbers(_ values: [String: Double], prefix: String = "") -> [String: JSONValue] {
  Dictionary(uniqueKeysWithValues: values.map { (prefix + $0.key, JSONValue.number($0.value)) })
}
