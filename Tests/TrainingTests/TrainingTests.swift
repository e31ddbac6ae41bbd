import Formats
import Foundation
import Testing
import TestSupport

import Recurrent
import TextCorpus
import Training

let sampleText = String(repeating: "to be or not to be, that is the question.\n", count: 40)

func tinyOptions(dropout: Float = 0.2) -> TrainingOptions {
  var o = TrainingOptions()
  o.cell = .lstm
  o.layers = 2
  o.hiddenSize = 16
  o.embeddingSize = 8
  o.dropout = dropout
  o.batchSize = 4
  o.sequenceLength = 8
  o.threads = 1
  o.seed = 5
  o.evalEvery = 0
  o.optimizer = OptimizerConfiguration(kind: .adam, learningRate: 1e-2)
  o.schedule = .cosine(period: 10, minimum: 1e-3)
  return o
}

func tinySession(_ options: TrainingOptions = tinyOptions()) throws -> TrainingSession {
  let vocabulary = Vocabulary.characters(of: [sampleText])
  let (train, valid) = splitForValidation(sampleText, kind: .char)
  return try TrainingSession(
    options: options, vocabulary: vocabulary, trainTokens: try vocabulary.encode(train),
    validTokens: try vocabulary.encode(valid))
}

@Test func carriedStateMakesConsecutiveWindowsOneStream() {
  var rng = SplitMix64(seed: 3)
  let model = LanguageModel(
    LanguageModelConfiguration(cell: .gru, layers: 2, hiddenSize: 8, embeddingSize: 4, vocabularySize: 7), using: &rng)
  let (T, B) = (6, 3)
  let ids = (0..<(2 * T * B)).map { ($0 * 5 + 1) % 7 }
  let (whole, wholeState, _) = model.forward(ids: ids, sequenceLength: 2 * T, batchSize: B, training: false, using: &rng)
  let (first, state, _) = model.forward(ids: Array(ids[..<(T * B)]), sequenceLength: T, batchSize: B, training: false, using: &rng)
  let (second, finalState, _) = model.forward(
    ids: Array(ids[(T * B)...]), sequenceLength: T, batchSize: B, state: state, training: false, using: &rng)
  expectClose(first.scalars + second.scalars, whole.scalars, rtol: 1e-6, atol: 1e-6, "two windows vs one")
  expectClose(finalState.hidden.scalars, wholeState.hidden.scalars, rtol: 1e-6, atol: 1e-6, "final state")
}

@Test func checkpointRoundTripIsBitExact() throws {
  var session = try tinySession()
  for _ in 0..<3 { try session.trainStep() }
  let checkpoint = session.checkpoint(elapsed: 1.5)
  let bytes = try checkpoint.safeTensors().encoded()
  let decoded = try SafeTensors(decoding: bytes)
  #expect(try decoded == checkpoint.safeTensors())
  let loaded = try Checkpoint(decoded)
  #expect(loaded.model == checkpoint.model)
  #expect(loaded.vocabulary == checkpoint.vocabulary)
  #expect(loaded.progress == checkpoint.progress)
  #expect(loaded.optimizer?.first == checkpoint.optimizer?.first)
  #expect(loaded.optimizer?.second == checkpoint.optimizer?.second)
  #expect(loaded.optimizer?.stepCount == 3)
  #expect(loaded.carriedState == checkpoint.carriedState)
  // Tensor names are PyTorch's word_language_model state_dict names.
  let names = decoded.tensors.map(\.name).filter { !$0.hasPrefix("training.") }
  #expect(Set(names) == Set(["encoder.weight", "decoder.weight", "decoder.bias"] + (0..<2).flatMap { l in
    ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].map { "rnn.\($0)_l\(l)" }
  }))
  // Saved to disk atomically and read back.
  let path = NSTemporaryDirectory() + "recurrent-roundtrip-\(UUID().uuidString).safetensors"
  try checkpoint.save(to: path)
  #expect(try Checkpoint.load(from: path).model == checkpoint.model)
  #expect(FileManager.default.contents(atPath: path) == bytes)
}

