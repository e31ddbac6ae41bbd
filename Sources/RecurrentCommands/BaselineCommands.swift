import ArgumentParser
import Baselines
import Formats
import Foundation
import Recurrent
import TextCorpus

extension TextDataOptions {
  /// The vocabulary (as `recurrent train` builds it, or `--tokenizer-from`'s) and the training
  /// stream of a baseline.
  func baselineTrainingData() throws -> (Vocabulary, [Int]) {
    if let source = try sourceVocabulary() { return (source, try encodeFile(textPath, vocabulary: source).ids) }
    let train = try read(textPath)
    let valid = try validText.map { try read($0) }
    let vocabulary = vocabulary(train: train, valid: valid, kind: tokenizerKind)
    return (vocabulary, try encodeFile(textPath, vocabulary: vocabulary).ids)
  }
}

/// The evaluation line every eval prints: nats and bits per token, perplexity, and bits per
/// byte of the scored file (total bits over its bytes, so models with different tokenizers
/// compare).
func scoreLine(nats: Double, tokens: Int, bytes: Int, json: Bool, extra: [String: JSONValue] = [:]) -> String {
  let perToken = tokens > 0 ? nats / Double(tokens) : 0
  let perByte = bytes > 0 ? nats / log(2.0) / Double(bytes) : 0
  if json {
    var fields: [String: JSONValue] = [
      "tokens": .int(tokens), "nats_per_token": .number(perToken), "bits_per_token": .number(perToken / log(2.0)),
      "perplexity": .number(exp(perToken)), "bytes": .int(bytes), "bits_per_byte": .number(perByte),
    ]
    fields.merge(extra) { $1 }
    return jsonLine(fields)
  }
  let convention = extra["convention"].flatMap { if case .string(let c) = $0 { " (\(c))" } else { nil } } ?? ""
  return String(
    format: "%d tokens%@: %.4f nats/token, %.4f bits/token, perplexity %.3f, %.4f bits/byte\n", tokens, convention,
    perToken, perToken / log(2.0), exp(perToken), perByte)
}

/// Each line of `path` as token ids ending with its end: `</s>` (`<eos>`) for words, the
/// newline for characters, bytes and BPE (the sentence convention of KenLM and SRILM); and the
/// file's length in bytes.
func sentenceIDs(_ path: String, vocabulary: Vocabulary, model: String) throws -> (lines: [[Int]], bytes: Int) {
  let newline = vocabulary.kind == .word ? nil : (try? vocabulary.encode("\n")).flatMap { $0.count == 1 ? $0[0] : nil }
  guard let end = vocabulary.id(of: Vocabulary.endOfSentence) ?? newline else {
    throw CommandError("--sentences: \(model) has neither </s> nor a newline token to end a sentence")
  }
  let text = try readText(path: path, encoding: vocabulary.encoding)
  var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
  if lines.last == "" { lines.removeLast() }
  do {
    let ids = try lines.map { line in
      let ids = try vocabulary.encode(String(line))
      return vocabulary.kind == .word ? ids : ids + [end]  // word encoding ends each line with <eos>
    }
    return (ids, vocabulary.byteCount(of: text))
  } catch let error as CorpusError {
    throw CommandError("\(path): \(error)")
  }
}

/// The vocabulary of an ARPA model: its own token names read with `tokenizer` and `encoding`,
/// or `--tokenizer-from`'s, whose tokens must be the model's.
func arpaVocabulary(
  _ m: NGramModel, model: String, tokenizer: TokenizerKind?, encoding: TextEncoding?, tokenizerFrom: String?
) throws -> Vocabulary {
  guard let tokenizerFrom else {
    if tokenizer == .bpe { throw ValidationError("--tokenizer bpe needs --tokenizer-from CHECKPOINT: an ARPA file holds no merges") }
    return Vocabulary(kind: tokenizer ?? .char, tokens: m.tokens, encoding: encoding ?? .utf8)
  }
  if tokenizer != nil || encoding != nil {
    throw ValidationError("--tokenizer-from takes the checkpoint's tokenizer and encoding; drop \(tokenizer != nil ? "--tokenizer" : "--encoding")")
  }
  let vocabulary = try tokenizerVocabulary(tokenizerFrom)
  guard vocabulary.tokens == m.tokens else {
    throw CommandError(
      "\(model) has \(m.tokens.count) tokens that are not the \(vocabulary.count) tokens of --tokenizer-from \(tokenizerFrom)")
  }
  return vocabulary
}


struct NGram: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ngram", abstract: "Interpolated modified Kneser-Ney n-gram models (ARPA files).",
    subcommands: [NGramTrain.self, NGramEval.self, NGramGenerate.self])
}

