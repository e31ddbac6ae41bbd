import Formats
import Foundation
import Recurrent
import TextCorpus

/// The model configuration as stored in `recurrent.config` (snake_case JSON).
public struct StoredConfiguration: Codable, Equatable, Sendable {
  /// The recurrent cell.
  public var cell: CellKind
  /// Stacked layers.
  public var layers: Int
  /// Units per layer.
  public var hidden_size: Int
  /// Embedding width.
  public var embedding_size: Int
  /// Tokens in the vocabulary.
  public var vocab_size: Int
  /// Whether the decoder's weight is the embedding.
  public var tied: Bool
  /// Dropout probability of training.
  public var dropout: Float
  /// How text becomes tokens (BPE merges are stored beside, under `recurrent.merges`).
  public var tokenizer: TokenizerKind
  /// How text is read for this model; absent in files from before encodings (UTF-8).
  public var encoding: TextEncoding?
  /// The regularizers of training; absent when all are off (and in files from before them).
  /// Zoneout also acts at inference, so a model's outputs depend on it.
  public var regularization: Regularization?
  /// A projected LSTM's state width (PyTorch's `proj_size`); absent when there is none.
  public var proj_size: Int?

  /// Width of the layers' output h: `proj_size` when projected, else `hidden_size`.
  var stateSize: Int { proj_size ?? hidden_size }
}

/// Where a training run stands, for an exact `--resume`.
public struct TrainingProgress: Codable, Equatable, Sendable {
  /// Optimizer steps taken in the whole run.
  public var step: Int
  /// Completed epochs and the next window of the current one.
  public var epoch: Int
  /// The next window within the current epoch.
  public var window: Int
  /// Tokens trained on in the whole run.
  public var tokensSeen: Int
  /// Wall-clock seconds of the whole run.
  public var elapsedSeconds: Double
  /// State of the dropout random generator.
  public var rngState: UInt64
  /// The optimizer's hyper-parameters.
  public var optimizer: OptimizerConfiguration
  /// The learning-rate schedule.
  public var schedule: LearningRateSchedule
  /// The options that must not change across a resume (shapes, batch, seed, ...), as JSON.
  public var fingerprint: String
  /// The last step's training loss, if it was finite.
  public var lastTrainLoss: Float?
  /// The options of the run, so `--resume` can continue without repeating them.
  public var options: TrainingOptions?
}

/// Everything a language-model checkpoint holds, in the one checkpoint envelope (kind
/// `CheckpointKind.languageModel`).
public struct Checkpoint: Sendable {
  /// The model's weights.
  public var model: LanguageModel
  /// The vocabulary, with its tokenizer and encoding.
  public var vocabulary: Vocabulary
  /// Where training stands; nil for a file without training state (an export).
  public var progress: TrainingProgress?
  /// The optimizer's state; nil without training state.
  public var optimizer: Optimizer?
  /// The hidden state carried into the next training window.
  public var carriedState: RecurrentState?

  /// The envelope kind of language-model checkpoints.
  public static let kind = CheckpointKind.languageModel

  /// A checkpoint from its parts.
  public init(
    model: LanguageModel, vocabulary: Vocabulary, progress: TrainingProgress? = nil,
    optimizer: Optimizer? = nil, carriedState: RecurrentState? = nil
  ) {
    self.model = model
    self.vocabulary = vocabulary
    self.progress = progress
    self.optimizer = optimizer
    self.carriedState = carriedState
  }

  var storedConfiguration: StoredConfiguration {
    let c = model.configuration
    return StoredConfiguration(
      cell: c.cell, layers: c.layers, hidden_size: c.hiddenSize, embedding_size: c.embeddingSize,
      vocab_size: c.vocabularySize, tied: c.tied, dropout: c.dropout, tokenizer: vocabulary.kind,
      encoding: vocabulary.encoding == .utf8 ? nil : vocabulary.encoding,
      regularization: c.regularization == Regularization() ? nil : c.regularization,
      proj_size: c.projectionSize > 0 ? c.projectionSize : nil)
  }

