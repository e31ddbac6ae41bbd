import Formats
import Foundation
import Recurrent

/// A `Sequential` model in the one checkpoint envelope (kind `CheckpointKind.sequential`):
/// tensors `layers.{i}.{PyTorch name}`, and as the configuration the layer list, input width,
/// loss and metrics. Written by `recurrent fit`, read by `recurrent predict`.
public enum SequentialCheckpoint {
  /// The envelope kind of `Sequential` checkpoints.
  public static let kind = CheckpointKind.sequential

  struct Stored: Codable {
    var layers: [Layer]
    var input_features: Int?
    var loss: LossFunction?
    var metrics: [Metric]
    var task: String?
    /// Absent when every regularizer is off (and in files from before them).
    var regularization: Regularization?
  }

  /// Writes the model atomically; `task` is a free label kept in the configuration.
  public static func save(_ model: Sequential, task: String? = nil, to path: String) throws {
    let stored = Stored(
      layers: model.layers, input_features: model.inputFeatures, loss: model.compiled?.loss,
      metrics: model.compiled?.metrics ?? [], task: task,
      regularization: model.regularization == Regularization() ? nil : model.regularization)
    let file = try CheckpointEnvelope.file(kind: kind, config: stored, tensors: model.namedParameters)
    try CheckpointEnvelope.write(file, to: path)
  }

  /// Reads a model written by `save`, compiled with its stored loss and metrics; errors about
  /// the contents name the file.
  /// - Returns: the model and the stored task label.
  public static func load(from path: String) throws -> (model: Sequential, task: String?) {
    try CheckpointEnvelope.read(path: path, kind: kind, decode)
  }

  /// A model from a decoded safetensors file (see `load`).
  public static func decode(_ file: SafeTensors) throws -> (model: Sequential, task: String?) {
    try CheckpointEnvelope.decoding(file, kind: kind, decode)
  }

  static func decode(_ envelope: inout CheckpointEnvelope) throws -> (model: Sequential, task: String?) {
    let stored = try envelope.decode(Stored.self)
    try envelope.checkBudget(needed: Sequential.parameterCount(inputFeatures: stored.input_features, layers: stored.layers))
    var model: Sequential
    do {
      var rng = SplitMix64(seed: 0)  // every parameter is then read from the file
      model = try Sequential(
        inputFeatures: stored.input_features, stored.layers, regularization: stored.regularization ?? Regularization(),
        using: &rng)
    } catch let error as ModelError {
      throw CheckpointError.badMetadata(key: CheckpointEnvelope.configKey, reason: error.description)
    }
    try envelope.assign { try model.forEachParameter($0) }
    if let loss = stored.loss { model.compile(loss: loss, metrics: stored.metrics) }
    return (model, stored.task)
  }
}
