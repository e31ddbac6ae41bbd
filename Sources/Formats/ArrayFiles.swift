import Foundation
import TensorCore

/// A data file (.npy, CSV, word vectors) that cannot be used, with the path and what is wrong.
public enum DataFileError: Error, Equatable, CustomStringConvertible {
  /// The file cannot be read at all.
  case file(FileError)
  /// The contents are not what the format allows.
  case malformed(path: String, reason: String)

  /// A malformed file.
  public init(_ path: String, _ reason: String) { self = .malformed(path: path, reason: reason) }

  /// The file the error is about.
  public var path: String {
    switch self {
    case .file(let error): error.path
    case .malformed(let path, _): path
    }
  }

  /// What is wrong, without the path.
  public var reason: String {
    switch self {
    case .file(let error): error.reason
    case .malformed(_, let reason): reason
    }
  }

  /// `path: reason`, one line.
  public var description: String { "\(path): \(reason)" }
}

/// The bytes of a regular file (`readFile`), with its errors as `DataFileError`s.
func readFileBytes(_ path: String) throws(DataFileError) -> Data {
  do {
    return try readFile(path)
  } catch {
    throw .file(error)
  }
}

/// Element types of `.npy` files that `NumPyArray` reads and writes.
public enum NumPyType: String, Sendable, CaseIterable {
  case float32 = "f4", float64 = "f8", int32 = "i4", int64 = "i8"

  var size: Int { Int(rawValue.dropFirst())! }
  var isInteger: Bool { self == .int32 || self == .int64 }
}

/// A NumPy array as stored in a `.npy` file (format versions 1-3, C order): the shape, the
/// element type it was stored with, and its values as `Double` (exact for float32, float64,
/// int32, and int64 below 2^53).
public struct NumPyArray: Equatable, Sendable {
  /// Sizes of the dimensions, outermost first.
  public var shape: [Int]
  /// The element type stored in the file.
  public var type: NumPyType
  /// The elements in row-major (C) order, widened to `Double`.
  public var values: [Double]

  /// An array from its parts; `values.count` must be the product of `shape`.
  public init(shape: [Int], type: NumPyType, values: [Double]) {
    precondition(shape.reduce(1, *) == values.count, "NumPyArray: \(values.count) values for shape \(shape)")
    self.shape = shape
    self.type = type
    self.values = values
  }

  /// A float32 array of `tensor`.
  public init(_ tensor: Tensor, type: NumPyType = .float32) {
    self.init(shape: tensor.shape, type: type, values: tensor.scalars.map(Double.init))
  }

  /// The values as a Float tensor.
  public var tensor: Tensor { Tensor(shape: shape, scalars: values.map { Float($0) }) }

  /// Reads a `.npy` file.
  /// - Throws: `DataFileError` naming the path and the problem (not a .npy file, an unsupported
  ///   dtype, Fortran order, a size that does not match the data, ...).
  public static func read(path: String) throws -> NumPyArray {
    try decode(readFileBytes(path), path: path)
  }

  /// An array from the bytes of a `.npy` file.
  public init(decoding data: Data) throws {
    self = try Self.decode(data, path: "<data>")
  }