  /// The safetensors content: the model's PyTorch `state_dict` (`encoder.weight`,
  /// `rnn.weight_ih_l0`, ..., `decoder.weight`, `decoder.bias`), then, for resumable
  /// training, the optimizer's moments under `training.optimizer.{slot}.NAME` (the slots its
  /// configuration keeps) and the carried state under `training.state.{hidden,cell}`.
  public func safeTensors() throws -> SafeTensors {
    var tensors = model.namedParameters
    if model.configuration.tied {
      let index = tensors.firstIndex { $0.name == "decoder.bias" } ?? tensors.count
      tensors.insert(("decoder.weight", model.encoder.weight), at: index)
    }
    let names = model.namedParameters.map(\.name)
    if let optimizer {
      for slot in OptimizerSlot.allCases {
        for (name, t) in zip(names, optimizer.slots[slot] ?? []) { tensors.append(("training.optimizer.\(slot.rawValue).\(name)", t)) }
      }
    }
    if let carriedState {
      tensors.append(("training.state.hidden", carriedState.hidden))
      if let cell = carriedState.cell { tensors.append(("training.state.cell", cell)) }
    }
    var metadata = try vocabulary.metadata()
    if let progress {
      do {
        metadata["recurrent.training"] = try encodeJSON(progress)
      } catch {
        throw CheckpointError.badMetadata(key: "recurrent.training", reason: "not representable as JSON")
      }
      metadata["recurrent.optimizer_steps"] = String(optimizer?.stepCount ?? 0)
    }
    return try CheckpointEnvelope.file(kind: Self.kind, config: storedConfiguration, metadata: metadata, tensors: tensors)
  }

  /// Writes the checkpoint atomically.
  public func save(to path: String) throws {
    try CheckpointEnvelope.write(safeTensors(), to: path)
  }

  /// Reads and validates a checkpoint file; errors about its contents name it.
  public static func load(from path: String) throws -> Checkpoint {
    try CheckpointEnvelope.read(path: path, kind: kind) { try Checkpoint(&$0) }
  }

  /// A checkpoint from a decoded file.
  public init(_ file: SafeTensors) throws {
    self = try CheckpointEnvelope.decoding(file, kind: Self.kind) { try Checkpoint(&$0) }
  }

  init(_ envelope: inout CheckpointEnvelope) throws {
    let config = try envelope.decode(StoredConfiguration.self)
    guard config.layers > 0, config.layers <= 64, config.hidden_size > 0, config.hidden_size <= 1 << 16,
      config.embedding_size > 0, config.embedding_size <= 1 << 16, config.vocab_size > 0,
      config.vocab_size <= 1 << 24, config.dropout >= 0, config.dropout < 1,
      !config.tied || config.stateSize == config.embedding_size,
      (config.proj_size.map({ config.cell == .lstm && $0 > 0 && $0 < config.hidden_size }) ?? true)
    else { throw CheckpointError.badMetadata(key: "recurrent.config", reason: "sizes out of range") }
    if let problem = config.regularization?.problem {
      throw CheckpointError.badMetadata(key: "recurrent.config", reason: problem)
    }
    let vocabulary = try Vocabulary.stored(in: envelope, kind: config.tokenizer, encoding: config.encoding ?? .utf8)
    guard vocabulary.count == config.vocab_size else {
      throw CheckpointError.badMetadata(
        key: Vocabulary.tokensKey, reason: "\(vocabulary.count) tokens, config says \(config.vocab_size)")
    }
    let gates = config.cell.gateCount * config.hidden_size
    let state = config.stateSize
    var needed = config.vocab_size * config.embedding_size + config.vocab_size
    if !config.tied { needed += config.vocab_size * state }
    for layer in 0..<config.layers {
      let width = layer == 0 ? config.embedding_size : state
      let recurrent = config.cell.hasRecurrentWeights ? gates * (state + 1) : 0
      needed += gates * (width + 1) + recurrent + (config.cell.cellParameters?.blocks ?? 0) * config.hidden_size
        + (config.proj_size ?? 0) * config.hidden_size
    }
    try envelope.checkBudget(needed: needed)
    var rng = SplitMix64(seed: 0)
    var configuration = LanguageModelConfiguration(
      cell: config.cell, layers: config.layers, hiddenSize: config.hidden_size,
      embeddingSize: config.embedding_size, vocabularySize: config.vocab_size, dropout: config.dropout,
      tied: config.tied)
    configuration.regularization = config.regularization ?? Regularization()
    configuration.projectionSize = config.proj_size ?? 0
    var model = LanguageModel(configuration, using: &rng)
    try envelope.assign { try model.forEachParameter($0) }
    if config.tied {
      // The decoder's weight is the embedding: stored for PyTorch, equal to encoder.weight.
      let stored = try envelope.require("decoder.weight", shape: model.encoder.weight.shape)
      guard stored == model.encoder.weight else {
        throw CheckpointError.badMetadata(key: "recurrent.config", reason: "tied, but decoder.weight differs from encoder.weight")
      }
    }
    var progress: TrainingProgress? = nil
    var optimizer: Optimizer? = nil
    var carried: RecurrentState? = nil
    if envelope.metadata["recurrent.training"] != nil {
      let p = try envelope.decode(TrainingProgress.self, key: "recurrent.training")
      progress = p
      optimizer = try Self.optimizerState(&envelope, progress: p, model: model)
      carried = try Self.carriedState(&envelope, progress: p, config: config)
    }
    self.init(
      model: model, vocabulary: vocabulary,
      progress: progress,
      optimizer: optimizer, carriedState: carried)
  }

