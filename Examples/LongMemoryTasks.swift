import Foundation
import Recurrent
import SequenceModels

/// The classic long-dependency tests that show why gates matter.
///
/// - Adding problem (Le et al. 2015 variant of Hochreiter & Schmidhuber 1997): each step has a
///   value drawn from U[0, 1] and a marker; exactly two steps are marked, one in each half of
///   the sequence; the target is the sum of the two marked values. Predicting the constant 1
///   scores MSE 1/6 ≈ 0.167. Solved: test MSE < 0.01.
/// - Copy memory (Arjovsky et al. 2016): 10 symbols drawn from 8, then T-1 blanks, a delimiter
///   and 10 more blanks; the model must output blanks for T+10 steps and then the 10 symbols.
///   Metric: cross-entropy per step; guessing the symbols after blanks scores 10·ln 8 / (T+20).
///   Solved: every recalled symbol right on the test set (recall accuracy ≥ 0.99).
public enum LongMemoryTask: String, CaseIterable, Sendable {
  case adding, copy

  public struct Options: Sendable {
    public var cell: CellKind = .gru
    /// Sequence length T (adding) or delay T (copy).
    public var length: Int = 100
    public var hidden: Int = 128
    /// Stacked recurrent layers, with `dropout` between them.
    public var layers: Int = 1
    public var dropout: Float = 0
    /// How the recurrent weights are drawn (`--init`).
    public var initialization: Initialization = .pytorch
    /// The LSTMs' forget-gate bias at the start (`--forget-bias`), nil: as drawn.
    public var forgetBias: Float? = nil
    public var batch: Int = 50
    public var steps: Int = 3000
    public var optimizer = OptimizerConfiguration(kind: .adam, learningRate: 3e-3)
    public var clip: Float? = 1
    /// Evaluate on the test set every this many steps.
    public var evalEvery: Int = 100
    public var testSamples: Int = 1000
    public var seed: UInt64 = 1
    public var threads: Int = max(1, System.coreCount)
    public init() {}
  }

  public struct Progress: Sendable {
    public var step: Int
    public var trainLoss: Double
    public var testMetric: Double
    public var seconds: Double
  }

  public struct Result: Sendable {
    public var task: LongMemoryTask
    public var cell: CellKind
    public var length: Int
    public var steps: Int
    /// Adding: test MSE. Copy: test cross-entropy per step (nats).
    public var testMetric: Double
    public var baseline: Double
    /// Copy: fraction of recalled symbols right on the test set; adding: nil.
    public var recallAccuracy: Double?
    /// The first evaluation step at which the task counted as solved, if any.
    public var solvedAtStep: Int?
    public var seconds: Double
    /// Solved at the end of training: adding test MSE < 0.01, copy recall accuracy >= 0.99.
    public var solved: Bool { task == .adding ? testMetric < 0.01 : (recallAccuracy ?? 0) >= 0.99 }
  }

  /// The constant-guess score the issue and the literature quote.
  public func baseline(length: Int) -> Double {
    switch self {
    case .adding: 1.0 / 6.0
    case .copy: 10 * log(8.0) / Double(length + 20)
    }
  }

  /// A batch of `count` sequences: `x` `[count, steps, features]` and targets.
  public func batch(count: Int, length T: Int, using rng: inout SplitMix64) -> (x: Tensor, y: Tensor) {
    switch self {
    case .adding:
      var x = Tensor(zeros: [count, T, 2])
      var y = Tensor(zeros: [count, 1])
      let half = max(1, T / 2)
      for n in 0..<count {
        let first = Int(rng.next() % UInt64(half))
        let second = half + Int(rng.next() % UInt64(max(1, T - half)))
        for t in 0..<T {
          let v = rng.nextUnitFloat()
          x.scalars[(n * T + t) * 2] = v
          if t == first || t == second {
            x.scalars[(n * T + t) * 2 + 1] = 1
            y.scalars[n] += v
          }
        }
      }
      return (x, y)
    case .copy:
      // Symbols 1...8, blank 0, delimiter 9; inputs one-hot over 10, targets class ids over 9.
      let steps = T + 20
      var x = Tensor(zeros: [count, steps, 10])
      var y = Tensor(zeros: [count, steps])
      for n in 0..<count {
        for t in 0..<steps {
          var symbol = 0
          if t < 10 {
            symbol = 1 + Int(rng.next() % 8)
            y.scalars[n * steps + T + 10 + t] = Float(symbol)
          } else if t == T + 9 {
            symbol = 9
          }
          x.scalars[(n * steps + t) * 10 + symbol] = 1
        }
      }
      return (x, y)
    }
  }

