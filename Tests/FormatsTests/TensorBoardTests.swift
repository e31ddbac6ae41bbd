import Foundation
import Testing
import TestSupport

import Formats

// TensorBoard event files: CRC-32C and its TFRecord masking against known values, protobuf
// varints, and a written file read back record by record with every CRC checked.
// (Tools/check_tensorboard.py reads files with TensorBoard's own reader.)

@Test func crcAndVarintsMatchTheirStandards() {
  #expect(TensorBoardWriter.crc32c(Array("123456789".utf8)) == 0xE306_9283)  // the CRC-32C check value
  #expect(TensorBoardWriter.crc32c([UInt8]()) == 0)
  #expect(TensorBoardWriter.masked(0) == 0xA282_EAD8)
  #expect(TensorBoardWriter.masked(0xE306_9283) == 3_347_755_237)  // TFRecord's formula, computed in Python
  // A record of "abc": length 3, masked CRC of the length bytes, the data, masked CRC of the data.
  let record = TensorBoardWriter.record(Array("abc".utf8))
  #expect(record.count == 8 + 4 + 3 + 4)
  #expect(Array(record[0..<8]) == [3, 0, 0, 0, 0, 0, 0, 0])
  #expect(Array(record[12..<15]) == Array("abc".utf8))
  let crc = UInt32(record[15]) | UInt32(record[16]) << 8 | UInt32(record[17]) << 16 | UInt32(record[18]) << 24
  #expect(crc == TensorBoardWriter.masked(TensorBoardWriter.crc32c(Array("abc".utf8))))
}

@Test func aWrittenEventFileReadsBackRecordByRecord() throws {
  let folder = temporaryFolder("tensorboard")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let writer = try TensorBoardWriter(directory: folder + "/run", wallTime: 1_700_000_000)
  writer.scalars([("train/loss", 1.5), ("skipped", .nan)], step: 10, wallTime: 1_700_000_001)
  writer.scalars([("train/loss", 1.25)], step: 20, wallTime: 1_700_000_002)
  let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: writer.path)))
  var records: [[UInt8]] = []
  var i = 0
  func u32(_ at: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * $1) } }
  while i < bytes.count {
    let length = Int((0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[i + $1]) << (8 * $1) })
    #expect(u32(i + 8) == TensorBoardWriter.masked(TensorBoardWriter.crc32c(bytes[i..<(i + 8)])))
    let data = Array(bytes[(i + 12)..<(i + 12 + length)])
    #expect(u32(i + 12 + length) == TensorBoardWriter.masked(TensorBoardWriter.crc32c(data)))
    records.append(data)
    i += 16 + length
  }
  #expect(records.count == 3)
  // The first event: wall_time then file_version "brain.Event:2".
  #expect(records[0].first == 0x09 && records[0].suffix(13) == Array("brain.Event:2".utf8)[...])
  // A scalar event: step 10 as a varint after wall_time, the tag, simple_value 1.5 as a float;
  // the NaN value is left out.
  #expect(Array(records[1][9..<11]) == [0x10, 10])
  let text = String(decoding: records[1], as: UTF8.self)
  #expect(text.contains("train/loss") && !text.contains("skipped"))
  let value = Array(withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian) { Array($0) })
  #expect(records[1].suffix(5) == ([0x15] + value)[...])
}
