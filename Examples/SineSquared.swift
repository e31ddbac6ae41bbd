import Foundation
import Recurrent
import SequenceModels

/// Example 1: a GRU(64) and a Dense layer learn y = sin(x)² from sin(x), at every step of
/// windows of a sampled sine wave (Keras: `GRU(64, return_sequences=True)`, `Dense(1)`).
public enum SineSquaredExample {
  public struct Result: Sendable {
    public var history: History
    /// Mean squared error on held-out windows, and that of always predicting the mean (1/8).
    public var testMSE: Double
    public var baselineMSE: Double
  }

  /// Windows of `steps` samples of sin(x), x advancing by 0.1 from random starts; targets sin(x)².
  public static func data(samples: Int, steps: Int, using rng: inout some RandomNumberGenerator) -> (x: Tensor, y: Tensor) {
    var x = Tensor(zeros: [samples, steps, 1])
    var y = Tensor(zeros: [samples, steps, 1])
    for n in 0..<samples {
      let start = Double(rng.nextUnitFloat()) * 2 * Double.pi
      for t in 0..<steps {
        let s = Float(sin(start + 0.1 * Double(t)))
        x.scalars[n * steps + t] = s
        y.scalars[n * steps + t] = s * s
      }
    }
    return (x, y)
  }

  public static func run(epochs: Int = 20, samples: Int = 1000, progress: ((FitProgress) -> Void)? = nil) throws -> Result {
    var rng = SplitMix64(seed: 1)
    let (x, y) = data(samples: samples, steps: 20, using: &rng)
    let (testX, testY) = data(samples: 200, steps: 20, using: &rng)
    var model = try Sequential(inputFeatures: 1, [.gru(64, returnSequences: true), .dense(1)], using: &rng)
    model.compile(loss: .meanSquaredError, optimizer: OptimizerConfiguration(kind: .adam, learningRate: 1e-2), metrics: [.meanAbsoluteError])
    let history = try model.fit(x, y, epochs: epochs, batchSize: 32, validationSplit: 0.1, using: &rng, progress: progress)
    let test = try model.evaluate(testX, testY)
    return Result(history: history, testMSE: test["loss"]!, baselineMSE: 0.125)
  }
}