struct NGramTrain: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train",
    abstract: "Train an interpolated modified Kneser-Ney model and write it as ARPA.",
    discussion: """
      The text is one token stream, as the neural models see it (characters, or words with <eos> at
      each line end); <eos> is written as </s> in the ARPA file and <s> is listed with -99.
      """)
  @OptionGroup(title: "Data (a --valid-text is scored)") var data: TextDataOptions
  @Option(help: "Order N.") var order: Int = 5
  @Option(help: "Where to write the ARPA file.") var out: String = "model.arpa"
  @Flag(help: "JSON output.") var json = false

  func validate() throws {
    if order < 1 || order > 12 { throw ValidationError("--order must be in 1...12, got \(order)") }
    if out.isEmpty { throw ValidationError("--out must not be empty") }
  }

  func run() throws {
    try ensureWritable(out, option: "--out")
    let started = Date()
    let (vocabulary, stream) = try data.baselineTrainingData()
    let model: NGramModel
    do { model = try NGramModel.train(order: order, tokens: vocabulary.tokens, stream: stream) } catch let e as BaselineError {
      throw CommandError("\(data.textPath): \(e)")
    }
    let trained = Date().timeIntervalSince(started)
    try model.writeARPA(path: out)
    var extra: [String: JSONValue] = [
      "event": "trained", "order": .int(order), "train_tokens": .int(stream.count), "ngrams": .ints(model.counts),
      "train_seconds": .number(trained), "out": .string(out),
    ]
    if let validText = data.validText {
      let valid = try encodeFile(validText, vocabulary: vocabulary)
      let (nats, count) = model.score(valid.ids)
      emit(scoreLine(nats: nats, tokens: count, bytes: valid.bytes, json: json, extra: extra))
    } else if json {
      extra["tokens"] = .int(stream.count)
      emit(jsonLine(extra))
    } else {
      emit("wrote \(out): order \(order), n-grams \(model.counts), \(stream.count) training tokens, \(String(format: "%.1f", trained)) s\n")
    }
  }
}

struct NGramEval: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eval", abstract: "Score a text with an ARPA model: every token after the first, as `recurrent eval`.")
  @Option(help: "ARPA file (ours, KenLM's or SRILM's).") var model: String
  @Option(help: "Text to score.") var text: String
  @Option(help: "Tokenizer the model was trained with: char or word. [default: char]") var tokenizer: TokenizerKind?
  @Option(help: "Encoding the model was trained with: utf8, latin1 or bytes. [default: utf8]") var encoding: TextEncoding?
  @Option(help: "Tokenize as this checkpoint does (a language model or HMM; needed for BPE models).") var tokenizerFrom: String?
  @Flag(help: "Score every line as a sentence from <s> to </s>, as KenLM's query and SRILM's ngram -ppl do (default: one stream).")
  var sentences = false
  @Flag(help: "JSON output.") var json = false

  func run() throws {
    let m = try NGramModel.readARPA(path: model)
    let vocabulary = try arpaVocabulary(m, model: model, tokenizer: tokenizer, encoding: encoding, tokenizerFrom: tokenizerFrom)
    guard sentences else {
      let scored = try encodeFile(text, vocabulary: vocabulary)
      let (nats, count) = m.score(scored.ids)
      emit(scoreLine(
        nats: nats, tokens: count, bytes: scored.bytes, json: json, extra: ["order": .int(m.order), "convention": "stream"]))
      return
    }
    let sentences = try sentenceIDs(text, vocabulary: vocabulary, model: model)
    let (nats, count) = m.scoreSentences(sentences.lines)
    emit(scoreLine(
      nats: nats, tokens: count, bytes: sentences.bytes, json: json,
      extra: ["order": .int(m.order), "convention": "sentences", "sentences": .int(sentences.lines.count)]))
  }
}

struct NGramGenerate: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "generate", abstract: "Sample text from an ARPA model.")
  @Option(help: "ARPA file.") var model: String
  @Option(help: "Text to start from.") var prime: String = ""
  @Option(help: "Tokens to generate.") var length: Int = 200
  @Option(help: "Tokenizer the model was trained with: char or word. [default: char]") var tokenizer: TokenizerKind?
  @Option(help: "Encoding the model was trained with: utf8, latin1 or bytes. [default: utf8]") var encoding: TextEncoding?
  @Option(help: "Tokenize as this checkpoint does (a language model or HMM; needed for BPE models).") var tokenizerFrom: String?
  @Option(help: "Sampling temperature (> 0; below 1 sharper, above 1 flatter).") var temperature: Double = 1
  @Option(help: "Random seed.") var seed: UInt64 = 1

  func validate() throws {
    if length < 0 { throw ValidationError("--length must be >= 0, got \(length)") }
    if !(temperature > 0 && temperature.isFinite) { throw ValidationError("--temperature must be > 0, got \(temperature)") }
  }

  func run() throws {
    let m = try NGramModel.readARPA(path: model)
    let vocabulary = try arpaVocabulary(m, model: model, tokenizer: tokenizer, encoding: encoding, tokenizerFrom: tokenizerFrom)
    let primeIds: [Int]
    do {
      primeIds = try vocabulary.encode(vocabulary.encoding == .bytes ? latin1String(prime.utf8) : prime)
    } catch { throw CommandError("--prime: \(error)") }
    emit(prime)
    var rng = SplitMix64(seed: seed)
    var assembler = UTF8Assembler()
    for (i, id) in m.generate(prime: primeIds, count: length, temperature: temperature, using: &rng).enumerated() {
      emit(vocabulary.bytes(of: id).map { $0.map { assembler.push($0) }.joined() } ?? vocabulary.piece(id, first: i == 0 && prime.isEmpty))
    }
    emit(assembler.flush() + "\n")
  }
}

