import Foundation
import Recurrent

/// A `Sequential` model in a safetensors file: tensors `layers.{i}.{PyTorch name}`, and in the
/// metadata the layer list, input width, loss and metrics as JSON (`recurrent.format` =
/// `recurrent-sequential`). Written by `recurrent fit`, read by `recurrent predict`.
public enum SequentialCheckpoint {
  public static let formatName = "recurrent-sequential"
  public static let formatVersion = "1"

  struct Stored: Codable {
    var layers: [Layer]
    var input_features: Int?
    var loss: LossFunction?
    var metrics: [Metric]
    var task: String?
  }

  /// Writes the model atomically; `task` is a free label kept in the metadata.
  public static func save(_ model: Sequential, task: String? = nil, to path: String) throws {
    let stored = Stored(
      layers: model.layers, input_features: model.inputFeatures, loss: model.compiled?.loss,
      metrics: model.compiled?.metrics ?? [], task: task)
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let config = String(decoding: try encoder.encode(stored), as: UTF8.self)
    let file = SafeTensors(
      tensors: model.namedParameters,
      metadata: [
        "format": "pt", "recurrent.format": formatName, "recurrent.format_version": formatVersion,
        "recurrent.config": config,
      ])
    try writeAtomically(file.encoded(), to: path)
  }

  /// Reads a model written by `save`, compiled with its stored loss and metrics.
  /// - Returns: the model and the stored task label.
  public static func load(from path: String) throws -> (model: Sequential, task: String?) {
    try decode(SafeTensors.read(path: path))
  }

  /// A model from a decoded safetensors file (see `load`).
  public static func decode(_ file: SafeTensors) throws -> (model: Sequential, task: String?) {
    let meta = file.metadata
    guard meta["recurrent.format"] == formatName else {
      if meta["recurrent.format"] == Checkpoint.formatName {
        throw CheckpointError.badMetadata(
          key: "recurrent.format", reason: "this is a language model (use eval/generate), not a fit model")
      }
      throw CheckpointError.badMetadata(key: "recurrent.format", reason: "missing or not \(formatName)")
    }
    guard meta["recurrent.format_version"] == formatVersion else {
      throw CheckpointError.badMetadata(
        key: "recurrent.format_version", reason: "\(meta["recurrent.format_version"] ?? "missing"), this build reads \(formatVersion)")
    }
    guard let text = meta["recurrent.config"],
      let stored = try? JSONDecoder().decode(Stored.self, from: Data(text.utf8))
    else { throw CheckpointError.badMetadata(key: "recurrent.config", reason: "missing or not the expected JSON") }
    let available = file.tensors.reduce(0) { $0 + $1.tensor.count }
    guard let needed = Sequential.parameterCount(inputFeatures: stored.input_features, layers: stored.layers),
      needed <= available + (1 << 22)
    else {
      throw CheckpointError.badMetadata(key: "recurrent.config", reason: "the layers it lists do not fit the data in the file")
    }
    var model: Sequential
    do {
      model = try Sequential(inputFeatures: stored.input_features, stored.layers)
    } catch let error as ModelError {
      throw CheckpointError.badMetadata(key: "recurrent.config", reason: error.description)
    }
    let used = try file.assign(to: &model)
    for (name, _) in file.tensors where !used.contains(name) { throw CheckpointError.unexpectedTensor(name) }
    if let loss = stored.loss { model.compile(loss: loss, metrics: stored.metrics) }
    return (model, stored.task)
  }
}
