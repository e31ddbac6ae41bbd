import Foundation
import Recurrent
import TextCorpus

/// Mean loss of a language model over a token stream.
public struct EvaluationResult: Sendable, Equatable {
  /// Tokens predicted (every token after the first, per stream).
  public var tokens: Int
  /// Mean negative log-likelihood per predicted token, in nats.
  public var natsPerToken: Double
  /// Mean bits per predicted token.
  public var bitsPerToken: Double { natsPerToken / 0.693_147_180_559_945_3 }
  /// `exp(natsPerToken)`.
  public var perplexity: Double { exp(natsPerToken) }
}

/// Scoring a language model on a token stream.
public enum Evaluation {
  /// Exact evaluation: one stream from a zero state, every token after the first predicted
  /// from all tokens before it (the number PyTorch gives for the same weights). The stream is
  /// processed in windows of `window` tokens with the state carried, which changes nothing.
  public static func stream(
    _ model: LanguageModel, tokens: [Int], window: Int = 512, compute: Compute = .singleThread
  ) -> EvaluationResult {
    stream(model, ids: TokenIDs(tokens), window: window, compute: compute)
  }

  /// `stream` over ids that may be read in place from a token file.
  public static func stream(
    _ model: LanguageModel, ids tokens: TokenIDs, window: Int = 512, compute: Compute = .singleThread
  ) -> EvaluationResult {
    guard tokens.count >= 2 else { return EvaluationResult(tokens: 0, natsPerToken: .nan) }
    var state: RecurrentState? = nil
    var total = 0.0
    var count = 0
    var start = 0
    while start < tokens.count - 1 {
      let length = min(window, tokens.count - 1 - start)
      let inputs = Array(tokens[start..<(start + length)])
      let targets = Array(tokens[(start + 1)...(start + length)])
      let (logits, newState) = model.logits(
        ids: inputs, sequenceLength: length, batchSize: 1, state: state, compute: compute)
      total += Double(Loss.softmaxCrossEntropy(logits: logits, targets: targets, compute: compute).loss) * Double(length)
      count += length
      state = newState
      start += length
    }
    return EvaluationResult(tokens: count, natsPerToken: total / Double(count))
  }

  /// Sentence evaluation (KenLM's and SRILM's convention): each line scored on its own from a
  /// zero state, its first token predicted after `start` (the newline or `<eos>` token, which
  /// the model saw before every line in training) and its last token (the line's end, which
  /// `lines` include) predicted too. `tokens` counts every token of every line.
  public static func sentences(
    _ model: LanguageModel, lines: [[Int]], start: Int, compute: Compute = .singleThread
  ) -> EvaluationResult {
    var total = 0.0
    var count = 0
    for line in lines where !line.isEmpty {
      let scored = stream(model, tokens: [start] + line, compute: compute)
      total += scored.natsPerToken * Double(scored.tokens)
      count += scored.tokens
    }
    return EvaluationResult(tokens: count, natsPerToken: count > 0 ? total / Double(count) : .nan)
  }

  /// Faster batched evaluation: the stream cut into `batchSize` contiguous rows, each scored
  /// from a zero state (the first token of each row is not predicted).
  public static func batched(
    _ model: LanguageModel, tokens: [Int], batchSize: Int, sequenceLength: Int, compute: Compute = .singleThread
  ) throws -> EvaluationResult {
    try batched(model, ids: TokenIDs(tokens), batchSize: batchSize, sequenceLength: sequenceLength, compute: compute)
  }

  /// `batched` over ids that may be read in place from a token file.
  public static func batched(
    _ model: LanguageModel, ids tokens: TokenIDs, batchSize: Int, sequenceLength: Int, compute: Compute = .singleThread
  ) throws -> EvaluationResult {
    let layout = try BatchLayout(ids: tokens, batchSize: batchSize, sequenceLength: sequenceLength)
    var state: RecurrentState? = nil
    var total = 0.0
    var count = 0
    for k in 0..<layout.windowCount {
      let (inputs, targets, length) = layout.window(k)
      let (logits, newState) = model.logits(
        ids: inputs, sequenceLength: length, batchSize: batchSize, state: state, compute: compute)
      total += Double(Loss.softmaxCrossEntropy(logits: logits, targets: targets, compute: compute).loss) * Double(targets.count)
      count += targets.count
      state = newState
    }
    return EvaluationResult(tokens: count, natsPerToken: total / Double(count))
  }
}
