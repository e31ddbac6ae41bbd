import Foundation
import Recurrent
import TextCorpus

/// The model configuration as stored in `recurrent.config` (snake_case JSON).
public struct StoredConfiguration: Codable, Equatable, Sendable {
  public var cell: CellKind
  public var layers: Int
  public var hidden_size: Int
  public var embedding_size: Int
  public var vocab_size: Int
  public var tied: Bool
  public var dropout: Float
  public var tokenizer: TokenizerKind
}

/// Where a training run stands, for an exact `--resume`.
public struct TrainingProgress: Codable, Equatable, Sendable {
  /// Optimizer steps taken in the whole run.
  public var step: Int
  /// Completed epochs and the next window of the current one.
  public var epoch: Int
  public var window: Int
  public var tokensSeen: Int
  public var elapsedSeconds: Double
  /// State of the dropout random generator.
  public var rngState: UInt64
  public var optimizer: OptimizerConfiguration
  public var schedule: LearningRateSchedule
  /// The options that must not change across a resume (shapes, batch, seed, ...), as JSON.
  public var fingerprint: String
  public var lastTrainLoss: Float?
  /// The options of the run, so `--resume` can continue without repeating them.
  public var options: TrainingOptions?
}

/// Everything a checkpoint file holds.
public struct Checkpoint: Sendable {
  public var model: LanguageModel
  public var vocabulary: Vocabulary
  public var progress: TrainingProgress?
  public var optimizer: Optimizer?
  /// The hidden state carried into the next training window.
  public var carriedState: RecurrentState?

