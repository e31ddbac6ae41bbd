import Distributed
import Formats
import Foundation
import Testing
import TestSupport

import Recurrent
import TextCorpus
import Training

// Data-parallel training tested as PyTorch tests DDP (`_test_DDP_niter`): N ranks (threads of
// one process in a `LocalGroup`, the stand-in for mpirun; Tools/mpi_check.sh runs the same
// code under Open MPI) must end each step with the parameters one process gets on the whole
// batch, and every rank with the same bits.

/// Runs `body(rank)` on `size` threads at once (a `LocalGroup`'s collectives need every rank
/// running) and returns the results in rank order.
func onRanks<T: Sendable>(_ size: Int, _ body: @escaping @Sendable (any Collective) throws -> T) throws -> [T] {
  let group = LocalGroup(size: size)
  let results = Results<T>(size)
  let done = DispatchGroup()
  for r in 0..<size {
    done.enter()
    let thread = Thread {
      results.set(r, Result { try body(group.rank(r)) })
      done.leave()
    }
    thread.stackSize = 8 << 20
    thread.start()
  }
  done.wait()
  return try results.values.map { try $0!.get() }
}

final class Results<T>: @unchecked Sendable {
  let lock = NSLock()
  var values: [Result<T, any Error>?]
  init(_ size: Int) { values = Array(repeating: nil, count: size) }
  func set(_ index: Int, _ value: Result<T, any Error>) { lock.withLock { values[index] = value } }
}

private func parallelOptions(_ optimizer: OptimizerKind, dropout: Float, cell: CellKind = .gru) -> TrainingOptions {
  var o = TrainingOptions()
  o.cell = cell
  o.layers = 2
  o.hiddenSize = 16
  o.embeddingSize = 8
  o.dropout = dropout
  o.regularization = nil  // the recipe's regularizers have a test of their own (below)
  o.batchSize = 8
  o.sequenceLength = 6
  o.threads = 1
  o.seed = 11
  o.evalEvery = 0
  o.sampleEvery = 0
  o.clip = 0.5  // small enough that every step clips
  o.optimizer = OptimizerConfiguration(kind: optimizer, learningRate: optimizer == .sgd ? 0.5 : 1e-2)
  return o
}

private let corpus = String(repeating: "First Citizen: Before we proceed any further, hear me speak.\n", count: 12)

private func session(_ options: TrainingOptions, world: (any Collective)? = nil, text: String = corpus) throws -> TrainingSession {
  let vocabulary = Vocabulary.characters(of: [corpus])
  let (train, valid) = splitForValidation(text, kind: .char)
  return try TrainingSession(
    options: options, vocabulary: vocabulary, trainTokens: try vocabulary.encode(train),
    validTokens: try vocabulary.encode(valid), world: world)
}

/// Every parameter's scalars, in order.
private func flat(_ model: LanguageModel) -> [[Float]] { model.namedParameters.map(\.tensor.scalars) }

/// max |a - b| / max |b| over each tensor, the largest over the model.
private func relativeDifference(_ a: [[Float]], _ b: [[Float]]) -> Float {
  zip(a, b).map { x, y in
    let scale = max(y.map(abs).max() ?? 0, 1e-30)
    return zip(x, y).map { abs($0 - $1) }.max()! / scale
  }.max()!
}

/// ‖a - b‖ / ‖b‖ over the whole model.
private func normwiseDifference(_ a: [[Float]], _ b: [[Float]]) -> Double {
  var (difference, size) = (0.0, 0.0)
  for (x, y) in zip(a.joined(), b.joined()) {
    difference += Double(x - y) * Double(x - y)
    size += Double(y) * Double(y)
  }
  return (difference / size).squareRoot()
}

