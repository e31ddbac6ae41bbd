import Testing
import TestSupport

import Recurrent
import RecurrentExamples
import TensorCore

// The runnable examples (Examples/, `recurrent example NAME`) must learn what they claim, and
// the long-memory task generators must make the problems the literature describes.

@Test func sineSquaredExampleLearnsTheMapping() throws {
  let result = try SineSquaredExample.run(epochs: 8, samples: 400)
  #expect(result.testMSE < 0.01, "test MSE \(result.testMSE) (predicting the mean: \(result.baselineMSE))")
  #expect(result.history["loss"].last! < result.history["loss"].first!)
}

@Test func stackedGRUBinaryClassifierExampleSeparatesTheClasses() throws {
  let result = try BinaryClassifierExample.run()  // as `recurrent example binary-classifier` runs it
  #expect(result.testAccuracy >= 0.9, "test accuracy \(result.testAccuracy)")
}

@Test func gruCellLoopExampleMemorisesRandomTargets() {
  let result = GRUCellLoopExample.run(iterations: 150)
  #expect(result.losses.count == 150)
  #expect(result.losses.last! < 0.05 * result.losses.first!, "losses \(result.losses.first!) -> \(result.losses.last!)")
}

@Test func addingProblemBatchesHaveTwoMarksOneInEachHalfAndTheirSum() {
  var rng = SplitMix64(seed: 4)
  let T = 30
  let (x, y) = LongMemoryTask.adding.batch(count: 200, length: T, using: &rng)
  #expect(x.shape == [200, T, 2] && y.shape == [200, 1])
  var targets: [Float] = []
  for n in 0..<200 {
    let marked = (0..<T).filter { x.scalars[(n * T + $0) * 2 + 1] == 1 }
    #expect(marked.count == 2 && marked[0] < T / 2 && marked[1] >= T / 2)
    let sum = marked.reduce(Float(0)) { $0 + x.scalars[(n * T + $1) * 2] }
    #expect(y.scalars[n] == sum)
    targets.append(y.scalars[n])
    #expect((0..<T).allSatisfy { x.scalars[(n * T + $0) * 2] >= 0 && x.scalars[(n * T + $0) * 2] < 1 })
  }
  // The constant guess 1 scores about 1/6 (the quoted 0.167).
  let mse = targets.reduce(0) { $0 + Double(($1 - 1) * ($1 - 1)) } / 200
  #expect(abs(mse - LongMemoryTask.adding.baseline(length: T)) < 0.04)
}

@Test func copyBatchesAskToRecallTheFirstTenSymbolsAfterTheDelimiter() {
  var rng = SplitMix64(seed: 5)
  let T = 12
  let steps = T + 20
  let (x, y) = LongMemoryTask.copy.batch(count: 20, length: T, using: &rng)
  #expect(x.shape == [20, steps, 10] && y.shape == [20, steps])
  for n in 0..<20 {
    let symbols = (0..<steps).map { t in (0..<10).first { x.scalars[(n * steps + t) * 10 + $0] == 1 }! }
    #expect(symbols[0..<10].allSatisfy { (1...8).contains($0) })
    #expect(symbols[T + 9] == 9)
    #expect(symbols.enumerated().allSatisfy { $0.offset < 10 || $0.offset == T + 9 || $0.element == 0 })
    let targets = (0..<steps).map { Int(y.scalars[n * steps + $0]) }
    #expect(targets[0..<(T + 10)].allSatisfy { $0 == 0 })
    #expect(Array(targets[(T + 10)...]) == Array(symbols[0..<10]))
  }
}

@Test func shortAddingTaskIsLearnedByAGRU() throws {
  // T = 10 is short enough for a few hundred steps; the table in the README uses 50-200.
  var o = LongMemoryTask.Options()
  o.cell = .gru
  o.length = 10
  o.hidden = 32
  o.batch = 64
  o.steps = 600
  o.optimizer.learningRate = 1e-2
  o.evalEvery = 200
  o.testSamples = 500
  let result = try LongMemoryTask.adding.run(o)
  #expect(result.testMetric < 0.01, "test MSE \(result.testMetric)")
  #expect(result.solved)
}

