import ArgumentParser
import Distributed
import Formats
import Foundation
import Recurrent
import TextCorpus
import Training

/// `recurrent mpi-check`: under `mpirun`, checks that the ranks find each other and that the
/// collectives training relies on give every rank the same, right answer.
struct MPICheck: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "mpi-check",
    abstract: "Check the MPI setup: run as `mpirun -np N recurrent mpi-check` with a build made with --traits MPI.")

  @Option(help: "Floats summed across the ranks.") var count = 1 << 20
  @Flag(help: "Also check data-parallel training: 5 steps with SGD and Adam, clipping on, dropout 0 and 0.2, against one process on the whole batch (rank 0 trains that too).")
  var train = false

  func validate() throws {
    guard count >= 1 && count <= 1 << 28 else { throw ValidationError("--count must be in 1...268435456") }
  }

  func run() throws {
    let world = Communicator()
    defer { world.finalize() }
    guard Communicator.isAvailable else {
      let launched = launchedWorldSize()
      throw CommandError(
        "this build has no MPI (launched as \(launched) rank\(launched == 1 ? "" : "s")); build it with: swift build -c release --traits MPI")
    }
    // Rank r contributes (r + 1) * (i % 7 + 1) to element i; the sum is exact in Float.
    var values = (0..<count).map { Float((world.rank + 1) * ($0 % 7 + 1)) }
    let started = Date()
    values.withUnsafeMutableBufferPointer { world.allreduceSum($0) }
    let seconds = Date().timeIntervalSince(started)
    let total = world.size * (world.size + 1) / 2
    let wrong = values.indices.first { values[$0] != Float(total * ($0 % 7 + 1)) }
    var seed: [UInt8] = Array(repeating: UInt8(world.rank == 0 ? 42 : 0), count: 8)
    seed.withUnsafeMutableBytes { world.broadcast($0) }
    let (low, high) = world.range(count)
    emit(
      jsonLine([
        "rank": .int(world.rank), "size": .int(world.size), "allreduce_floats": .int(count),
        "allreduce_seconds": .number(seconds), "allreduce_ok": .bool(wrong == nil), "broadcast_ok": .bool(seed.allSatisfy { $0 == 42 }),
        "ranks_agree": .bool(low == high),
      ]))
    if wrong != nil || !seed.allSatisfy({ $0 == 42 }) || low != high {
      throw CommandError("rank \(world.rank): a collective gave a wrong result")
    }
    if train { try checkTraining(world) }
  }

  /// N ranks against one process, as PyTorch tests DDP: after every one of 5 steps all ranks
  /// hold bitwise-equal parameters, within 1e-6 (relative, per tensor) of one process's.
  func checkTraining(_ world: Communicator) throws {
    let text = (0..<40).map { "line \($0): the quick brown fox jumps over the lazy dog \($0 * 7 % 13)\n" }.joined()
    let vocabulary = Vocabulary.characters(of: [text])
    let (trainText, validText) = splitForValidation(text, kind: .char)
    let (train, valid) = (try vocabulary.encode(trainText), try vocabulary.encode(validText))
    var failures = 0
    for kind in [OptimizerKind.sgd, .adam] {
      for dropout: Float in [0, 0.2] {
        var options = TrainingOptions()
        (options.cell, options.layers, options.hiddenSize, options.embeddingSize) = (.lstm, 2, 32, 16)
        (options.batchSize, options.sequenceLength, options.threads, options.seed) = (4 * world.size, 8, 1, 3)
        (options.dropout, options.clip, options.evalEvery, options.sampleEvery) = (dropout, 0.5, 0, 0)
        options.optimizer = OptimizerConfiguration(kind: kind, learningRate: kind == .sgd ? 0.5 : 1e-2)
        var parallel = try TrainingSession(
          options: options, vocabulary: vocabulary, trainTokens: train, validTokens: valid, world: world)
        // Rank 0 also trains alone: on the whole batch at once, and in N micro-batches added in
        // rank order (what the ranks compute; with 2 ranks the sum's order is the same).
        var whole = world.rank == 0
          ? try TrainingSession(options: options, vocabulary: vocabulary, trainTokens: train, validTokens: valid) : nil
        var parts = whole
        parts?.microBatches = world.size
        var (elementwise, normwise, fromParts) = (Float(0), 0.0, Float(0))
        var ranksEqual = true
        for _ in 0..<5 {
          try parallel.trainStep()
          try whole?.trainStep()
          try parts?.trainStep()
          var hash = stableHashSeed
          for (_, tensor) in parallel.model.namedParameters { stableHash(tensor.scalars.lazy.map(\.bitPattern), into: &hash) }
          let (low, high) = world.range(Int(truncatingIfNeeded: hash))
          ranksEqual = ranksEqual && low == high
          if let whole, let parts {
            let mine = parallel.model.namedParameters.map(\.tensor.scalars)
            let reference = whole.model.namedParameters.map(\.tensor.scalars)
            elementwise = max(elementwise, largestRelativeDifference(mine, reference))
            normwise = max(normwise, normwiseRelativeDifference(mine, reference))
            fromParts = max(fromParts, largestRelativeDifference(mine, parts.model.namedParameters.map(\.tensor.scalars)))
          }
        }
        if world.rank == 0 {
          // SGD: every element within 1e-6. Adam divides each gradient element by its own
          // magnitude, so elements that are zero up to rounding (sums that cancel) move by up
          // to a few percent of the rate under any other summation order: for Adam the whole
          // parameter vector is held to 1e-6 (norm-wise), and bitwise equality with 2 ranks.
          let closeEnough = kind == .sgd ? elementwise <= 1e-6 : normwise <= 1e-6
          let ok = ranksEqual && closeEnough && (world.size != 2 || fromParts == 0)
          if !ok { failures += 1 }
          emit(
            jsonLine([
              "check": .string("train"), "ranks": .int(world.size), "optimizer": .string(kind.rawValue),
              "dropout": .number(Double(dropout)), "steps": .int(5), "ranks_bitwise_equal": .bool(ranksEqual),
              "max_elementwise_relative_difference": .number(Double(elementwise)),
              "normwise_relative_difference": .number(normwise),
              "max_relative_difference_from_micro_batches": .number(Double(fromParts)), "ok": .bool(ok),
            ]))
        }
      }
    }
    if failures > 0 { throw CommandError("data-parallel training differs from one process in \(failures) of 4 checks") }
  }
}

/// max |a - b| / max |b| within each tensor, the largest over the tensors.
func largestRelativeDifference(_ a: [[Float]], _ b: [[Float]]) -> Float {
  zip(a, b).map { x, y in
    let scale = max(y.map(abs).max() ?? 0, 1e-30)
    return (zip(x, y).map { abs($0 - $1) }.max() ?? 0) / scale
  }.max() ?? 0
}

/// ‖a - b‖ / ‖b‖ over all the tensors together.
func normwiseRelativeDifference(_ a: [[Float]], _ b: [[Float]]) -> Double {
  var (difference, size) = (0.0, 0.0)
  for (x, y) in zip(a, b) {
    for (u, v) in zip(x, y) {
      difference += Double(u - v) * Double(u - v)
      size += Double(v) * Double(v)
    }
  }
  return (difference / max(size, 1e-300)).squareRoot()
}