@Test(arguments: [OptimizerKind.sgd, .adam], [Float(0), 0.2])
func ranksTrainAsOneProcessOnTheWholeBatch(optimizer: OptimizerKind, dropout: Float) throws {
  let options = parallelOptions(optimizer, dropout: dropout)
  var single = try session(options)
  var reference: [[[Float]]] = []
  var losses: [Float] = []
  for _ in 0..<5 {
    losses.append(try single.trainStep())
    reference.append(flat(single.model))
  }
  for ranks in [2, 4] {
    // One process in `ranks` micro-batches adds the parts in rank order, as LocalGroup does.
    var parts = try session(options)
    parts.microBatches = ranks
    let perRank = try onRanks(ranks) { world -> ([[[Float]]], [Float]) in
      var s = try session(options, world: world)
      var steps: [[[Float]]] = []
      var losses: [Float] = []
      for _ in 0..<5 {
        losses.append(try s.trainStep())
        steps.append(flat(s.model))
      }
      return (steps, losses)
    }
    for step in 0..<5 {
      // Every rank holds bitwise the same parameters after every step.
      for r in 1..<ranks { #expect(perRank[r].0[step] == perRank[0].0[step], "rank \(r) differs at step \(step + 1)") }
      let partsLoss = try parts.trainStep()
      #expect(perRank[0].0[step] == flat(parts.model), "\(ranks) ranks against micro-batches, step \(step + 1)")
      #expect(perRank[0].1[step] == partsLoss)
      // Against the whole batch at once: SGD elementwise; Adam normalises each element by its
      // own size, so gradient elements that are zero up to rounding move by more under another
      // summation order, and Adam is held to the whole vector.
      if optimizer == .sgd {
        let difference = relativeDifference(perRank[0].0[step], reference[step])
        #expect(difference <= 1e-6, "\(ranks) ranks, step \(step + 1): relative difference \(difference)")
      } else {
        let difference = normwiseDifference(perRank[0].0[step], reference[step])
        #expect(difference <= 1e-6, "\(ranks) ranks, step \(step + 1): norm-wise relative difference \(difference)")
      }
      #expect(abs(perRank[0].1[step] - losses[step]) <= 1e-6 * losses[step])
    }
    // The parameters moved: the comparison is not of untouched weights.
    #expect(relativeDifference(perRank[0].0[4], flat(try session(options).model)) > 1e-3)
  }
}

@Test func dropoutMasksDependOnTheGlobalRowNotOnTheSplit() throws {
  // Rows 4..<8 of a batch of 8, drawn by a rank holding only them, are the whole batch's rows.
  var rng = SplitMix64(seed: 3)
  let dropout = Dropout(probability: 0.5)
  let (T, B, W) = (3, 8, 5)
  let input = Tensor(shape: [T, B, W], scalars: Array(repeating: 1, count: T * B * W))
  var a = rng
  let (_, whole) = dropout.forward(input, training: true, using: &a)
  let half = Tensor(shape: [T, 4, W], scalars: Array(repeating: 1, count: T * 4 * W))
  var b = rng
  let (_, part) = dropout.forward(half, training: true, rows: BatchRows(first: 4, total: B), using: &b)
  let expected = (0..<T).flatMap { t in (4..<8).flatMap { row in (0..<W).map { whole!.scalars[(t * B + row) * W + $0] } } }
  #expect(part!.scalars == expected)
  #expect(Set(expected).count == 2)  // both 0 and 2 occur: a real mask
  #expect(a.next() == b.next())  // and the generator advanced alike
  _ = rng.next()
}

@Test func checkpointsGatherTheCarriedStateAndResumeWithAnotherRankCount() throws {
  let options = parallelOptions(.adam, dropout: 0.2, cell: .lstm)
  // What 2 ranks then 4 compute: one process in 2 micro-batches, then in 4.
  var single = try session(options)
  single.microBatches = 2
  for _ in 0..<3 { try single.trainStep() }
  single.microBatches = 4
  for _ in 0..<2 { try single.trainStep() }
  // 2 ranks for 3 steps, saved; then 4 ranks resume for 2 more.
  let saved = try onRanks(2) { world -> Data in
    var s = try session(options, world: world)
    for _ in 0..<3 { try s.trainStep() }
    return try s.checkpoint().safeTensors().encoded()
  }
  #expect(saved[0] == saved[1])
  let stateAt3 = try Checkpoint(SafeTensors(decoding: saved[0])).carriedState!
  #expect(stateAt3.hidden.shape == [2, 8, 16])
  var three = try session(options)
  for _ in 0..<3 { try three.trainStep() }
  let reference = three.checkpoint().carriedState!
  #expect(relativeDifference([stateAt3.hidden.scalars, stateAt3.cell!.scalars], [reference.hidden.scalars, reference.cell!.scalars]) <= 1e-6)
  let resumed = try onRanks(4) { world -> [[Float]] in
    let checkpoint = try Checkpoint(SafeTensors(decoding: saved[0]))
    let vocabulary = checkpoint.vocabulary
    let (train, valid) = splitForValidation(corpus, kind: .char)
    var s = try TrainingSession(
      resuming: checkpoint, options: options, trainTokens: try vocabulary.encode(train),
      validTokens: try vocabulary.encode(valid), world: world)
    for _ in 0..<2 { try s.trainStep() }
    return flat(s.model)
  }
  for r in 1..<4 { #expect(resumed[r] == resumed[0]) }
  #expect(resumed[0] == flat(single.model))
}

@Test func aBatchThatDoesNotDivideOrRanksThatDisagreeAreRefused() throws {
  let options = parallelOptions(.adam, dropout: 0)
  let odd = { var o = options; o.batchSize = 6; return o }()
  let refusals = try onRanks(4) { world -> String? in
    do {
      _ = try session(odd, world: world)
      return nil
    } catch let error as DataParallelError {
      return error.description
    }
  }
  #expect(refusals.allSatisfy { $0 == "--batch 6 is the global batch and must divide by the 4 ranks (e.g. --batch 4)" })
  // Rank 1 was given other text; rank 1 of another run another learning rate.
  let data = try onRanks(2) { world -> String? in
    do {
      _ = try session(options, world: world, text: world.rank == 1 ? corpus.replacingOccurrences(of: "speak", with: "peaks") : corpus)
      return nil
    } catch let error as DataParallelError {
      return error.description
    }
  }
  #expect(data.allSatisfy { $0?.hasPrefix("the ranks disagree on the data") == true }, "\(data)")
  let rates = try onRanks(2) { world -> String? in
    var mine = options
    if world.rank == 1 { mine.optimizer.learningRate = 0.5 }
    do {
      _ = try session(mine, world: world)
      return nil
    } catch let error as DataParallelError {
      return error.description
    }
  }
  #expect(rates.allSatisfy { $0?.hasPrefix("the ranks disagree on the options") == true }, "\(rates)")
}

@Test func localGroupCollectivesAgree() throws {
  let sums = try onRanks(3) { world -> [Float] in
    var values: [Float] = [Float(world.rank), 1, 0.1]
    values.withUnsafeMutableBufferPointer { world.allreduceSum($0) }
    let sent = world.broadcast(world.rank == 2 ? [7, 8, 9] : [], root: 2)
    #expect(sent == [7, 8, 9])
    #expect(world.range(world.rank) == (0, 2))
    #expect(world.any(world.rank == 1))
    #expect(!world.any(false))
    return values
  }
  #expect(sums[0] == [3, 3, (0.1 as Float) + 0.1 + 0.1])
  #expect(sums.allSatisfy { $0 == sums[0] })
}

@Test func regularizedRanksTrainAsOneProcessOnTheWholeBatch() throws {
  // Weight drop draws one mask per window from the shared key, locked dropout and zoneout per
  // global row, embedding dropout per token, and AR/TAR average over the global batch: 2 ranks
  // compute what one process computes on the whole batch.
  let options = {
    var o = parallelOptions(.sgd, dropout: 0.1, cell: .lstm)
    o.regularization = Regularization(
      embeddingDropout: 0.1, lockedDropout: 0.2, weightDrop: 0.3, zoneout: 0.2, activation: 1, temporalActivation: 1)
    return o
  }()
  var single = try session(options)
  var parts = try session(options)
  parts.microBatches = 2
  let perRank = try onRanks(2) { world -> [[[Float]]] in
    var s = try session(options, world: world)
    return try (0..<3).map { _ in
      try s.trainStep()
      return flat(s.model)
    }
  }
  for step in 0..<3 {
    try single.trainStep()
    try parts.trainStep()
    #expect(perRank[1][step] == perRank[0][step], "ranks differ at step \(step + 1)")
    #expect(perRank[0][step] == flat(parts.model), "ranks against micro-batches, step \(step + 1)")
    let difference = relativeDifference(perRank[0][step], flat(single.model))
    #expect(difference <= 1e-6, "step \(step + 1): relative difference \(difference)")
  }
  #expect(relativeDifference(perRank[0][2], flat(try session(options).model)) > 1e-3)
}
