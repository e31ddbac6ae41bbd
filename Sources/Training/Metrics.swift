import Formats
import Foundation

extension TrainingEvent {
  /// The event as one JSON object (the one JSON writer: non-finite numbers are null).
  public var jsonValue: JSONValue {
    switch self {
    case .started(let parameters, let trainTokens, let validTokens, let vocabularySize, let resumed, let changes):
      return [
        "event": "started", "parameters": .int(parameters), "train_tokens": .int(trainTokens),
        "valid_tokens": .int(validTokens), "vocab_size": .int(vocabularySize), "resumed_at_step": .optional(resumed),
        "changes": .array(changes.map { .string($0) }),
      ]
    case .step(let step, let epoch, let loss, let lr, let norm, let rate, let elapsed, let eta):
      return [
        "event": "step", "step": .int(step), "epoch": .number(epoch), "train_loss": .number(loss),
        "learning_rate": .number(lr), "gradient_norm": .number(norm), "tokens_per_second": .number(rate),
        "elapsed_seconds": .number(elapsed),
        "eta_seconds": .optional(eta),
      ]
    case .evaluation(let step, let trainLoss, let validLoss, let rate, let elapsed):
      return [
        "event": "eval", "step": .int(step), "train_loss": .number(trainLoss), "val_loss": .number(validLoss),
        "val_bits_per_token": .number(validLoss / log(2)), "val_perplexity": .number(exp(validLoss)),
        "tokens_per_second": .number(rate), "elapsed_seconds": .number(elapsed),
      ]
    case .sample(let step, let text):
      return ["event": "sample", "step": .int(step), "text": .string(text)]
    case .checkpoint(let step, let path):
      return ["event": "checkpoint", "step": .int(step), "path": .string(path)]
    case .finished(let step, let reason, let validLoss, let elapsed):
      return [
        "event": "finished", "step": .int(step), "reason": .string(reason), "val_loss": .optional(validLoss),
        "elapsed_seconds": .number(elapsed),
      ]
    }
  }

  /// One JSON object, as `recurrent train --json` prints and the metrics log stores.
  public var json: String { jsonValue.text }
}

/// Appends training events as JSON lines to `PATH.metrics.jsonl` and redraws the loss curve
/// `PATH.loss.svg` beside a checkpoint `PATH.safetensors` (train loss per step, validation
/// loss per evaluation, over the whole run including earlier, resumed parts).
public final class MetricsLog {
  /// `PATH.metrics.jsonl`: one JSON event per line.
  public let logPath: String
  /// `PATH.loss.svg`: the loss curves, redrawn at the end of a run.
  public let svgPath: String
  private var handle: FileHandle?

  /// Opens the log beside `checkpointPath`: appended to when `resuming`, else started anew.
  public init(checkpointPath: String, resuming: Bool) throws {
    let base = checkpointPath.hasSuffix(".safetensors") ? String(checkpointPath.dropLast(12)) : checkpointPath
    logPath = base + ".metrics.jsonl"
    svgPath = base + ".loss.svg"
    if !resuming || !FileManager.default.fileExists(atPath: logPath) {
      guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
        throw FileError.writeFailed(path: logPath, reason: "cannot create the file")
      }
    }
    handle = FileHandle(forWritingAtPath: logPath)
    handle?.seekToEndOfFile()
  }

  deinit { try? handle?.close() }

  /// Records step (every 10th), evaluation and finish events.
  public func record(_ event: TrainingEvent) {
    switch event {
    case .step(let step, _, _, _, _, _, _, _) where step % 10 != 0: return
    case .sample, .checkpoint: return
    default: break
    }
    handle?.write(Data((event.json + "\n").utf8))
  }

  /// Redraws the SVG from the whole log.
  public func drawCurve() throws {
    guard let data = try? readFile(logPath) else { return }
    let text = String(decoding: data, as: UTF8.self)
    var train: [(Double, Double)] = []
    var valid: [(Double, Double)] = []
    for line in text.split(separator: "\n") {
      guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
        let kind = object["event"] as? String, let step = object["step"] as? Double
      else { continue }
      if kind == "step", let loss = object["train_loss"] as? Double { train.append((step, loss)) }
      if kind == "eval", let loss = object["val_loss"] as? Double { valid.append((step, loss)) }
    }
    try writeAtomically(Data(lossCurveSVG(train: train, valid: valid).utf8), to: svgPath)
  }
}

/// A self-contained SVG line chart of loss against step.
public func lossCurveSVG(train: [(Double, Double)], valid: [(Double, Double)]) -> String {
  let width = 640.0, height = 400.0, left = 60.0, right = 20.0, top = 20.0, bottom = 40.0
  let all = train + valid
  let maxStep = max(1, all.map(\.0).max() ?? 1)
  let losses = all.map(\.1).filter(\.isFinite)
  let lo = max(0, (losses.min() ?? 0) - 0.1)
  let hi = max(lo + 0.1, (losses.max() ?? 1) + 0.1)
  func x(_ s: Double) -> Double { left + (width - left - right) * s / maxStep }
  func y(_ l: Double) -> Double { top + (height - top - bottom) * (1 - (l - lo) / (hi - lo)) }
  func path(_ points: [(Double, Double)]) -> String {
    points.filter { $0.1.isFinite }.enumerated().map { i, p in
      String(format: "%@%.1f,%.1f", i == 0 ? "M" : "L", x(p.0), y(p.1))
    }.joined(separator: " ")
  }
  var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
  svg += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", left, height - bottom, width - right, height - bottom)
  svg += String(format: "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n", left, top, left, height - bottom)
  for i in 0...4 {
    let l = lo + (hi - lo) * Double(i) / 4
    svg += String(format: "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", left - 6, y(l) + 4, l)
    let s = maxStep * Double(i) / 4
    svg += String(format: "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n", x(s), height - bottom + 16, s)
  }
  svg += String(format: "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">step</text>\n", (left + width - right) / 2, height - 6)
  svg += "<text x=\"14\" y=\"\(Int(top + 10))\">loss (nats/token)</text>\n"
  svg += "<path d=\"\(path(train))\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>\n"
  svg += "<path d=\"\(path(valid))\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\"/>\n"
  svg += "<text x=\"\(Int(width - 160))\" y=\"\(Int(top + 14))\" fill=\"#1f77b4\">train</text>\n"
  svg += "<text x=\"\(Int(width - 100))\" y=\"\(Int(top + 14))\" fill=\"#d62728\">validation</text>\n"
  svg += "</svg>\n"
  return svg
}

extension TensorBoardWriter {
  /// Records a training event as scalars: every 10th step's train loss, learning rate,
  /// gradient norm and tokens/s; each validation's loss and bits per token.
  public func record(_ event: TrainingEvent) {
    switch event {
    case .step(let step, _, let loss, let lr, let norm, let rate, _, _) where step % 10 == 0:
      scalars(
        [("train/loss", Double(loss)), ("train/learning_rate", Double(lr)), ("train/gradient_norm", Double(norm)),
         ("train/tokens_per_second", rate)], step: step)
    case .evaluation(let step, _, let valid, _, _):
      scalars([("validation/loss", valid), ("validation/bits_per_token", valid / log(2))], step: step)
    default:
      break
    }
  }
}