@Test func damagedCheckpointsGiveTypedErrors() throws {
  let session = try tinySession()
  let bytes = [UInt8](try session.checkpoint().safeTensors().encoded())
  #expect(throws: CheckpointError.truncated("5 bytes, no header length")) { try SafeTensors(decoding: Data(bytes[..<5])) }
  // Cut inside the data: offsets no longer fit.
  #expect(throws: CheckpointError.self) { try SafeTensors(decoding: Data(bytes[..<(bytes.count - 10)])) }
  var huge = bytes
  huge[7] = 0x7F
  #expect(throws: CheckpointError.headerTooLarge(Int(UInt64(bytes[0]) | UInt64(bytes[1]) << 8 | UInt64(bytes[2]) << 16 | 0x7F << 56))) {
    try SafeTensors(decoding: Data(huge))
  }
  var garbled = bytes
  garbled[8] = UInt8(ascii: "[")
  #expect(throws: CheckpointError.self) { try SafeTensors(decoding: Data(garbled)) }
  // A valid file that is not one of ours.
  let foreign = SafeTensors(tensors: [("x", Tensor(zeros: [2]))], metadata: [:])
  #expect(throws: CheckpointError.badMetadata(key: "recurrent.format", reason: "missing or not recurrent-language-model")) {
    try Checkpoint(foreign)
  }
  // A tensor of the wrong shape.
  var file = try session.checkpoint().safeTensors()
  let index = file.tensors.firstIndex { $0.name == "decoder.bias" }!
  file.tensors[index].tensor = Tensor(zeros: [3])
  #expect(throws: CheckpointError.shapeMismatch(tensor: "decoder.bias", expected: [session.vocabulary.count], found: [3])) {
    try Checkpoint(try SafeTensors(decoding: file.encoded()))
  }
  #expect(throws: CheckpointError.unreadable(path: "/no/such.safetensors", reason: "no such file")) {
    try Checkpoint.load(from: "/no/such.safetensors")
  }
}

@Test func resumeContinuesWithIdenticalLosses() throws {
  var straight = try tinySession()
  let reference = try (0..<8).map { _ in try straight.trainStep() }
  var first = try tinySession()
  let before = try (0..<5).map { _ in try first.trainStep() }
  // Through the file format, as --resume does.
  let saved = try Checkpoint(try SafeTensors(decoding: try first.checkpoint().safeTensors().encoded()))
  let vocabulary = saved.vocabulary
  let (train, valid) = splitForValidation(sampleText, kind: .char)
  var resumed = try TrainingSession(
    resuming: saved, options: tinyOptions(), trainTokens: try vocabulary.encode(train),
    validTokens: try vocabulary.encode(valid))
  let after = try (0..<3).map { _ in try resumed.trainStep() }
  #expect(before + after == reference)
  #expect(resumed.model == straight.model)
  // A different shape is refused.
  var other = tinyOptions()
  other.hiddenSize = 32
  #expect(throws: TrainingError.self) {
    try TrainingSession(resuming: saved, options: other, trainTokens: try vocabulary.encode(train), validTokens: try vocabulary.encode(valid))
  }
}

@Test func runStopsAtStepsAndReportsEvents() throws {
  var options = tinyOptions()
  options.steps = 12
  options.evalEvery = 5
  options.sampleEvery = 10
  options.sampleLength = 20
  var session = try tinySession(options)
  var events: [TrainingEvent] = []
  try session.run(checkpointPath: nil) { events.append($0) }
  #expect(session.step == 12)
  let steps = events.compactMap { if case .step(let s, _, _, _, _, _, _, _) = $0 { s } else { nil } }
  #expect(steps == Array(1...12))
  let evals = events.compactMap { if case .evaluation(let s, _, _, _, _) = $0 { s } else { nil } }
  #expect(evals == [5, 10, 12])
  #expect(events.contains { if case .sample(10, let text) = $0 { text.unicodeScalars.count == 21 } else { false } })
  guard case .finished(12, _, let valid?, _) = events.last else {
    Issue.record("no finished event last")
    return
  }
  #expect(valid.isFinite && valid < 3.5)  // well below ln(vocabulary) = ln(17) after 12 steps
  #expect(events.first.map { if case .started = $0 { true } else { false } } == true)
}

