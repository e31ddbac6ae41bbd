import ArgumentParser
import Formats
import Foundation
import Recurrent
import TextCorpus
import Training

/// `recurrent eval`: mean loss of a checkpoint on a text.
struct Evaluate: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eval",
    abstract: "Measure a checkpoint's loss on a text: nats and bits per token, perplexity.",
    discussion: """
      By default the whole file is one stream from a zero state and every token after the first is
      predicted from all tokens before it, the number PyTorch gives for the same weights. --batched
      cuts the text into contiguous rows instead (faster; the first token of each row is not predicted).
      --sentences scores every line on its own from a zero state, its first token predicted after the
      line-end token (newline or <eos>) and its end predicted too, as KenLM's query and ngram eval
      --sentences do. Bits per byte are the total bits over the file's bytes.
      """)

  @Option(help: "Checkpoint (.safetensors) written by recurrent train or Tools/export_pytorch.py.") var checkpoint: String
  @Option(help: "Text to score (UTF-8).") var text: String
  @Option(help: "Score in this many contiguous rows at once (faster, not exact).") var batched: Int?
  @Flag(help: "Score every line as a sentence from a zero state, as ngram eval --sentences (default: one stream).")
  var sentences = false
  @OptionGroup var threadOptions: ThreadOptions
  @Flag(help: "Print one JSON object.") var json = false

  func validate() throws {
    try Bounds.positive(batched, "--batched")
    if sentences && batched != nil { throw ValidationError("--sentences scores line by line; drop --batched") }
  }

  func run() throws {
    let loaded = try Checkpoint.load(from: checkpoint)
    let compute = threadOptions.compute
    if sentences {
      let vocabulary = loaded.vocabulary
      let scored = try sentenceIDs(text, vocabulary: vocabulary, model: checkpoint)
      // The token before every line in training: <eos> for words, the newline otherwise.
      let start = vocabulary.id(of: Vocabulary.endOfSentence) ?? scored.lines.first?.last ?? 0
      let result = Evaluation.sentences(loaded.model, lines: scored.lines, start: start, compute: compute)
      guard result.tokens > 0 else { throw CommandError("\(text): no line to score") }
      emit(scoreLine(
        nats: result.natsPerToken * Double(result.tokens), tokens: result.tokens, bytes: scored.bytes, json: json,
        extra: ["mode": "sentences", "convention": "sentences", "sentences": .int(scored.lines.count)]))
      return
    }
    let scored = try encodeFile(text, vocabulary: loaded.vocabulary)
    let tokens = scored.ids
    guard tokens.count >= 2 else { throw CommandError("\(text): \(tokens.count) token(s); at least 2 are needed") }
    let result: EvaluationResult
    if let batched {
      let rows = min(batched, tokens.count / 2)
      result = try Evaluation.batched(loaded.model, tokens: tokens, batchSize: rows, sequenceLength: 256, compute: compute)
    } else {
      result = Evaluation.stream(loaded.model, tokens: tokens, compute: compute)
    }
    let mode = batched == nil ? "stream" : "batched"
    emit(scoreLine(
      nats: result.natsPerToken * Double(result.tokens), tokens: result.tokens, bytes: scored.bytes, json: json,
      extra: ["mode": .string(mode), "convention": .string(mode)]))
  }
}

/// `recurrent generate`: sample text from a checkpoint.
struct Generate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Sample text from a checkpoint, streaming it as it is produced.")

  @Option(help: "Checkpoint (.safetensors).") var checkpoint: String
  @Option(help: "Text to start from. [default: a newline]") var prime: String?
  @Option(help: "Tokens to generate.") var length: Int = 500
  @Option(help: "Sampling temperature (> 0).") var temperature: Float = 1
  @Option(help: "Sample only from the k most likely tokens.") var topK: Int?
  @Option(help: "Sample only from the most likely tokens whose probability reaches p (0 < p <= 1).") var topP: Float?
  @Flag(help: "Always take the most likely token.") var greedy = false
  @Option(help: "Random seed: the same seed gives the same text.") var seed: UInt64 = 0
  @Option(help: PrecisionOption.help) var precision: Precision?

  func validate() throws {
    guard length >= 0 else { throw ValidationError("--length must be >= 0") }
    guard temperature > 0 && temperature.isFinite else { throw ValidationError("--temperature must be > 0") }
    if let topK, topK <= 0 { throw ValidationError("--top-k must be > 0") }
    if let topP, !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
    if let prime, prime.isEmpty { throw ValidationError("--prime must not be empty") }
    try PrecisionOption.check(precision)
  }

  func run() throws {
    let loaded = try Checkpoint.load(from: checkpoint)
    let vocabulary = loaded.vocabulary
    let primeText = prime ?? "\n"
    let primeIDs: [Int]
    do {
      primeIDs = try vocabulary.promptIDs(primeText)
    } catch let error as CorpusError {
      throw CommandError("--prime: \(error)")
    }
    var options = SamplingOptions()
    options.temperature = temperature
    options.topK = topK
    options.topP = topP
    options.greedy = greedy
    options.seed = seed
    if prime != nil { emit(primeText) }
    var streamer = TextStreamer(vocabulary: vocabulary, atLineStart: primeText.hasSuffix("\n"))
    let compute = Compute(threads: 1, precision: precision ?? .float32)
    for id in TokenGenerator(model: loaded.model, prime: primeIDs, count: length, options: options, compute: compute) {
      emit(streamer.push(id))
    }
    emit(streamer.flush())
    if !streamer.endsLine { emit("\n") }
  }
}
