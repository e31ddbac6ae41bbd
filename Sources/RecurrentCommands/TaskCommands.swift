import ArgumentParser
import Formats
import Foundation
import Recurrent
import SequenceModels
import RecurrentExamples

extension LongMemoryTask: ExpressibleByArgument {}

/// `recurrent task`'s defaults: those of `LongMemoryTask.Options`.
enum TaskDefaults: CommandDefaults {
  static let options = LongMemoryTask.Options()
  static var cell: CellKind { options.cell }
  static var layers: Int { options.layers }
  static var hidden: Int { options.hidden }
  static var optimizer: OptimizerKind { options.optimizer.kind }
  static var learningRate: Float { options.optimizer.learningRate }
  static var clip: Float { options.clip ?? 0 }
  static var seed: UInt64 { options.seed }
}

/// `recurrent task adding|copy`: the long-memory tests.
struct TaskCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "task",
    abstract: "Long-memory tests: the adding problem and copy memory.",
    discussion: """
      adding: two marked values in [0, 1] among T steps (one in each half); the target is their sum.
      Predicting a constant scores MSE 0.167; solved means test MSE < 0.01. copy: 10 symbols from 8,
      T blanks, then recall them; metric cross-entropy per step (baseline 10 ln 8 / (T + 20)); solved
      means 99% of the recalled symbols right. Training draws fresh batches every step; the test set
      (1000 sequences) is fixed.
      """)

  @Argument(help: "adding or copy.") var task: LongMemoryTask
  @Option(help: "Sequence length T (adding). [default: \(TaskDefaults.options.length)]") var length: Int?
  @Option(help: "Delay T (copy). [default: \(TaskDefaults.options.length)]") var delay: Int?
  @OptionGroup(title: "Model") var modelOptions: ModelOptions<TaskDefaults>
  @OptionGroup(title: "Optimizer") var optimizerOptions: OptimizerOptions<TaskDefaults>
  @OptionGroup(title: "Run") var runOptions: RunOptions<TaskDefaults>
  @Option(help: "Sequences per training step. [default: \(TaskDefaults.options.batch)]") var batch: Int?
  @Option(help: "Training steps. [default: \(TaskDefaults.options.steps)]") var steps: Int?
  @Option(help: "Evaluate on the test set every N steps. [default: \(TaskDefaults.options.evalEvery)]") var evalEvery: Int?
  @Option(help: "Test sequences. [default: \(TaskDefaults.options.testSamples)]") var testSamples: Int?
  @Flag(help: "Progress as JSON lines, then one final JSON object.") var json = false

  var t: Int { (task == .adding ? length : delay) ?? TaskDefaults.options.length }

  func validate() throws {
    if task == .adding && delay != nil { throw ValidationError("--delay is for copy; use --length for adding") }
    if task == .copy && length != nil { throw ValidationError("--length is for adding; use --delay for copy") }
    if t < 2 || t > 100_000 { throw ValidationError("--\(task == .adding ? "length" : "delay") must be in 2...100000, got \(t)") }
    for (value, name) in [(batch, "--batch"), (steps, "--steps"), (evalEvery, "--eval-every"), (testSamples, "--test-samples")] {
      try Bounds.positive(value, name)
    }
  }

  func run() throws {
    var o = LongMemoryTask.Options()
    o.cell = modelOptions.cellKind
    o.layers = modelOptions.layerCount
    o.hidden = modelOptions.hiddenSize
    o.dropout = modelOptions.dropoutProbability
    o.initialization = modelOptions.initialization ?? .pytorch
    o.forgetBias = modelOptions.forgetBias
    o.length = t
    if let batch { o.batch = batch }
    if let steps { o.steps = steps }
    o.optimizer = optimizerOptions.configuration(base: o.optimizer)
    o.clip = optimizerOptions.clipNorm(base: o.clip)
    if let evalEvery { o.evalEvery = evalEvery }
    if let testSamples { o.testSamples = testSamples }
    o.seed = runOptions.randomSeed
    o.threads = runOptions.compute.threads
    let metricName = task == .adding ? "test_mse" : "test_nats"
    let result = try task.run(o) { p in
      if json {
        emit(
          jsonLine([
            "event": "progress", "step": .int(p.step), "train_loss": .number(p.trainLoss), metricName: .number(p.testMetric),
            "seconds": .number(p.seconds),
          ]))
      } else {
        emit(String(format: "step %6d  train loss %.4f  %@ %.4f  (%.0f s)\n", p.step, p.trainLoss, metricName, p.testMetric, p.seconds))
      }
    }
    if json {
      var fields: [String: JSONValue] = [
        "task": .string(task.rawValue), "cell": .string(o.cell.rawValue), "length": .int(t), "steps": .int(o.steps),
        "test_metric": .number(result.testMetric), "baseline": .number(result.baseline), "seconds": .number(result.seconds),
        "solved": .bool(result.solved), "hidden": .int(o.hidden), "batch": .int(o.batch),
        "solved_at_step": .optional(result.solvedAtStep),
      ]
      if let recall = result.recallAccuracy { fields["recall_accuracy"] = .number(recall) }
      emit(jsonLine(fields))
    } else {
      var line = "\(task.rawValue) T=\(t) \(o.cell.rawValue): \(metricName) \(format(result.testMetric)) (baseline \(format(result.baseline)))"
      if let recall = result.recallAccuracy { line += String(format: ", recall accuracy %.3f", recall) }
      line += result.solved ? ", solved" : ", not solved"
      line += result.solvedAtStep.map { " (first solved at step \($0))" } ?? ""
      line += String(format: " in %d steps, %.0f s", o.steps, result.seconds)
      emit(line + "\n")
    }
  }
}

/// `recurrent example NAME`: the runnable examples in Examples/.
struct ExampleCommand: ParsableCommand {
  enum Name: String, ExpressibleByArgument, CaseIterable {
    case sineSquared = "sine-squared", binaryClassifier = "binary-classifier", gruCellLoop = "gru-cell-loop"
  }

  static let configuration = CommandConfiguration(
    commandName: "example",
    abstract: "Run an example: sine-squared, binary-classifier or gru-cell-loop (source in Examples/).")

  @Argument(help: "sine-squared, binary-classifier or gru-cell-loop.") var name: Name

  func run() throws {
    let report: (FitProgress) -> Void = { event in
      guard case .epoch(let log) = event else { return }
      var line = "epoch \(log.epoch)  loss \(format(log.loss))"
      for (k, v) in log.metrics.sorted(by: { $0.key < $1.key }) { line += "  \(k) \(format(v))" }
      if let v = log.validationLoss { line += "  val_loss \(format(v))" }
      emit(line + "\n")
    }
    switch name {
    case .sineSquared:
      let r = try SineSquaredExample.run(progress: report)
      emit("test MSE \(format(r.testMSE)) (predicting the mean: \(format(r.baselineMSE)))\n")
    case .binaryClassifier:
      let r = try BinaryClassifierExample.run(progress: report)
      emit("test accuracy \(format(r.testAccuracy)), test loss \(format(r.testLoss))\n")
    case .gruCellLoop:
      let r = GRUCellLoopExample.run()
      for (i, loss) in r.losses.enumerated() where i % 50 == 0 || i == r.losses.count - 1 {
        emit("iteration \(i)  loss \(format(Double(loss)))\n")
      }
    }
  }
}