struct HMM: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hmm", abstract: "Discrete hidden Markov model language models (Baum-Welch).",
    subcommands: [HMMTrain.self, HMMEval.self])
}

struct HMMTrain: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "train", abstract: "Train an HMM language model by Baum-Welch from several random starts.")
  @OptionGroup(title: "Data (a --valid-text is scored)") var data: TextDataOptions
  @Option(help: "Hidden states K.") var states: Int = 32
  @Option(help: "Random restarts; the best is kept.") var restarts: Int = 3
  @Option(help: "Most iterations per restart.") var iterations: Int = 50
  @Option(help: "Stop a restart when the log-likelihood gains less than this (relative).") var tolerance: Double = 1e-5
  @Option(help: "Random seed.") var seed: UInt64 = 1
  @Option(help: "Where to write the model (.safetensors).") var out: String = "hmm.safetensors"
  @Flag(help: "JSON output.") var json = false

  func validate() throws {
    if states < 1 || states > 4096 { throw ValidationError("--states must be in 1...4096, got \(states)") }
    if restarts < 1 { throw ValidationError("--restarts must be >= 1") }
    if iterations < 1 { throw ValidationError("--iterations must be >= 1") }
    if !(tolerance >= 0 && tolerance.isFinite) { throw ValidationError("--tolerance must be >= 0") }
    if out.isEmpty { throw ValidationError("--out must not be empty") }
  }

  func run() throws {
    try ensureWritable(out, option: "--out")
    let started = Date()
    let (vocabulary, stream) = try data.baselineTrainingData()
    var rng = SplitMix64(seed: seed)
    let (model, ll) = try HiddenMarkovModel.train(
      stream: stream, states: states, symbols: vocabulary.count, restarts: restarts, iterations: iterations,
      tolerance: tolerance, using: &rng
    ) { log in
      if json {
        emit(
          jsonLine([
            "event": "iteration", "restart": .int(log.restart), "iteration": .int(log.iteration),
            "log_likelihood": .number(log.logLikelihood),
          ]))
      } else {
        emit(String(format: "restart %d iteration %3d  log-likelihood %.1f\n", log.restart, log.iteration, log.logLikelihood))
      }
    }
    try model.save(to: out, vocabulary: vocabulary)
    let extra: [String: JSONValue] = [
      "event": "trained", "states": .int(states), "train_log_likelihood": .number(ll),
      "train_seconds": .number(Date().timeIntervalSince(started)), "out": .string(out),
    ]
    if let validText = data.validText {
      let valid = try encodeFile(validText, vocabulary: vocabulary)
      let (nats, count) = model.score(valid.ids)
      emit(scoreLine(nats: nats, tokens: count, bytes: valid.bytes, json: json, extra: extra))
    } else {
      emit(json ? jsonLine(extra) : "wrote \(out)\n")
    }
  }
}

struct HMMEval: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eval", abstract: "Score a text with an HMM by the forward algorithm, as `recurrent eval` scores it.")
  @Option(help: "A model written by `recurrent hmm train`.") var model: String
  @Option(help: "Text to score.") var text: String
  @Flag(help: "Score every line as a sentence (its end included) from the initial distribution, as ngram eval --sentences.")
  var sentences = false
  @Flag(help: "JSON output.") var json = false

  func run() throws {
    let (m, vocabulary) = try HiddenMarkovModel.load(from: model)
    if sentences {
      let scored = try sentenceIDs(text, vocabulary: vocabulary, model: model)
      let (nats, count) = m.scoreSentences(scored.lines)
      emit(scoreLine(
        nats: nats, tokens: count, bytes: scored.bytes, json: json,
        extra: ["states": .int(m.states), "convention": "sentences", "sentences": .int(scored.lines.count)]))
    } else {
      let scored = try encodeFile(text, vocabulary: vocabulary)
      let (nats, count) = m.score(scored.ids)
      emit(scoreLine(
        nats: nats, tokens: count, bytes: scored.bytes, json: json, extra: ["states": .int(m.states), "convention": "stream"]))
    }
  }
}
