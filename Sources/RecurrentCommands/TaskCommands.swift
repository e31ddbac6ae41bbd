import ArgumentParser
import Formats
import Foundation
import Recurrent
import SequenceModels
import RecurrentExamples

extension LongMemoryTask: ExpressibleByArgument {}

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
  @Option(help: "Cell: gru, gru-reset-before, lstm, rnn-tanh, rnn-relu.") var cell: CellKind = .gru
  @Option(help: "Sequence length T (adding).") var length: Int?
  @Option(help: "Delay T (copy).") var delay: Int?
  @Option(help: "Hidden units.") var hidden: Int = 128
  @Option(help: "Sequences per training step.") var batch: Int = 50
  @Option(help: "Training steps.") var steps: Int = 3000
  @Option(help: "Adam learning rate.") var lr: Float = 3e-3
  @Option(help: "Clip gradients to this global norm (0: off).") var clip: Float = 1
  @Option(help: "Evaluate on the test set every N steps.") var evalEvery: Int = 100
  @Option(help: "Test sequences.") var testSamples: Int = 1000
  @Option(help: "Random seed.") var seed: UInt64 = 1
  @Option(help: "Threads. [default: all cores]") var threads: Int?
  @Flag(help: "Progress as JSON lines, then one final JSON object.") var json = false

  var t: Int { (task == .adding ? length : delay) ?? 100 }

  func validate() throws {
    if task == .adding && delay != nil { throw ValidationError("--delay is for copy; use --length for adding") }
    if task == .copy && length != nil { throw ValidationError("--length is for adding; use --delay for copy") }
    if t < 2 || t > 100_000 { throw ValidationError("--\(task == .adding ? "length" : "delay") must be in 2...100000, got \(t)") }
    for (value, name) in [(hidden, "--hidden"), (batch, "--batch"), (steps, "--steps"), (evalEvery, "--eval-every"), (testSamples, "--test-samples")] where value <= 0 {
      throw ValidationError("\(name) must be > 0, got \(value)")
    }
    if hidden > 65536 { throw ValidationError("--hidden must be <= 65536") }
    if !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number, got \(lr)") }
    if !(clip >= 0 && clip.isFinite) { throw ValidationError("--clip must be >= 0, got \(clip)") }
    if let threads, threads <= 0 { throw ValidationError("--threads must be > 0, got \(threads)") }
  }

  func run() throws {
    var o = LongMemoryTask.Options()
    o.cell = cell
    o.length = t
    o.hidden = hidden
    o.batch = batch
    o.steps = steps
    o.learningRate = lr
    o.clip = clip > 0 ? clip : nil
    o.evalEvery = evalEvery
    o.testSamples = testSamples
    o.seed = seed
    if let threads { o.threads = threads }
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
        "task": .string(task.rawValue), "cell": .string(cell.rawValue), "length": .int(t), "steps": .int(steps),
        "test_metric": .number(result.testMetric), "baseline": .number(result.baseline), "seconds": .number(result.seconds),
        "solved": .bool(result.solved), "hidden": .int(hidden), "batch": .int(batch),
        "solved_at_step": .optional(result.solvedAtStep),
      ]
      if let recall = result.recallAccuracy { fields["recall_accuracy"] = .number(recall) }
      emit(jsonLine(fields))
    } else {
      var line = "\(task.rawValue) T=\(t) \(cell.rawValue): \(metricName) \(format(result.testMetric)) (baseline \(format(result.baseline)))"
      if let recall = result.recallAccuracy { line += String(format: ", recall accuracy %.3f", recall) }
      line += result.solved ? ", solved" : ", not solved"
      line += result.solvedAtStep.map { " (first solved at step \($0))" } ?? ""
      line += String(format: " in %d steps, %.0f s", steps, result.seconds)
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