@Test func sameSeedSamplesSameText() throws {
  var session = try tinySession()
  for _ in 0..<10 { try session.trainStep() }
  var options = SamplingOptions()
  options.seed = 9
  let a = Array(TokenGenerator(model: session.model, prime: [1, 2], count: 40, options: options))
  let b = Array(TokenGenerator(model: session.model, prime: [1, 2], count: 40, options: options))
  options.seed = 10
  let c = Array(TokenGenerator(model: session.model, prime: [1, 2], count: 40, options: options))
  #expect(a == b)
  #expect(a != c)
  var greedy = SamplingOptions()
  greedy.greedy = true
  var topOne = SamplingOptions()
  topOne.topK = 1
  topOne.seed = 77
  #expect(Array(TokenGenerator(model: session.model, prime: [3], count: 20, options: greedy))
    == Array(TokenGenerator(model: session.model, prime: [3], count: 20, options: topOne)))
}

@Test func samplerHonoursTopKAndTopP() {
  let logits: [Float] = [0, 3, 1, 2.5, -1]
  var rng = SplitMix64(seed: 1)
  var options = SamplingOptions()
  options.topK = 2
  let drawsK = Set((0..<300).map { _ in TokenGenerator.sample(logits: logits, options: options, using: &rng) })
  #expect(drawsK == [1, 3])
  options.topK = nil
  options.topP = 0.5  // p(1) alone is about 0.52
  let drawsP = Set((0..<300).map { _ in TokenGenerator.sample(logits: logits, options: options, using: &rng) })
  #expect(drawsP == [1])
  options.topP = nil
  let all = Set((0..<3000).map { _ in TokenGenerator.sample(logits: logits, options: options, using: &rng) })
  #expect(all == [0, 1, 2, 3, 4])
}

struct ExportCase: Decodable {
  let checkpoint: String
  let nats_per_token: Double
  let tokens: Int
}

@Test func pytorchExportedCheckpointsGivePyTorchsPerplexity() throws {
  let cases = try loadFixture("pytorch_export", as: [ExportCase].self, in: .module)
  #expect(cases.count == 2)
  let textURL = try #require(Bundle.module.url(forResource: "pytorch_export_text", withExtension: "txt", subdirectory: "Fixtures"))
  let text = try readText(path: textURL.path)
  for c in cases {
    let url = try #require(Bundle.module.url(forResource: c.checkpoint, withExtension: "safetensors", subdirectory: "Fixtures"))
    let checkpoint = try Checkpoint.load(from: url.path)
    let result = Evaluation.stream(checkpoint.model, tokens: try checkpoint.vocabulary.encode(text), window: 100)
    #expect(result.tokens == c.tokens)
    #expect(abs(result.natsPerToken - c.nats_per_token) <= 1e-4 * c.nats_per_token,
      "\(c.checkpoint): \(result.natsPerToken) vs PyTorch \(c.nats_per_token)")
  }
}

/// The README's "From Swift" example, on a small text and few steps.
@Test func readmeSwiftExampleRuns() throws {
  let path = NSTemporaryDirectory() + "recurrent-readme-\(UUID().uuidString)"
  _ = FileManager.default.createFile(atPath: path + ".txt", contents: Data(sampleText.utf8))
  let text = try readText(path: path + ".txt")
  let (train, valid) = splitForValidation(text, kind: .char)
  let vocabulary = Vocabulary.characters(of: [train, valid])
  var options = TrainingOptions()
  options.steps = 3
  options.hiddenSize = 16
  options.embeddingSize = 8
  options.batchSize = 4
  options.sequenceLength = 8
  var session = try TrainingSession(
    options: options, vocabulary: vocabulary, trainTokens: try vocabulary.encode(train),
    validTokens: try vocabulary.encode(valid))
  var lines: [String] = []
  try session.run(checkpointPath: path + ".safetensors") { event in lines.append(event.json) }
  #expect(lines.contains { $0.hasPrefix("{\"event\":\"finished\"") })
  let checkpoint = try Checkpoint.load(from: path + ".safetensors")
  let score = Evaluation.stream(checkpoint.model, tokens: try vocabulary.encode(valid))
  #expect(score.natsPerToken.isFinite && score.tokens == valid.unicodeScalars.count - 1)
  var sampling = SamplingOptions()
  sampling.seed = 1
  var out = ""
  for id in TokenGenerator(model: checkpoint.model, prime: try vocabulary.encode("to"), count: 20, options: sampling) {
    out += vocabulary.piece(id, first: false)
  }
  #expect(out.unicodeScalars.count == 20)
}