  /// The optimizer's moments, checked as a whole against its configuration and the model:
  /// every slot it keeps present for every parameter in the parameter's shape, no other slot.
  static func optimizerState(
    _ envelope: inout CheckpointEnvelope, progress: TrainingProgress, model: LanguageModel
  ) throws -> Optimizer {
    guard let stepText = envelope.metadata["recurrent.optimizer_steps"], let steps = Int(stepText), steps >= 0 else {
      throw CheckpointError.badMetadata(key: "recurrent.optimizer_steps", reason: "missing or not a whole number >= 0")
    }
    let parameters = model.namedParameters.map { (name: $0.name, shape: $0.tensor.shape) }
    var slots: [OptimizerSlot: [Tensor]] = [:]
    for slot in OptimizerSlot.allCases {
      let prefix = "training.optimizer.\(slot.rawValue)."
      let present = envelope.names(withPrefix: prefix)
      guard !present.isEmpty else { continue }
      var values: [Tensor] = []
      for p in parameters {
        guard let t = try envelope.take(prefix + p.name) else {
          throw CheckpointError.badTrainingState("the \(slot.rawValue) moment lacks \(p.name)")
        }
        values.append(t)
      }
      // Version 1 wrote every slot, zeros where the configuration keeps none: drop those.
      if envelope.version == 1 && !progress.optimizer.slotNames.contains(slot)
        && values.allSatisfy({ $0.scalars.allSatisfy { $0 == 0 } })
      {
        continue
      }
      slots[slot] = values
    }
    do {
      return try Optimizer(progress.optimizer, stepCount: steps, slots: slots, parameters: parameters)
    } catch {
      throw CheckpointError.badTrainingState(error.description)
    }
  }

  /// The state carried into the next window: present exactly when a window of the epoch has
  /// been trained, `[layers, batch, hidden]`, with a cell state for LSTM only.
  static func carriedState(
    _ envelope: inout CheckpointEnvelope, progress: TrainingProgress, config: StoredConfiguration
  ) throws -> RecurrentState? {
    let rows = progress.options?.batchSize
    let shape = [config.layers, rows ?? -1, config.stateSize]
    let hasHidden = envelope.contains("training.state.hidden")
    guard hasHidden == (progress.window > 0) else {
      throw CheckpointError.badTrainingState(
        hasHidden
          ? "a carried state is stored, but no window of the epoch was trained"
          : "the carried state is missing (window \(progress.window) of epoch \(progress.epoch))")
    }
    guard hasHidden else {
      if envelope.contains("training.state.cell") { throw CheckpointError.unexpectedTensor("training.state.cell") }
      return nil
    }
    let hidden = try envelope.require("training.state.hidden")
    guard hidden.shape.count == 3, rows == nil || hidden.shape == shape,
      hidden.shape[0] == config.layers, hidden.shape[2] == config.stateSize
    else {
      throw CheckpointError.badTrainingState("carried hidden state of shape \(hidden.shape), expected \(shape)")
    }
    let cellShape = [hidden.shape[0], hidden.shape[1], config.hidden_size]  // c stays H wide when h is projected
    let cell = try envelope.take("training.state.cell", shape: config.cell.hasCellState ? cellShape : nil)
    if config.cell.hasCellState && cell == nil { throw CheckpointError.badTrainingState("the carried cell state is missing") }
    if !config.cell.hasCellState && cell != nil { throw CheckpointError.unexpectedTensor("training.state.cell") }
    return RecurrentState(hidden: hidden, cell: cell)
  }
}
