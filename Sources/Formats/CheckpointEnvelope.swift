import Foundation
import TensorCore

/// A kind of checkpoint file: its format name, the version this build writes and the
/// versions it reads. Every kind is listed in `all`, so a reader given another kind's file
/// can say what the file is.
public struct CheckpointKind: Sendable, Equatable {
  /// `recurrent.format` in the metadata.
  public let format: String
  /// `recurrent.format_version` written by this build.
  public let version: Int
  /// Versions this build reads; 0 stands for a file written before the kind had a version.
  public let readable: ClosedRange<Int>
  /// What such a file is, for messages: "a language model (use train, eval or generate)".
  public let role: String

  /// Language models from `recurrent train` (and `Tools/export_pytorch.py`): version 2, reads 1 and 2.
  public static let languageModel = CheckpointKind(
    format: "recurrent-language-model", version: 2, readable: 1...2,
    role: "a language model (use train, eval or generate)")
  /// `Sequential` models from `recurrent fit`: version 1.
  public static let sequential = CheckpointKind(
    format: "recurrent-sequential", version: 1, readable: 1...1, role: "a model from `recurrent fit` (use predict)")
  /// Hidden Markov models from `recurrent hmm train`: version 1, and files from before versions (0).
  public static let hiddenMarkovModel = CheckpointKind(
    format: "recurrent-hmm", version: 1, readable: 0...1, role: "a hidden Markov model (use hmm eval)")
  /// Every kind, to name the kind of a file that is not the one expected.
  public static let all: [CheckpointKind] = [.languageModel, .sequential, .hiddenMarkovModel]
}

/// The one envelope under every checkpoint kind: a safetensors file whose metadata holds the
/// format name, the format version and the configuration as JSON. Reading checks the format
/// and version, decodes the configuration, bounds the described model by the data in the file
/// before anything is allocated, hands out tensors by name and refuses any tensor nobody
/// asked for. Every error is a `CheckpointError`; `read(path:kind:_:)` names the file in it.
public struct CheckpointEnvelope {
  /// Metadata key of the format name.
  public static let formatKey = "recurrent.format"
  /// Metadata key of the format version.
  public static let versionKey = "recurrent.format_version"
  /// Metadata key of the configuration (JSON).
  public static let configKey = "recurrent.config"
  /// Slack of the size budget, in floats: a model described a little larger than the data
  /// gets the precise error of the tensor it concerns, not the budget's.
  public static let budgetSlack = 1 << 22

  /// The kind the file was checked against.
  public let kind: CheckpointKind
  /// The file's version (0 for a file from before its kind had one).
  public let version: Int
  /// The file's whole metadata.
  public let metadata: [String: String]
  private let tensors: [String: Tensor]
  private let order: [String]
  private var used = Set<String>()

