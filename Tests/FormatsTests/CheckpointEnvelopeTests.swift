import Foundation
import Testing
import TestSupport

import Formats
import TensorCore

// The one checkpoint envelope: format and version checked, the configuration decoded, the size
// budget applied before anything is allocated, unclaimed tensors refused, and the file named in
// every error about its contents.

private struct Config: Codable, Equatable { var units: Int }

private func file(kind: CheckpointKind = .sequential, units: Int = 2) throws -> SafeTensors {
  try CheckpointEnvelope.file(
    kind: kind, config: Config(units: units), metadata: ["extra": "kept"],
    tensors: [("w", Tensor(zeros: [units, 3]))])
}

@Test func theEnvelopeChecksFormatVersionAndConfiguration() throws {
  let good = try file()
  #expect(good.metadata[CheckpointEnvelope.formatKey] == "recurrent-sequential")
  #expect(good.metadata[CheckpointEnvelope.versionKey] == "1")
  #expect(good.metadata["format"] == "pt")
  let (config, w) = try CheckpointEnvelope.decoding(good, kind: .sequential) { envelope in
    (try envelope.decode(Config.self), try envelope.require("w", shape: [2, 3]))
  }
  #expect(config == Config(units: 2) && w.shape == [2, 3])
  // Another kind's file says what it is.
  #expect(throws: CheckpointError.badMetadata(
    key: "recurrent.format", reason: "this is a model from `recurrent fit` (use predict), not a language model")) {
    try CheckpointEnvelope.decoding(good, kind: .languageModel) { _ in () }
  }
  // A version this build does not read, and a missing one where the kind always had one.
  var newer = good
  newer.metadata[CheckpointEnvelope.versionKey] = "9"
  #expect(throws: CheckpointError.badMetadata(key: "recurrent.format_version", reason: "9, this build reads 1...1")) {
    try CheckpointEnvelope.decoding(newer, kind: .sequential) { _ in () }
  }
  var unversioned = good
  unversioned.metadata[CheckpointEnvelope.versionKey] = nil
  #expect(throws: CheckpointError.self) { try CheckpointEnvelope.decoding(unversioned, kind: .sequential) { _ in () } }
  // A configuration that is not the expected JSON.
  var garbled = good
  garbled.metadata[CheckpointEnvelope.configKey] = "{\"units\": \"two\"}"
  #expect(throws: CheckpointError.badMetadata(key: "recurrent.config", reason: "not the expected JSON")) {
    try CheckpointEnvelope.decoding(garbled, kind: .sequential) { try $0.decode(Config.self) }
  }
}

@Test func unclaimedTensorsAndOversizedModelsAreRefused() throws {
  let good = try file()
  #expect(throws: CheckpointError.unexpectedTensor("w")) {
    try CheckpointEnvelope.decoding(good, kind: .sequential) { _ in () }
  }
  #expect(throws: CheckpointError.shapeMismatch(tensor: "w", expected: [3, 3], found: [2, 3])) {
    try CheckpointEnvelope.decoding(good, kind: .sequential) { _ = try $0.require("w", shape: [3, 3]) }
  }
  #expect(throws: CheckpointError.missingTensor("v")) {
    try CheckpointEnvelope.decoding(good, kind: .sequential) { _ = try $0.require("v") }
  }
  // The budget: a configuration describing far more floats than the file holds.
  #expect(throws: CheckpointError.self) {
    try CheckpointEnvelope.decoding(good, kind: .sequential) { envelope in
      try envelope.checkBudget(needed: 6 + CheckpointEnvelope.budgetSlack + 1)
    }
  }
  #expect(throws: CheckpointError.self) {
    try CheckpointEnvelope.decoding(good, kind: .sequential) { try $0.checkBudget(needed: nil) }
  }
}

@Test func errorsAboutAFilesContentsNameTheFile() throws {
  let folder = temporaryFolder("envelope")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let path = folder + "/m.safetensors"
  try CheckpointEnvelope.write(try file(), to: path)
  #expect(throws: CheckpointError.inFile(path: path, .unexpectedTensor("w"))) {
    try CheckpointEnvelope.read(path: path, kind: .sequential) { _ in () }
  }
  #expect(try CheckpointEnvelope.read(path: path, kind: .sequential) { try $0.require("w").count } == 6)
  try Data("not a checkpoint".utf8).write(to: URL(fileURLWithPath: path))
  do {
    try CheckpointEnvelope.read(path: path, kind: .sequential) { _ in () }
    Issue.record("a text file was read as a checkpoint")
  } catch let error as CheckpointError {
    #expect(error.description.hasPrefix(path + ": "), "\(error)")
  }
  #expect(throws: CheckpointError.unreadable(path: folder + "/none", reason: "no such file")) {
    try CheckpointEnvelope.read(path: folder + "/none", kind: .sequential) { _ in () }
  }
  #expect(throws: CheckpointError.writeFailed(path: folder, reason: "not a regular file")) {
    try CheckpointEnvelope.write(try file(), to: folder)
  }
}
