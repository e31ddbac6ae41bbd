import Formats
import Foundation
import Testing
import TestSupport

import TensorCore

/// A safetensors file from a header written by hand and `dataBytes` zero bytes of data.
private func handmade(_ header: String, dataBytes: Int, declaredLength: UInt64? = nil) -> Data {
  let json = Array(header.utf8)
  let length = declaredLength ?? UInt64(json.count)
  var bytes = (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) }
  bytes += json
  bytes += [UInt8](repeating: 0, count: dataBytes)
  return Data(bytes)
}

@Test func hostileSafetensorsHeadersGiveTheirTypedError() throws {
  let one = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
  #expect(try SafeTensors(decoding: handmade(one, dataBytes: 8)).tensors.count == 1)
  let cases: [(String, Data, (CheckpointError) -> Bool)] = [
    ("header longer than the file", handmade(one, dataBytes: 8, declaredLength: 10_000), {
      if case .headerTooLarge = $0 { return true } else { return false } }),
    ("header over 100 MB", handmade(one, dataBytes: 8, declaredLength: 200_000_000), {
      if case .headerTooLarge = $0 { return true } else { return false } }),
    ("malformed JSON", handmade(#"{"a":{"dtype":"F32","#, dataBytes: 8), {
      if case .malformedHeader = $0 { return true } else { return false } }),
    ("not an object", handmade("[1,2]", dataBytes: 8), { if case .malformedHeader = $0 { return true } else { return false } }),
    ("unknown dtype", handmade(#"{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}"#, dataBytes: 8), {
      $0 == .unsupportedDType(tensor: "a", dtype: "F16") }),
    ("offsets out of range", handmade(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, dataBytes: 4), {
      $0 == .badOffsets(tensor: "a") }),
    ("overlapping", handmade(
      #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
      dataBytes: 12), { $0 == .badOffsets(tensor: "b") }),
    ("misaligned", handmade(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}}"#, dataBytes: 12), {
      $0 == .badOffsets(tensor: "a") }),
    ("shape product does not match the bytes", handmade(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, dataBytes: 8), {
      $0 == .badOffsets(tensor: "a") }),
    ("shape product overflows", handmade(
      #"{"a":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,8]}}"#, dataBytes: 8), {
      $0 == .badOffsets(tensor: "a") }),
    ("negative size", handmade(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, dataBytes: 8), {
      if case .malformedHeader = $0 { return true } else { return false } }),
    ("metadata not an object", handmade(#"{"__metadata__":[1]}"#, dataBytes: 0), {
      if case .badMetadata = $0 { return true } else { return false } }),
    ("metadata value not a string", handmade(#"{"__metadata__":{"recurrent.config":7}}"#, dataBytes: 0), {
      if case .badMetadata = $0 { return true } else { return false } }),
  ]
  for (label, data, matches) in cases {
    do {
      _ = try SafeTensors(decoding: data)
      Issue.record("\(label): accepted")
    } catch let error as CheckpointError {
      #expect(matches(error), "\(label): \(error)")
    }
  }
}