  /// Checks the format and version of a decoded file.
  public init(_ file: SafeTensors, kind: CheckpointKind) throws {
    let format = file.metadata[Self.formatKey]
    guard format == kind.format else {
      if let other = CheckpointKind.all.first(where: { $0.format == format }) {
        throw CheckpointError.badMetadata(
          key: Self.formatKey, reason: "this is \(other.role), not \(kind.role.prefix { $0 != "(" }.trimmingCharacters(in: .whitespaces))")
      }
      throw CheckpointError.badMetadata(key: Self.formatKey, reason: "missing or not \(kind.format)")
    }
    let versionText = file.metadata[Self.versionKey]
    let version = versionText.map { Int($0) } ?? 0
    guard let version, kind.readable.contains(version), versionText != nil || kind.readable.contains(0) else {
      throw CheckpointError.badMetadata(
        key: Self.versionKey,
        reason: "\(versionText ?? "missing"), this build reads \(kind.readable.lowerBound == 0 ? 1 : kind.readable.lowerBound)...\(kind.readable.upperBound)")
    }
    self.kind = kind
    self.version = version
    metadata = file.metadata
    var byName: [String: Tensor] = [:]
    for (name, tensor) in file.tensors { byName[name] = tensor }
    tensors = byName
    order = file.tensors.map(\.name)
  }

  /// Reads the file at `path` and runs `decode` on its envelope; any `CheckpointError` about
  /// the contents names the file (`.inFile`), and tensors `decode` did not take are refused.
  public static func read<T>(
    path: String, kind: CheckpointKind, _ decode: (inout CheckpointEnvelope) throws -> T
  ) throws -> T {
    do {
      return try decoding(SafeTensors.read(path: path), kind: kind, decode)
    } catch let error as CheckpointError {
      if case .unreadable = error { throw error }  // names the file already
      throw CheckpointError.inFile(path: path, error)
    }
  }

  /// `read` for a file already decoded.
  public static func decoding<T>(
    _ file: SafeTensors, kind: CheckpointKind, _ decode: (inout CheckpointEnvelope) throws -> T
  ) throws -> T {
    var envelope = try CheckpointEnvelope(file, kind: kind)
    let value = try decode(&envelope)
    try envelope.finish()
    return value
  }

  /// A metadata string that must be present.
  public func string(_ key: String) throws -> String {
    guard let value = metadata[key] else { throw CheckpointError.badMetadata(key: key, reason: "missing") }
    return value
  }

  /// A JSON value from the metadata, decoded as `T`.
  public func decode<T: Decodable>(_ type: T.Type, key: String = CheckpointEnvelope.configKey) throws -> T {
    let text = try string(key)
    do {
      return try JSONDecoder().decode(T.self, from: Data(text.utf8))
    } catch {
      throw CheckpointError.badMetadata(key: key, reason: "not the expected JSON")
    }
  }

  /// Floats held by all tensors of the file.
  public var availableFloats: Int { tensors.values.reduce(0) { $0 + $1.count } }

  /// Refuses a configuration whose model needs more floats than the file holds (nil: the
  /// count overflowed or a size is not positive), before anything is allocated.
  public func checkBudget(needed: Int?, key: String = CheckpointEnvelope.configKey) throws {
    let available = availableFloats
    guard let needed, needed <= available + Self.budgetSlack else {
      throw CheckpointError.badMetadata(
        key: key,
        reason: needed.map { "the model it describes needs \($0) floats, the file holds \(available)" }
          ?? "the model it describes is not a valid size")
    }
  }

  /// Whether the file has a tensor of that name (taken or not).
  public func contains(_ name: String) -> Bool { tensors[name] != nil }

  /// Takes an optional tensor; a shape other than `shape` (when given) is an error.
  public mutating func take(_ name: String, shape: [Int]? = nil) throws -> Tensor? {
    guard let tensor = tensors[name] else { return nil }
    if let shape, tensor.shape != shape {
      throw CheckpointError.shapeMismatch(tensor: name, expected: shape, found: tensor.shape)
    }
    used.insert(name)
    return tensor
  }

  /// Takes a tensor that must be present.
  public mutating func require(_ name: String, shape: [Int]? = nil) throws -> Tensor {
    guard let tensor = try take(name, shape: shape) else { throw CheckpointError.missingTensor(name) }
    return tensor
  }

  /// Sets every parameter a model visits (`forEachParameter`) from the tensor of the same
  /// name, checking shapes.
  public mutating func assign(_ visit: ((String, inout Tensor) throws -> Void) throws -> Void) throws {
    var envelope = self  // the closure cannot capture `self` while this method mutates it
    try visit { name, tensor in tensor = try envelope.require(name, shape: tensor.shape) }
    self = envelope
  }

  /// Names of the tensors with this prefix, in file order.
  public func names(withPrefix prefix: String) -> [String] { order.filter { $0.hasPrefix(prefix) } }

  /// Refuses tensors nobody took.
  public func finish() throws {
    if let extra = order.first(where: { !used.contains($0) }) { throw CheckpointError.unexpectedTensor(extra) }
  }

  /// The safetensors content of a checkpoint of `kind`: its tensors, the format name and
  /// version, the configuration as JSON under `recurrent.config`, and further metadata.
  public static func file(
    kind: CheckpointKind, config: some Encodable, metadata: [String: String] = [:],
    tensors: [(name: String, tensor: Tensor)]
  ) throws -> SafeTensors {
    var meta = metadata
    meta["format"] = "pt"  // safetensors.torch reads the tensors as PyTorch's
    meta[formatKey] = kind.format
    meta[versionKey] = String(kind.version)
    do {
      meta[configKey] = try encodeJSON(config)
    } catch {
      throw CheckpointError.badMetadata(key: configKey, reason: "not representable as JSON (a NaN or infinite value)")
    }
    return SafeTensors(tensors: tensors, metadata: meta)
  }

  /// Writes a checkpoint file atomically; failures are `CheckpointError.writeFailed`.
  public static func write(_ file: SafeTensors, to path: String) throws(CheckpointError) {
    do {
      try writeAtomically(file.encoded(), to: path)
    } catch {
      throw .writeFailed(path: error.path, reason: error.reason)
    }
  }
}