  public static let formatName = "recurrent-language-model"
  public static let formatVersion = "1"

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
      vocab_size: c.vocabularySize, tied: c.tied, dropout: c.dropout, tokenizer: vocabulary.kind)
  }

  /// The safetensors content: the model's PyTorch `state_dict` (`encoder.weight`,
  /// `rnn.weight_ih_l0`, ..., `decoder.weight`, `decoder.bias`), then, for resumable
  /// training, optimizer moments under `training.optimizer.{first,second,mean}.NAME` and the
  /// carried state under `training.state.{hidden,cell}`.
  public func safeTensors() -> SafeTensors {
    var tensors = model.namedParameters
    if model.configuration.tied {
      let index = tensors.firstIndex { $0.name == "decoder.bias" } ?? tensors.count
      tensors.insert(("decoder.weight", model.encoder.weight), at: index)
    }
    let names = model.namedParameters.map(\.name)
    if let optimizer {
      for (slot, values) in [("first", optimizer.first), ("second", optimizer.second), ("mean", optimizer.mean)] {
        for (name, t) in zip(names, values) { tensors.append(("training.optimizer.\(slot).\(name)", t)) }
      }
    }
    if let carriedState {
      tensors.append(("training.state.hidden", carriedState.hidden))
      if let cell = carriedState.cell { tensors.append(("training.state.cell", cell)) }
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    func json<T: Encodable>(_ v: T) -> String { String(decoding: (try? encoder.encode(v)) ?? Data(), as: UTF8.self) }
    var metadata = [
      "format": "pt",
      "recurrent.format": Self.formatName,
      "recurrent.format_version": Self.formatVersion,
      "recurrent.config": json(storedConfiguration),
      "recurrent.vocabulary": json(vocabulary.tokens),
    ]
    if let progress {
      metadata["recurrent.training"] = json(progress)
      metadata["recurrent.optimizer_steps"] = String(optimizer?.stepCount ?? 0)
    }
    return SafeTensors(tensors: tensors, metadata: metadata)
  }

  /// Writes the checkpoint atomically.
  public func save(to path: String) throws {
    try writeAtomically(safeTensors().encoded(), to: path)
  }

  /// Reads and validates a checkpoint file.
  public static func load(from path: String) throws -> Checkpoint {
    try Checkpoint(SafeTensors.read(path: path))
  }

  public init(_ file: SafeTensors) throws {
    let meta = file.metadata
    guard meta["recurrent.format"] == Self.formatName else {
      if meta["recurrent.format"] == "recurrent-sequential" {
        throw CheckpointError.badMetadata(
          key: "recurrent.format", reason: "this is a model from `recurrent fit` (use predict), not a language model")
      }
      throw CheckpointError.badMetadata(key: "recurrent.format", reason: "missing or not \(Self.formatName)")
    }
    guard meta["recurrent.format_version"] == Self.formatVersion else {
      throw CheckpointError.badMetadata(
        key: "recurrent.format_version", reason: "\(meta["recurrent.format_version"] ?? "missing"), this build reads \(Self.formatVersion)")
    }
    let decoder = JSONDecoder()
    guard let configText = meta["recurrent.config"],
      let config = try? decoder.decode(StoredConfiguration.self, from: Data(configText.utf8))
    else { throw CheckpointError.badMetadata(key: "recurrent.config", reason: "missing or not the expected JSON") }
    guard config.layers > 0, config.layers <= 64, config.hidden_size > 0, config.hidden_size <= 1 << 16,
      config.embedding_size > 0, config.embedding_size <= 1 << 16, config.vocab_size > 0,
      config.vocab_size <= 1 << 24, config.dropout >= 0, config.dropout < 1,
      !config.tied || config.hidden_size == config.embedding_size
    else { throw CheckpointError.badMetadata(key: "recurrent.config", reason: "sizes out of range") }
    guard let vocabText = meta["recurrent.vocabulary"],
      let tokens = try? decoder.decode([String].self, from: Data(vocabText.utf8))
    else { throw CheckpointError.badMetadata(key: "recurrent.vocabulary", reason: "missing or not a JSON array of strings") }
    guard tokens.count == config.vocab_size else {
      throw CheckpointError.badMetadata(
        key: "recurrent.vocabulary", reason: "\(tokens.count) tokens, config says \(config.vocab_size)")
    }
    // Bound the model by the data actually in the file before allocating it, so a hostile
    // configuration cannot ask for terabytes (with slack, so that an ordinary mismatch is
    // reported below as the tensor and shape it concerns).
    let gates = config.cell.gateCount * config.hidden_size
    var needed = config.vocab_size * config.embedding_size + config.vocab_size
    if !config.tied { needed += config.vocab_size * config.hidden_size }
    for layer in 0..<config.layers {
      let width = layer == 0 ? config.embedding_size : config.hidden_size
      needed += gates * (width + config.hidden_size) + 2 * gates
    }
    let available = file.tensors.reduce(0) { $0 + $1.tensor.count }
    guard needed <= available + (1 << 22) else {
      throw CheckpointError.badMetadata(
        key: "recurrent.config", reason: "the model it describes needs \(needed) floats, the file holds \(available)")
    }
    var rng = SplitMix64(seed: 0)
    var model = LanguageModel(
      LanguageModelConfiguration(
        cell: config.cell, layers: config.layers, hiddenSize: config.hidden_size,
        embeddingSize: config.embedding_size, vocabularySize: config.vocab_size, dropout: config.dropout,
        tied: config.tied),
      using: &rng)
    var byName: [String: Tensor] = [:]
    for (name, t) in file.tensors { byName[name] = t }
    var expected = try file.assign(to: &model)
    if config.tied {
      expected.insert("decoder.weight")
      model.decoder.weight = model.encoder.weight
    }
    let names = model.namedParameters.map(\.name)
    let shapes = model.namedParameters.map(\.tensor.shape)
    var progress: TrainingProgress? = nil
    var optimizer: Optimizer? = nil
    var carried: RecurrentState? = nil
    if let progressText = meta["recurrent.training"] {
      guard let p = try? decoder.decode(TrainingProgress.self, from: Data(progressText.utf8)) else {
        throw CheckpointError.badMetadata(key: "recurrent.training", reason: "not the expected JSON")
      }
      progress = p
      var slots: [String: [Tensor]] = [:]
      for slot in ["first", "second", "mean"] {
        let values = names.compactMap { byName["training.optimizer.\(slot).\($0)"] }
        for n in names where byName["training.optimizer.\(slot).\(n)"] != nil { expected.insert("training.optimizer.\(slot).\(n)") }
        guard values.isEmpty || values.count == names.count else {
          throw CheckpointError.missingTensor("training.optimizer.\(slot).*")
        }
        for (v, s) in zip(values, shapes) where v.shape != s {
          throw CheckpointError.badMetadata(key: "training.optimizer.\(slot)", reason: "shape \(v.shape), expected \(s)")
        }
        slots[slot] = values
      }
      let steps = Int(meta["recurrent.optimizer_steps"] ?? "") ?? 0
      optimizer = Optimizer(p.optimizer, stepCount: steps, first: slots["first"]!, second: slots["second"]!, mean: slots["mean"]!)
      if let h = byName["training.state.hidden"] {
        expected.insert("training.state.hidden")
        let c = byName["training.state.cell"]
        if c != nil { expected.insert("training.state.cell") }
        let stateShape = [config.layers, h.shape.count == 3 ? h.shape[1] : -1, config.hidden_size]
        guard h.shape == stateShape, c == nil || c!.shape == stateShape, (c != nil) == config.cell.hasCellState else {
          throw CheckpointError.badMetadata(key: "training.state", reason: "carried state of shape \(h.shape)")
        }
        carried = RecurrentState(hidden: h, cell: c)
      }
    }
    for name in byName.keys where !expected.contains(name) { throw CheckpointError.unexpectedTensor(name) }
    self.init(
      model: model, vocabulary: Vocabulary(kind: config.tokenizer, tokens: tokens), progress: progress,
      optimizer: optimizer, carriedState: carried)
  }
}