@Test func nonFiniteLossStopsOrSkipsAsAsked() throws {
  var options = tinyOptions(dropout: 0)
  options.optimizer = OptimizerConfiguration(kind: .sgd, learningRate: 1e30)  // blows up at step 2
  options.clip = nil
  options.schedule = .constant
  options.steps = 6
  let path = NSTemporaryDirectory() + "recurrent-nan-\(UUID().uuidString).safetensors"
  var stopping = try tinySession(options)
  #expect(throws: TrainingError.diverged(at: "step 2")) { try stopping.run(checkpointPath: path) { _ in } }
  #expect(!FileManager.default.fileExists(atPath: path), "nothing is saved")
  options.onNaN = .skip
  var skipping = try tinySession(options)
  try skipping.run(checkpointPath: path) { _ in }
  #expect(skipping.step == 6)
  #expect(skipping.skippedSteps == 5)
  #expect(skipping.model.namedParameters.allSatisfy { !$0.tensor.scalars.contains { !$0.isFinite } })
  #expect(FileManager.default.fileExists(atPath: path))
}

/// A seeded mutation fuzzer over the checkpoint reader: bit flips, byte overwrites, cuts and
/// header-length edits of a valid file must each load or throw a CheckpointError, never trap.
@Test func mutatedCheckpointsLoadOrThrowTypedErrors() throws {
  let session = try tinySession()
  let original = [UInt8](try session.checkpoint().safeTensors().encoded())
  let headerLength = Int(original[0]) | Int(original[1]) << 8
  var rng = SplitMix64(seed: 2024)
  var loaded = 0
  var rejected = 0
  for round in 0..<3000 {
    var bytes = original
    switch round % 5 {
    case 0:  // flip bits anywhere
      for _ in 0..<(1 + Int(rng.next() % 4)) {
        let i = Int(rng.next() % UInt64(bytes.count))
        bytes[i] ^= UInt8(1 << (rng.next() % 8))
      }
    case 1:  // overwrite bytes inside the JSON header
      for _ in 0..<(1 + Int(rng.next() % 3)) {
        bytes[8 + Int(rng.next() % UInt64(headerLength))] = UInt8(truncatingIfNeeded: rng.next())
      }
    case 2:  // cut the file
      bytes.removeLast(Int(rng.next() % UInt64(bytes.count)))
    case 3:  // a different header length
      let length = UInt64(rng.next() % UInt64(headerLength * 2 + 16))
      for k in 0..<8 { bytes[k] = UInt8(truncatingIfNeeded: length >> (8 * UInt64(k))) }
    default:  // digits in the header changed (shapes, offsets, sizes in the config)
      let digits = (8..<(8 + headerLength)).filter { bytes[$0] >= 48 && bytes[$0] <= 57 }
      for _ in 0..<2 { bytes[digits[Int(rng.next() % UInt64(digits.count))]] = 48 + UInt8(rng.next() % 10) }
    }
    do {
      _ = try Checkpoint(try SafeTensors(decoding: Data(bytes)))
      loaded += 1
    } catch is CheckpointError {
      rejected += 1
    } catch {
      Issue.record("round \(round): \(error) is not a CheckpointError")
    }
  }
  #expect(loaded > 0, "mutations of tensor data still load")
  #expect(rejected > 1000)
}

