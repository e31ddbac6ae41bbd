import Foundation
import Recurrent
import SequenceModels

/// Example 2: three stacked GRU(128) layers, Dense relu layers and a sigmoid output classify
/// noisy sine waves as slow or fast (Keras: `GRU(128, return_sequences=True)` ×2, `GRU(128)`,
/// `Dense(64, relu)`, `Dense(32, relu)`, `Dense(1, sigmoid)`, binary cross-entropy).
public enum BinaryClassifierExample {
  public struct Result: Sendable {
    public var history: History
    public var testAccuracy: Double
    public var testLoss: Double
  }

  /// Sequences of `steps` samples of sin(f·t + φ) plus noise; label 1 when f is the fast one.
  public static func data(samples: Int, steps: Int, using rng: inout some RandomNumberGenerator) -> (x: Tensor, y: Tensor) {
    var x = Tensor(zeros: [samples, steps, 1])
    var y = Tensor(zeros: [samples, 1])
    for n in 0..<samples {
      let fast = rng.next() % 2 == 0
      let frequency = fast ? 0.9 : 0.45
      let phase = Double(rng.nextUnitFloat()) * 2 * Double.pi
      for t in 0..<steps {
        let noise = Double(rng.nextUnitFloat() - 0.5) * 0.6
        x.scalars[n * steps + t] = Float(sin(frequency * Double(t) + phase) + noise)
      }
      y.scalars[n] = fast ? 1 : 0
    }
    return (x, y)
  }

  public static func run(epochs: Int = 8, samples: Int = 1024, progress: ((FitProgress) -> Void)? = nil) throws -> Result {
    var rng = SplitMix64(seed: 1)
    let (x, y) = data(samples: samples, steps: 24, using: &rng)
    let (testX, testY) = data(samples: 256, steps: 24, using: &rng)
    var model = try Sequential(inputFeatures: 1, [
      .gru(128, returnSequences: true),
      .gru(128, returnSequences: true),
      .gru(128),
      .dense(64, activation: .relu),
      .dense(32, activation: .relu),
      .dense(1, activation: .sigmoid),
    ], using: &rng)
    model.compile(
      loss: .binaryCrossEntropy, optimizer: OptimizerConfiguration(kind: .adam, learningRate: 1e-3),
      metrics: [.binaryAccuracy])
    let history = try model.fit(x, y, epochs: epochs, batchSize: 32, validationSplit: 0.1, using: &rng, progress: progress)
    let test = try model.evaluate(testX, testY)
    return Result(history: history, testAccuracy: test["binary_accuracy"]!, testLoss: test["loss"]!)
  }
}