  /// The model: `o.layers` recurrent layers and a Dense head (the last step for adding, every
  /// step for copy).
  public func model(_ o: Options) throws -> Sequential {
    var rng = SplitMix64(seed: o.seed)
    var layers: [Layer] = []
    for index in 0..<o.layers {
      let last = index == o.layers - 1
      layers.append(.recurrent(kind: o.cell, units: o.hidden, returnSequences: !last || self == .copy))
      if !last && o.dropout > 0 { layers.append(.dropout(o.dropout)) }
    }
    layers.append(self == .adding ? .dense(1) : .dense(9, activation: .softmax))
    var model = try Sequential(
      inputFeatures: self == .adding ? 2 : 10, layers, initialization: o.initialization, forgetBias: o.forgetBias, using: &rng)
    model.compile(
      loss: self == .adding ? .meanSquaredError : .categoricalCrossEntropy, optimizer: o.optimizer, clipNorm: o.clip)
    return model
  }

  /// Trains on fresh batches for `o.steps` updates, evaluating on a fixed test set every
  /// `o.evalEvery` steps and at the end.
  public func run(_ o: Options, progress: ((Progress) -> Void)? = nil) throws -> Result {
    guard o.length >= 2 else { throw ModelError.invalidArgument("the length must be at least 2, got \(o.length)") }
    var model = try model(o)
    var testRNG = SplitMix64(seed: 0xC0FFEE)
    let test = batch(count: o.testSamples, length: o.length, using: &testRNG)
    var rng = SplitMix64(seed: o.seed &+ 1)
    let compute = Compute(threads: o.threads)
    let started = Date()
    var solvedAt: Int? = nil
    var metric = Double.nan
    var recall: Double? = nil
    var lastLoss = Double.nan
    func evaluate() throws {
      // Adding: the test MSE; copy: the test cross-entropy per step (the compiled loss).
      metric = try model.evaluate(test.x, test.y, batchSize: 500, compute: compute)["loss"]!
      if self == .copy {
        let p = try model.predict(test.x, batchSize: 500, compute: compute)
        let steps = o.length + 20
        var hits = 0
        for n in 0..<o.testSamples {
          for t in (o.length + 10)..<steps {
            let target = Int(test.y.scalars[n * steps + t])
            let row = (n * steps + t) * 9
            let guess = (0..<9).max { p.scalars[row + $0] < p.scalars[row + $1] }!
            if guess == target { hits += 1 }
          }
        }
        recall = Double(hits) / Double(o.testSamples * 10)
      }
    }
    for step in 1...o.steps {
      let (x, y) = batch(count: o.batch, length: o.length, using: &rng)
      var dropout = SplitMix64(seed: rng.next())  // its own stream, so batches do not depend on the model
      lastLoss = try model.trainOnBatch(x, y, using: &dropout, compute: compute)["loss"]!
      if step % o.evalEvery == 0 || step == o.steps {
        try evaluate()
        let solvedNow = self == .adding ? metric < 0.01 : (recall ?? 0) >= 0.99
        if solvedNow && solvedAt == nil { solvedAt = step }
        progress?(Progress(step: step, trainLoss: lastLoss, testMetric: metric, seconds: Date().timeIntervalSince(started)))
      }
    }
    return Result(
      task: self, cell: o.cell, length: o.length, steps: o.steps, testMetric: metric, baseline: baseline(length: o.length),
      recallAccuracy: recall, solvedAtStep: solvedAt, seconds: Date().timeIntervalSince(started))
  }
}
