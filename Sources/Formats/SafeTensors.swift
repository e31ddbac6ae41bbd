import Foundation
import TensorCore

/// A checkpoint file that cannot be used, with what is wrong.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
  case unreadable(path: String, reason: String)
  case truncated(String)
  case headerTooLarge(Int)
  case malformedHeader(String)
  case unsupportedDType(tensor: String, dtype: String)
  case badOffsets(tensor: String)
  case shapeMismatch(tensor: String, expected: [Int], found: [Int])
  case missingTensor(String)
  case unexpectedTensor(String)
  case badMetadata(key: String, reason: String)
  /// Resume state that is incomplete or does not fit the model or the optimizer.
  case badTrainingState(String)
  case writeFailed(path: String, reason: String)
  /// An error about the contents of the file at `path`.
  indirect case inFile(path: String, CheckpointError)

  /// One line naming the file or tensor and what is wrong.
  public var description: String {
    switch self {
    case .unreadable(let path, let reason): "cannot read checkpoint \(path): \(reason)"
    case .truncated(let what): "checkpoint is truncated: \(what)"
    case .headerTooLarge(let n): "checkpoint header of \(n) bytes is larger than the file or the 100 MB limit"
    case .malformedHeader(let why): "checkpoint header is malformed: \(why)"
    case .unsupportedDType(let t, let d): "checkpoint tensor \(t) has dtype \(d); only F32 is supported"
    case .badOffsets(let t): "checkpoint tensor \(t) has data offsets outside the file, overlapping or not matching its shape"
    case .shapeMismatch(let t, let e, let f): "checkpoint tensor \(t) has shape \(f), the model needs \(e)"
    case .missingTensor(let t): "checkpoint lacks tensor \(t)"
    case .unexpectedTensor(let t): "checkpoint has unexpected tensor \(t)"
    case .badMetadata(let k, let why): "checkpoint metadata \(k) is invalid: \(why)"
    case .badTrainingState(let why): "checkpoint training state is invalid: \(why)"
    case .writeFailed(let path, let reason): "cannot write \(path): \(reason)"
    case .inFile(let path, let error): "\(path): \(error)"
    }
  }
}

/// The safetensors format: an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets}, "__metadata__": {string: string}}`, then raw
/// little-endian data. Only F32 tensors are read and written.
public struct SafeTensors: Equatable, Sendable {
  /// The tensors in file order (data offsets follow this order when writing).
  public var tensors: [(name: String, tensor: Tensor)]
  /// The `__metadata__` strings.
  public var metadata: [String: String]

  /// A file from its tensors and metadata.
  public init(tensors: [(name: String, tensor: Tensor)], metadata: [String: String]) {
    self.tensors = tensors
    self.metadata = metadata
  }

  /// Equal tensors in the same order and equal metadata.
  public static func == (a: SafeTensors, b: SafeTensors) -> Bool {
    a.metadata == b.metadata && a.tensors.map(\.name) == b.tensors.map(\.name)
      && a.tensors.map(\.tensor) == b.tensors.map(\.tensor)
  }

  /// The first tensor named `name`, if any.
  public func tensor(named name: String) -> Tensor? { tensors.first { $0.name == name }?.tensor }

  static let maximumHeader = 100_000_000

  /// The file's bytes.
  public func encoded() -> Data {
    var header: [String: JSONValue] = [:]
    var offset = 0
    for (name, tensor) in tensors {
      let bytes = tensor.count * 4
      header[name] = ["dtype": "F32", "shape": .ints(tensor.shape), "data_offsets": [.int(offset), .int(offset + bytes)]]
      offset += bytes
    }
    if !metadata.isEmpty { header["__metadata__"] = .sorted(metadata.mapValues { .string($0) }) }
    var json = Data(JSONValue.sorted(header).text.utf8)
    // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
    while json.count % 8 != 0 { json.append(0x20) }
    var out = Data(capacity: 8 + json.count + offset)
    var length = UInt64(json.count).littleEndian
    withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
    out.append(json)
    for (_, tensor) in tensors {
      tensor.scalars.withUnsafeBufferPointer { buffer in
        let littleEndian = buffer.map { $0.bitPattern.littleEndian }
        littleEndian.withUnsafeBytes { out.append(contentsOf: $0) }
      }
    }
    return out
  }

