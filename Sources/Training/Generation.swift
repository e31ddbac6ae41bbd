import Recurrent
import TextCorpus

/// How the next token is drawn from the model's distribution.
public struct SamplingOptions: Sendable, Equatable {
  /// Logits are divided by this before the softmax (lower is more conservative).
  public var temperature: Float = 1
  /// Keep only the k most likely tokens.
  public var topK: Int? = nil
  /// Keep the smallest set of most likely tokens whose probability reaches p (nucleus).
  public var topP: Float? = nil
  /// Always take the most likely token.
  public var greedy = false
  /// Seed of the draws: the same seed gives the same tokens.
  public var seed: UInt64 = 0
  /// Temperature 1, no top-k or top-p, sampling (not greedy), seed 0.
  public init() {}
}

/// Draws tokens one at a time from a language model, carrying the hidden state: a sequence
/// of token ids that the caller can stream. The same seed gives the same tokens.
public struct TokenGenerator: IteratorProtocol, Sequence {
  let stepper: LanguageModelStepper
  let options: SamplingOptions
  var rng: SplitMix64
  var logits: [Float]
  var remaining: Int

  /// Tokens sampled from `model` one at a time.
  /// - Parameters:
  ///   - model: the language model (its weights are copied into a stepper).
  ///   - prime: tokens fed first (at least one); generation continues after them.
  ///   - count: tokens to generate.
  ///   - options: temperature, top-k, top-p, greedy, seed.
  ///   - compute: threads for the step's products.
  public init(
    model: LanguageModel, prime: [Int], count: Int, options: SamplingOptions, compute: Compute = .singleThread
  ) {
    precondition(!prime.isEmpty, "TokenGenerator: the prime needs at least one token")
    stepper = LanguageModelStepper(model, compute: compute)
    self.options = options
    rng = SplitMix64(seed: options.seed)
    remaining = count
    var last = UnsafeBufferPointer<Float>(start: nil, count: 0)
    for token in prime { last = stepper.step(token) }
    logits = Array(last)
  }

  /// The next generated token, or nil after `count` of them.
  public mutating func next() -> Int? {
    guard remaining > 0 else { return nil }
    remaining -= 1
    let token = Self.sample(logits: logits, options: options, using: &rng)
    let next = stepper.step(token)
    logits.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: next.baseAddress!, count: next.count) }
    return token
  }

  /// One draw from softmax(logits / temperature) restricted by top-k and top-p.
  public static func sample(logits: [Float], options: SamplingOptions, using rng: inout some RandomNumberGenerator) -> Int {
    if options.greedy || options.temperature <= 0 {
      var best = 0
      for i in logits.indices where logits[i] > logits[best] { best = i }
      return best
    }
    var order = Array(logits.indices).sorted { logits[$0] > logits[$1] }
    if let k = options.topK, k > 0, k < order.count { order.removeLast(order.count - k) }
    let maximum = logits[order[0]]
    var probabilities = order.map { Double(_exp((logits[$0] - maximum) / options.temperature)) }
    var total = probabilities.reduce(0, +)
    if let p = options.topP, p > 0, p < 1 {
      var cumulative = 0.0
      var keep = 0
      for q in probabilities {
        cumulative += q / total
        keep += 1
        if cumulative >= Double(p) { break }
      }
      order.removeLast(order.count - keep)
      probabilities.removeLast(probabilities.count - keep)
      total = probabilities.reduce(0, +)
    }
    let u = Double(rng.next() >> 11) * 0x1p-53 * total
    var cumulative = 0.0
    for (i, q) in probabilities.enumerated() {
      cumulative += q
      if u < cumulative { return order[i] }
    }
    return order[order.count - 1]
  }
}

extension Vocabulary {
  /// Token ids of a prompt typed as UTF-8 text, as `recurrent generate` and the server read it: a
  /// byte-encoded model reads its bytes; for word models a prompt that does not end with a newline
  /// does not end its sentence (no final `<eos>`); an empty prompt is a newline (`<eos>` for
  /// words), what preceded every line in training.
  public func promptIDs(_ text: String) throws -> [Int] {
    let typed = text.isEmpty ? "\n" : text
    var ids = try encode(encoding == .bytes ? latin1String(typed.utf8) : typed)
    if kind == .word && !typed.hasSuffix("\n"), ids.last == id(of: Vocabulary.endOfSentence) { ids.removeLast() }
    if ids.isEmpty { ids = [id(of: "\n") ?? id(of: Vocabulary.endOfSentence) ?? 0] }
    return ids
  }
}

/// Turns generated token ids into text as it streams: words joined by spaces (none at a line
/// start), characters as they are, and the bytes of byte-level vocabularies reassembled into
/// UTF-8 (a character split across tokens is written once complete; bytes that are not UTF-8
/// as `\xHH`). The text of a stream never splits a character.
public struct TextStreamer: Sendable {
  let vocabulary: Vocabulary
  var assembler = UTF8Assembler()
  var atLineStart: Bool

  /// A streamer whose text follows a prompt that ended a line (`atLineStart`) or not.
  public init(vocabulary: Vocabulary, atLineStart: Bool) {
    self.vocabulary = vocabulary
    self.atLineStart = atLineStart
  }

  /// The text token `id` adds (empty while a character is incomplete).
  public mutating func push(_ id: Int) -> String {
    let piece: String
    if let bytes = vocabulary.bytes(of: id) {
      piece = bytes.map { assembler.push($0) }.joined()
    } else {
      piece = vocabulary.piece(id, first: atLineStart)
    }
    if !piece.isEmpty { atLineStart = piece.hasSuffix("\n") }
    return piece
  }

  /// Whatever is still held back (an incomplete character, escaped), at the end of a stream.
  public mutating func flush() -> String {
    let rest = assembler.flush()
    if !rest.isEmpty { atLineStart = false }
    return rest
  }

  /// Whether the text so far ends a line.
  public var endsLine: Bool { atLineStart }
}
