import Foundation

/// A TensorBoard event file: TFRecord framing (8-byte little-endian length, masked CRC-32C of
/// the length, the data, masked CRC-32C of the data) around `Event` protobufs. The first
/// record is `Event{wall_time, file_version: "brain.Event:2"}`; each scalar is
/// `Event{wall_time, step, summary: Summary{value: [Value{tag, simple_value}]}}`.
///
/// The few protobuf fields are encoded by hand (field numbers from TensorFlow's event.proto and
/// summary.proto) rather than generated with swift-protobuf: five fields do not justify a
/// generated module and its build time, and the core stays free of package dependencies.
public final class TensorBoardWriter {
  /// The event file written, `DIR/events.out.tfevents.<seconds>.recurrent`.
  public let path: String
  private let handle: FileHandle

  /// Creates `directory` if needed and starts a new event file in it.
  public init(directory: String, wallTime: Double = Date().timeIntervalSince1970) throws(FileError) {
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    } catch {
      throw .writeFailed(path: directory, reason: "cannot create the folder")
    }
    path = directory + "/events.out.tfevents.\(Int(wallTime)).recurrent"
    guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path)
    else { throw .writeFailed(path: path, reason: "cannot create the file") }
    self.handle = handle
    write(Self.event(wallTime: wallTime, step: nil, fileVersion: "brain.Event:2", scalars: []))
  }

  deinit { try? handle.close() }

  /// Writes scalars `(tag, value)` at `step`.
  public func scalars(_ values: [(String, Double)], step: Int, wallTime: Double = Date().timeIntervalSince1970) {
    let finite = values.filter { $0.1.isFinite }
    guard !finite.isEmpty else { return }
    write(Self.event(wallTime: wallTime, step: step, fileVersion: nil, scalars: finite))
  }

  private func write(_ data: [UInt8]) {
    handle.write(Data(Self.record(data)))
  }

  // MARK: - Encoding

  /// One TFRecord: length, masked CRC of the length, data, masked CRC of the data.
  public static func record(_ data: [UInt8]) -> [UInt8] {
    let length = littleEndian(UInt64(data.count))
    return length + littleEndian(masked(crc32c(length))) + data + littleEndian(masked(crc32c(data)))
  }

  /// An `Event` message.
  public static func event(wallTime: Double, step: Int?, fileVersion: String?, scalars: [(String, Double)]) -> [UInt8] {
    var out: [UInt8] = [0x09] + littleEndian(wallTime.bitPattern)  // 1: wall_time (double)
    if let step { out += [0x10] + varint(UInt64(bitPattern: Int64(step))) }  // 2: step (int64)
    if let fileVersion { out += field(3, Array(fileVersion.utf8)) }  // 3: file_version
    if !scalars.isEmpty {
      var summary: [UInt8] = []
      for (tag, value) in scalars {  // Summary 1: value; Value 1: tag, 2: simple_value (float)
        let v = field(1, Array(tag.utf8)) + [0x15] + littleEndian(Float(value).bitPattern)
        summary += field(1, v)
      }
      out += field(5, summary)  // 5: summary
    }
    return out
  }

  /// A length-delimited field.
  static func field(_ number: UInt64, _ bytes: [UInt8]) -> [UInt8] {
    varint(number << 3 | 2) + varint(UInt64(bytes.count)) + bytes
  }

  static func varint(_ value: UInt64) -> [UInt8] {
    var v = value
    var out: [UInt8] = []
    repeat {
      let byte = UInt8(v & 0x7F)
      v >>= 7
      out.append(v == 0 ? byte : byte | 0x80)
    } while v != 0
    return out
  }

  static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
  }

  /// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
  public static func crc32c<S: Sequence>(_ bytes: S) -> UInt32 where S.Element == UInt8 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
    return crc ^ 0xFFFF_FFFF
  }

  /// TFRecord's masking of a CRC: rotated right by 15 bits plus a constant.
  public static func masked(_ crc: UInt32) -> UInt32 { ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8 }

  static let crcTable: [UInt32] = (0..<256).map { i in
    var c = UInt32(i)
    for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
    return c
  }
}