  static func decode(_ data: Data, path: String) throws -> NumPyArray {
    let bytes = [UInt8](data)
    let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
    guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
      throw DataFileError(path, "not a NumPy .npy file (no \\x93NUMPY magic)")
    }
    let major = bytes[6]
    let headerLength: Int
    let headerStart: Int
    switch major {
    case 1:
      headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
      headerStart = 10
    case 2, 3:
      guard bytes.count >= 12 else { throw DataFileError(path, "truncated .npy header") }
      headerLength = (0..<4).reduce(0) { $0 | Int(bytes[8 + $1]) << (8 * $1) }
      headerStart = 12
    default:
      throw DataFileError(path, ".npy format version \(major) is not supported (1, 2 or 3)")
    }
    guard headerLength <= bytes.count - headerStart else {
      throw DataFileError(path, "truncated .npy header (\(headerLength) bytes announced)")
    }
    guard let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8) else {
      throw DataFileError(path, ".npy header is not text")
    }
    let descr = try field("descr", in: header, path: path)
    let fortran = try field("fortran_order", in: header, path: path)
    let shapeText = try field("shape", in: header, path: path)
    guard fortran == "False" else {
      throw DataFileError(path, "Fortran-order arrays are not supported; save np.ascontiguousarray(a)")
    }
    let code = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\""))
    guard code.count == 3, let type = NumPyType(rawValue: String(code.dropFirst())) else {
      throw DataFileError(path, "dtype \(code) is not supported (float32, float64, int32, int64)")
    }
    let bigEndian = code.first == ">"
    guard "<>=|".contains(code.first!) else { throw DataFileError(path, "dtype \(code) is not understood") }
    guard shapeText.hasPrefix("("), shapeText.hasSuffix(")") else {
      throw DataFileError(path, "shape \(shapeText) is not a tuple")
    }
    var shape: [Int] = []
    for part in shapeText.dropFirst().dropLast().split(separator: ",") {
      let trimmed = part.trimmingCharacters(in: .whitespaces)
      if trimmed.isEmpty { continue }
      guard let n = Int(trimmed), n >= 0 else { throw DataFileError(path, "shape \(shapeText) has a bad size") }
      shape.append(n)
    }
    var count = 1
    for n in shape {
      let (product, overflow) = count.multipliedReportingOverflow(by: n)
      guard !overflow, product <= (1 << 40) else { throw DataFileError(path, "shape \(shapeText) is too large") }
      count = product
    }
    let start = headerStart + headerLength
    let size = type.size
    guard bytes.count - start == count * size else {
      throw DataFileError(
        path, "shape \(shapeText) of \(code) needs \(count * size) data bytes, the file has \(bytes.count - start)")
    }
    var values = [Double](repeating: 0, count: count)
    bytes.withUnsafeBufferPointer { raw in
      let base = raw.baseAddress! + start
      for i in 0..<count {
        var word: UInt64 = 0
        for j in 0..<size {
          let byte = base[i * size + (bigEndian ? size - 1 - j : j)]
          word |= UInt64(byte) << (8 * UInt64(j))
        }
        switch type {
        case .float32: values[i] = Double(Float(bitPattern: UInt32(truncatingIfNeeded: word)))
        case .float64: values[i] = Double(bitPattern: word)
        case .int32: values[i] = Double(Int32(bitPattern: UInt32(truncatingIfNeeded: word)))
        case .int64: values[i] = Double(Int64(bitPattern: word))
        }
      }
    }
    return NumPyArray(shape: shape, type: type, values: values)
  }

  /// The text after `'key':` up to the next top-level comma or brace.
  private static func field(_ key: String, in header: String, path: String) throws -> String {
    guard let keyRange = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else {
      throw DataFileError(path, ".npy header has no '\(key)'")
    }
    var rest = header[keyRange.upperBound...].drop { $0 == " " }
    guard rest.first == ":" else { throw DataFileError(path, ".npy header is malformed at '\(key)'") }
    rest = rest.dropFirst().drop { $0 == " " }
    var depth = 0
    var value = ""
    for c in rest {
      if c == "(" { depth += 1 }
      if c == ")" { depth -= 1 }
      if depth == 0 && (c == "," || c == "}") { break }
      value.append(c)
      if depth < 0 { break }
    }
    return value.trimmingCharacters(in: .whitespaces)
  }

  /// The `.npy` (version 1.0) bytes: little-endian, C order.
  public func encoded() -> Data {
    let shapeText = shape.isEmpty ? "()" : shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '<\(type.rawValue)', 'fortran_order': False, 'shape': \(shapeText), }"
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var data = Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0])
    let length = header.utf8.count
    data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
    data.append(contentsOf: Array(header.utf8))
    var body = [UInt8]()
    body.reserveCapacity(values.count * type.size)
    for v in values {
      let word: UInt64
      switch type {
      case .float32: word = UInt64(Float(v).bitPattern)
      case .float64: word = v.bitPattern
      case .int32: word = UInt64(UInt32(bitPattern: Int32(clamping: Int64(v.rounded()))))
      case .int64: word = UInt64(bitPattern: Int64(v.rounded()))
      }
      for j in 0..<type.size { body.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(j)))) }
    }
    data.append(contentsOf: body)
    return data
  }

  /// Writes the array atomically (a temporary file renamed into place).
  public func write(path: String) throws {
    try writeAtomically(encoded(), to: path)
  }
}

/// Numbers in comma-separated text, one row per line: simple time series.
public enum CSVFile {
  /// Reads a table of numbers as `[rows, columns]`. A first line that is not numeric is taken as
  /// a header and returned; blank lines are skipped; every row must have the same number of
  /// columns.
  public static func read(path: String) throws -> (header: [String]?, values: Tensor) {
    let data = try readFileBytes(path)
    guard let text = String(data: data, encoding: .utf8), !data.contains(0) else {
      throw DataFileError(path, "is not UTF-8 text")
    }
    var header: [String]? = nil
    var rows: [[Float]] = []
    var width: Int? = nil
    for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
      let line = rawLine.trimmingCharacters(in: CharacterSet(charactersIn: "\r \t"))
      if line.isEmpty { continue }
      let cells = line.split(separator: ",", omittingEmptySubsequences: false).map {
        $0.trimmingCharacters(in: .whitespaces)
      }
      let numbers = cells.map { Float($0) }
      if numbers.contains(where: { $0 == nil }) {
        if rows.isEmpty && header == nil {
          header = cells
          width = cells.count
          continue
        }
        let bad = cells[numbers.firstIndex { $0 == nil }!]
        throw DataFileError(path, "line \(index + 1): '\(bad)' is not a number")
      }
      if let width, cells.count != width {
        throw DataFileError(path, "line \(index + 1) has \(cells.count) columns, expected \(width)")
      }
      width = cells.count
      rows.append(numbers.map { $0! })
    }
    guard !rows.isEmpty else { throw DataFileError(path, "has no rows of numbers") }
    return (header, Tensor(shape: [rows.count, width!], scalars: rows.flatMap { $0 }))
  }

  /// Writes `[rows, columns]` (or a vector as one column) as CSV, atomically.
  public static func write(_ values: Tensor, header: [String]? = nil, path: String) throws {
    let columns = values.rank >= 2 ? values.count / values.shape[0] : 1
    var text = header.map { $0.joined(separator: ",") + "\n" } ?? ""
    let rows = columns == 0 ? 0 : values.count / columns
    for r in 0..<rows {
      text += (0..<columns).map { "\(values.scalars[r * columns + $0])" }.joined(separator: ",") + "\n"
    }
    try writeAtomically(Data(text.utf8), to: path)
  }
}
