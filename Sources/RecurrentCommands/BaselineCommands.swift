import ArgumentParser
import Baselines
import Formats
import Foundation
import Recurrent
import TextCorpus

extension TextDataOptions {
  /// The vocabulary (as `recurrent train` builds it) and the training stream of a baseline.
  func baselineTrainingData() throws -> (Vocabulary, [Int]) {
    let train = try read(textPath)
    let valid = try validText.map { try read($0) }
    let vocabulary = vocabulary(train: train, valid: valid, kind: tokenizerKind)
    return (vocabulary, try encodeFile(textPath, vocabulary: vocabulary))
  }
}

/// The evaluation line shared with `recurrent eval`.
func scoreLine(nats: Double, tokens: Int, json: Bool, extra: [String: JSONValue] = [:]) -> String {
  let perToken = tokens > 0 ? nats / Double(tokens) : 0
  if json {
    var fields: [String: JSONValue] = [
      "tokens": .int(tokens), "nats_per_token": .number(perToken), "bits_per_token": .number(perToken / log(2.0)),
      "perplexity": .number(exp(perToken)),
    ]
    fields.merge(extra) { $1 }
    return jsonLine(fields)
  }
  return String(format: "%d tokens: %.4f nats/token, %.4f bits/token, perplexity %.3f\n", tokens, perToken, perToken / log(2.0), exp(perToken))
}

/// Each line of `path` as token ids ending with its end: `</s>` (`<eos>`) for words, the
/// newline for characters (the sentence convention of KenLM and SRILM).
func sentenceIDs(_ path: String, vocabulary: Vocabulary, model: String) throws -> [[Int]] {
  let newline = vocabulary.kind == .char ? (try? vocabulary.encode("\n"))?.first : nil  // <0x0A> for bytes
  guard let end = vocabulary.id(of: Vocabulary.endOfSentence) ?? newline else {
    throw CommandError("--sentences: \(model) has neither </s> nor a newline token to end a sentence")
  }
  var lines = try readText(path: path, encoding: vocabulary.encoding).split(separator: "\n", omittingEmptySubsequences: false)
  if lines.last == "" { lines.removeLast() }
  do {
    return try lines.map { line in
      let ids = try vocabulary.encode(String(line))
      return vocabulary.kind == .word ? ids : ids + [end]  // word encoding ends each line with <eos>
    }
  } catch let error as CorpusError {
    throw CommandError("\(path): \(error)")
  }
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
      let (nats, count) = model.score(try encodeFile(validText, vocabulary: vocabulary))
      emit(scoreLine(nats: nats, tokens: count, json: json, extra: extra))
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
  @Option(help: "Tokenizer the model was trained with: char or word.") var tokenizer: TokenizerKind = .char
  @Option(help: "Encoding the model was trained with: utf8, latin1 or bytes.") var encoding: TextEncoding = .utf8
  @Flag(help: "Score every line as a sentence from <s> to </s>, as KenLM's query and SRILM's ngram -ppl do (default: one stream).")
  var sentences = false
  @Flag(help: "JSON output.") var json = false

  func run() throws {
    let m = try NGramModel.readARPA(path: model)
    let vocabulary = Vocabulary(kind: tokenizer, tokens: m.tokens, encoding: encoding)
    guard sentences else {
      let (nats, count) = m.score(try encodeFile(text, vocabulary: vocabulary))
      emit(scoreLine(nats: nats, tokens: count, json: json, extra: ["order": .int(m.order), "convention": "stream"]))
      return
    }
    let sentences = try sentenceIDs(text, vocabulary: vocabulary, model: model)
    let (nats, count) = m.scoreSentences(sentences)
    emit(scoreLine(
      nats: nats, tokens: count, json: json,
      extra: ["order": .int(m.order), "convention": "sentences", "sentences": .int(sentences.count)]))
  }
}

struct NGramGenerate: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "generate", abstract: "Sample text from an ARPA model.")
  @Option(help: "ARPA file.") var model: String
  @Option(help: "Text to start from.") var prime: String = ""
  @Option(help: "Tokens to generate.") var length: Int = 200
  @Option(help: "Tokenizer the model was trained with: char or word.") var tokenizer: TokenizerKind = .char
  @Option(help: "Encoding the model was trained with: utf8, latin1 or bytes.") var encoding: TextEncoding = .utf8
  @Option(help: "Sampling temperature (> 0; below 1 sharper, above 1 flatter).") var temperature: Double = 1
  @Option(help: "Random seed.") var seed: UInt64 = 1

  func validate() throws {
    if length < 0 { throw ValidationError("--length must be >= 0, got \(length)") }
    if !(temperature > 0 && temperature.isFinite) { throw ValidationError("--temperature must be > 0, got \(temperature)") }
  }

  func run() throws {
    let m = try NGramModel.readARPA(path: model)
    let vocabulary = Vocabulary(kind: tokenizer, tokens: m.tokens, encoding: encoding)
    let primeIds: [Int]
    do {
      primeIds = try vocabulary.encode(encoding == .bytes ? latin1String(prime.utf8) : prime)
    } catch { throw CommandError("--prime: \(error)") }
    emit(prime)
    var rng = SplitMix64(seed: seed)
    var assembler = UTF8Assembler()
    for (i, id) in m.generate(prime: primeIds, count: length, temperature: temperature, using: &rng).enumerated() {
      emit(vocabulary.byte(of: id).map { assembler.push($0) } ?? vocabulary.piece(id, first: i == 0 && prime.isEmpty))
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
    try model.save(
      to: out, tokens: vocabulary.tokens, tokenizer: data.tokenizerKind.rawValue, encoding: data.textEncoding.rawValue)
    let extra: [String: JSONValue] = [
      "event": "trained", "states": .int(states), "train_log_likelihood": .number(ll),
      "train_seconds": .number(Date().timeIntervalSince(started)), "out": .string(out),
    ]
    if let validText = data.validText {
      let (nats, count) = model.score(try encodeFile(validText, vocabulary: vocabulary))
      emit(scoreLine(nats: nats, tokens: count, json: json, extra: extra))
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
    let (m, tokens, tokenizer, encoding) = try HiddenMarkovModel.load(from: model)
    let vocabulary = Vocabulary(
      kind: TokenizerKind(rawValue: tokenizer) ?? .char, tokens: tokens, encoding: TextEncoding(rawValue: encoding) ?? .utf8)
    if sentences {
      let lines = try sentenceIDs(text, vocabulary: vocabulary, model: model)
      let (nats, count) = m.scoreSentences(lines)
      emit(scoreLine(
        nats: nats, tokens: count, json: json,
        extra: ["states": .int(m.states), "convention": "sentences", "sentences": .int(lines.count)]))
    } else {
      let (nats, count) = m.score(try encodeFile(text, vocabulary: vocabulary))
      emit(scoreLine(nats: nats, tokens: count, json: json, extra: ["states": .int(m.states), "convention": "stream"]))
    }
  }
}