@Test func savingNeverReplacesADeviceOrFolder() throws {
  let checkpoint = try tinySession().checkpoint()
  #expect(throws: CheckpointError.writeFailed(path: "/dev/null", reason: "not a regular file")) {
    try checkpoint.save(to: "/dev/null")
  }
  var status = stat()
  #expect(lstat("/dev/null", &status) == 0 && (status.st_mode & S_IFMT) == S_IFCHR)
  let folder = NSTemporaryDirectory() + "recurrent-folder-\(UUID().uuidString)"
  try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false)
  #expect(throws: CheckpointError.writeFailed(path: folder, reason: "not a regular file")) { try checkpoint.save(to: folder) }
}

@Test func checkpointsWithMissingExtraOrMalformedPartsAreRefused() throws {
  // Missing and extra tensors in an otherwise good checkpoint.
  let good = try tinySession().checkpoint().safeTensors()
  var missing = good
  missing.tensors.removeAll { $0.name == "rnn.weight_hh_l1" }
  #expect(throws: CheckpointError.missingTensor("rnn.weight_hh_l1")) { try Checkpoint(try SafeTensors(decoding: missing.encoded())) }
  var extra = good
  extra.tensors.append(("rnn.weight_hh_l7", Tensor(zeros: [2])))
  #expect(throws: CheckpointError.unexpectedTensor("rnn.weight_hh_l7")) { try Checkpoint(try SafeTensors(decoding: extra.encoded())) }
  var wrongConfig = good
  wrongConfig.metadata["recurrent.config"] = "[1, 2]"
  #expect(throws: CheckpointError.self) { try Checkpoint(try SafeTensors(decoding: wrongConfig.encoded())) }
}

// Epochs after the first move their window boundaries (TrainingOptions.shiftsWindows): the
// first epoch is cut as before, a later one starts with a shorter window, every epoch still
// trains on each token once, and a run resumed inside a shifted epoch continues it exactly.
@Test func laterEpochsShiftTheirWindowsAndResumeExactly() throws {
  var fixedOptions = tinyOptions()
  fixedOptions.shiftsWindows = false
  var (shifted, fixed) = (try tinySession(), try tinySession(fixedOptions))
  let perEpoch = shifted.train.windowCount
  var lengths: [[Int]] = [[], [], []]
  var losses: [[Float]] = [[], []]
  for _ in 0..<(3 * perEpoch + 2) {
    let seen = shifted.tokensSeen
    losses[0].append(try shifted.trainStep())
    losses[1].append(try fixed.trainStep())
    // A step that starts an epoch counts the epoch first: the step belongs to `epoch` after it.
    lengths[min(shifted.epoch, 2)].append((shifted.tokensSeen - seen) / 4)
  }
  #expect(Array(losses[0].prefix(perEpoch)) == Array(losses[1].prefix(perEpoch)), "the first epoch is cut as before")
  #expect(losses[0][perEpoch...] != losses[1][perEpoch...])
  #expect(lengths[0].dropLast().allSatisfy { $0 == 8 })
  #expect(lengths[1].reduce(0, +) == lengths[0].reduce(0, +), "each token once per epoch")
  #expect(lengths[1].first! < 8 || lengths[2].first! < 8, "a later epoch starts with a shorter window: \(lengths)")
  // Saved two windows into the second epoch, resumed through the file format.
  var first = try tinySession()
  for _ in 0..<(perEpoch + 2) { try first.trainStep() }
  let saved = try Checkpoint(try SafeTensors(decoding: try first.checkpoint().safeTensors().encoded()))
  let (train, valid) = splitForValidation(sampleText, kind: .char)
  var resumed = try TrainingSession(
    resuming: saved, options: tinyOptions(), trainTokens: try saved.vocabulary.encode(train),
    validTokens: try saved.vocabulary.encode(valid))
  let after = try (0..<(2 * perEpoch)).map { _ in try resumed.trainStep() }
  #expect(after == Array(losses[0][(perEpoch + 2)..<(3 * perEpoch + 2)]))
}