  /// Parses and bounds-checks a file's bytes.
  public init(decoding data: Data) throws {
    let bytes = [UInt8](data)
    guard bytes.count >= 8 else { throw CheckpointError.truncated("\(bytes.count) bytes, no header length") }
    var length: UInt64 = 0
    for i in (0..<8).reversed() { length = length << 8 | UInt64(bytes[i]) }
    guard length <= UInt64(Self.maximumHeader), length <= UInt64(bytes.count - 8) else {
      throw CheckpointError.headerTooLarge(length > UInt64(Int.max) ? Int.max : Int(length))
    }
    let headerEnd = 8 + Int(length)
    let parsed: Any
    do {
      parsed = try JSONSerialization.jsonObject(with: Data(bytes[8..<headerEnd]))
    } catch {
      throw CheckpointError.malformedHeader("not JSON")
    }
    guard let header = parsed as? [String: Any] else { throw CheckpointError.malformedHeader("not a JSON object") }
    let dataSize = bytes.count - headerEnd
    var metadata: [String: String] = [:]
    var entries: [(name: String, shape: [Int], begin: Int, end: Int)] = []
    for (name, value) in header {
      if name == "__metadata__" {
        guard let map = value as? [String: Any] else {
          throw CheckpointError.badMetadata(key: "__metadata__", reason: "not an object")
        }
        for (k, v) in map {
          guard let s = v as? String else { throw CheckpointError.badMetadata(key: k, reason: "not a string") }
          metadata[k] = s
        }
        continue
      }
      guard let info = value as? [String: Any] else { throw CheckpointError.malformedHeader("entry \(name) is not an object") }
      guard let dtype = info["dtype"] as? String else { throw CheckpointError.malformedHeader("entry \(name) has no dtype") }
      guard dtype == "F32" else { throw CheckpointError.unsupportedDType(tensor: name, dtype: dtype) }
      guard let shapeValues = info["shape"] as? [Any], let offsetValues = info["data_offsets"] as? [Any],
        offsetValues.count == 2
      else { throw CheckpointError.malformedHeader("entry \(name) lacks shape or data_offsets") }
      let shape = try shapeValues.map { v -> Int in
        guard let n = Self.integer(v), n >= 0, n <= Int(Int32.max) else {
          throw CheckpointError.malformedHeader("entry \(name) has an invalid shape")
        }
        return n
      }
      guard let begin = Self.integer(offsetValues[0]), let end = Self.integer(offsetValues[1]) else {
        throw CheckpointError.badOffsets(tensor: name)
      }
      var count = 1
      for d in shape {
        let (product, overflow) = count.multipliedReportingOverflow(by: d)
        guard !overflow, product <= dataSize / 4 + 1 else { throw CheckpointError.badOffsets(tensor: name) }
        count = product
      }
      guard begin >= 0, begin % 4 == 0, end >= begin, end <= dataSize, end - begin == count * 4 else {
        throw CheckpointError.badOffsets(tensor: name)
      }
      entries.append((name, shape, begin, end))
    }
    // Tensors may not overlap.
    let sorted = entries.sorted { $0.begin < $1.begin }
    for (a, b) in zip(sorted, sorted.dropFirst()) where b.begin < a.end {
      throw CheckpointError.badOffsets(tensor: b.name)
    }
    var tensors: [(name: String, tensor: Tensor)] = []
    for e in sorted {
      let count = (e.end - e.begin) / 4
      var scalars = [Float](repeating: 0, count: count)
      bytes.withUnsafeBufferPointer { raw in
        for i in 0..<count {
          let p = headerEnd + e.begin + 4 * i
          let bits = UInt32(raw[p]) | UInt32(raw[p + 1]) << 8 | UInt32(raw[p + 2]) << 16 | UInt32(raw[p + 3]) << 24
          scalars[i] = Float(bitPattern: bits)
        }
      }
      tensors.append((e.name, Tensor(shape: e.shape, scalars: scalars)))
    }
    self.tensors = tensors
    self.metadata = metadata
  }

  private static func integer(_ v: Any) -> Int? {
    if let n = v as? Int { return n }
    if let d = v as? Double, d == d.rounded(), abs(d) < 1e15 { return Int(d) }
    return nil
  }
}

extension SafeTensors {
  /// Reads and decodes a safetensors file; missing files, folders and unreadable files are
  /// `CheckpointError.unreadable`.
  public static func read(path: String) throws -> SafeTensors {
    let data: Data
    do {
      data = try readFile(path, allowEmpty: true)
    } catch {
      throw CheckpointError.unreadable(path: path, reason: error.reason)
    }
    return try SafeTensors(decoding: data)
  }
}
