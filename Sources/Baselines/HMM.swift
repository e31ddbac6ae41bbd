import Foundation
import Recurrent
import Formats
import TextCorpus

/// A discrete hidden Markov model language model: K hidden states, an initial distribution π,
/// transitions A (`[K, K]`, row i = from state i) and emissions B (`[K, V]`). Trained by
/// Baum-Welch (EM with the scaled forward-backward algorithm); scored by the forward algorithm.
public struct HiddenMarkovModel: Sendable, Equatable {
  /// Initial distribution π `[K]`.
  public var initial: [Double]  // [K]
  /// Transitions `A` `[K, K]` row-major: `transition[i*K + j]` = P(state j after state i).
  public var transition: [Double]  // [K*K]
  /// Emissions `B` `[K, V]` row-major: `emission[i*V + v]` = P(token v in state i).
  public var emission: [Double]  // [K*V]
  /// Hidden states `K`.
  public let states: Int
  /// Tokens `V`.
  public let symbols: Int

  /// A model from its probabilities (each row sums to 1).
  public init(initial: [Double], transition: [Double], emission: [Double], states: Int, symbols: Int) {
    precondition(initial.count == states && transition.count == states * states && emission.count == states * symbols)
    self.initial = initial
    self.transition = transition
    self.emission = emission
    self.states = states
    self.symbols = symbols
  }

  /// Random rows (Dirichlet(1) draws) from `rng`.
  public init(states K: Int, symbols V: Int, using rng: inout some RandomNumberGenerator) {
    func row(_ n: Int) -> [Double] {
      // Dirichlet(1) draws (-log u), asymmetric enough that EM breaks the symmetry of the states.
      let r = (0..<n).map { _ in -log(max(Double(rng.nextUnitFloat()), 1e-12)) }
      let s = r.reduce(0, +)
      return r.map { $0 / s }
    }
    self.init(
      initial: row(K), transition: (0..<K).flatMap { _ in row(K) }, emission: (0..<K).flatMap { _ in row(V) },
      states: K, symbols: V)
  }

  /// Natural log of p(x_0 ... x_{n-1}) by the scaled forward algorithm, emissions mixed with
  /// the uniform distribution by `smoothing` (0: exact).
  public func logLikelihood(_ x: ArraySlice<Int>, smoothing: Double = 0) -> Double {
    forwardScales(x, smoothing: smoothing).reduce(0) { $0 + log($1) }
  }

  /// Nats per token of a stream, every token after the first predicted from all before it
  /// (as the neural models and the n-grams score it).
  public func score(_ stream: [Int], smoothing: Double = 1e-6) -> (nats: Double, tokens: Int) {
    guard stream.count > 1 else { return (0, 0) }
    let scales = forwardScales(stream[...], smoothing: smoothing)
    return (-scales.dropFirst().reduce(0) { $0 + log($1) }, stream.count - 1)
  }

  /// Sentence scoring (KenLM's convention, as `NGramModel.scoreSentences`): each sentence,
  /// its end token included, from the initial distribution; every token is predicted.
  public func scoreSentences(_ sentences: [[Int]], smoothing: Double = 1e-6) -> (nats: Double, tokens: Int) {
    var nats = 0.0
    var tokens = 0
    for sentence in sentences where !sentence.isEmpty {
      nats -= logLikelihood(sentence[...], smoothing: smoothing)
      tokens += sentence.count
    }
    return (nats, tokens)
  }

  /// c_t = p(x_t | x_<t) for each t.
  func forwardScales(_ x: ArraySlice<Int>, smoothing: Double) -> [Double] {
    let K = states
    let V = symbols
    var alpha = [Double](repeating: 0, count: K)
    var next = alpha
    var scales: [Double] = []
    scales.reserveCapacity(x.count)
    func b(_ i: Int, _ s: Int) -> Double { (1 - smoothing) * emission[i * V + s] + smoothing / Double(V) }
    for (t, s) in x.enumerated() {
      if t == 0 {
        for i in 0..<K { next[i] = initial[i] * b(i, s) }
      } else {
        for j in 0..<K { next[j] = 0 }
        transition.withUnsafeBufferPointer { a in
          for i in 0..<K where alpha[i] != 0 {
            let ai = alpha[i]
            for j in 0..<K { next[j] += ai * a[i * K + j] }
          }
        }
        for j in 0..<K { next[j] *= b(j, s) }
      }
      let c = next.reduce(0, +)
      scales.append(c)
      let inverse = c > 0 ? 1 / c : 0
      for i in 0..<K { alpha[i] = next[i] * inverse }
    }
    return scales
  }

  /// One Baum-Welch iteration over `segments` (each scored from π): returns the model after the
  /// M-step and the log-likelihood of the data under the model before it.
  public func baumWelchStep(_ segments: [ArraySlice<Int>]) -> (model: HiddenMarkovModel, logLikelihood: Double) {
    let K = states
    let V = symbols
    var piSum = [Double](repeating: 0, count: K)
    var aSum = [Double](repeating: 0, count: K * K)
    var bSum = [Double](repeating: 0, count: K * V)
    var total: Double = 0
    for x in segments where !x.isEmpty {
      let T = x.count
      let xs = Array(x)
      var alpha = [Double](repeating: 0, count: T * K)
      var scale = [Double](repeating: 0, count: T)
      // Forward, scaled.
      for t in 0..<T {
        let s = xs[t]
        var c: Double = 0
        for j in 0..<K {
          var v: Double
          if t == 0 {
            v = initial[j]
          } else {
            v = 0
            for i in 0..<K { v += alpha[(t - 1) * K + i] * transition[i * K + j] }
          }
          v *= emission[j * V + s]
          alpha[t * K + j] = v
          c += v
        }
        scale[t] = c
        guard c > 0 else { return (self, -.infinity) }
        for j in 0..<K { alpha[t * K + j] /= c }
        total += log(c)
      }
      // Backward, scaled, accumulating expected counts.
      var beta = [Double](repeating: 1, count: K)
      var previous = beta
      var weighted = beta
      for t in stride(from: T - 1, through: 0, by: -1) {
        let s = xs[t]
        for i in 0..<K { bSum[i * V + s] += alpha[t * K + i] * beta[i] }  // γ_t(i)
        if t == 0 {
          for i in 0..<K { piSum[i] += alpha[i] * beta[i] }
          break
        }
        // ξ_{t-1}(i, j) = α_{t-1}(i) A(i, j) B(j, x_t) β_t(j) / c_t
        for j in 0..<K { weighted[j] = emission[j * V + s] * beta[j] / scale[t] }
        for i in 0..<K {
          let a = alpha[(t - 1) * K + i]
          var sum: Double = 0
          for j in 0..<K {
            let w = transition[i * K + j] * weighted[j]
            aSum[i * K + j] += a * w
            sum += w
          }
          previous[i] = sum
        }
        swap(&beta, &previous)
      }
    }
    func normalised(_ v: [Double], rows: Int, columns: Int, fallback: [Double]) -> [Double] {
      var out = v
      for r in 0..<rows {
        let s = (0..<columns).reduce(0) { $0 + v[r * columns + $1] }
        for c in 0..<columns { out[r * columns + c] = s > 0 ? v[r * columns + c] / s : fallback[r * columns + c] }
      }
      return out
    }
    let model = HiddenMarkovModel(
      initial: normalised(piSum, rows: 1, columns: K, fallback: initial),
      transition: normalised(aSum, rows: K, columns: K, fallback: transition),
      emission: normalised(bSum, rows: K, columns: V, fallback: emission), states: K, symbols: V)
    return (model, total)
  }

  /// One Baum-Welch iteration's progress.
  public struct TrainingLog: Sendable {
    /// Which restart (from 1).
    public var restart: Int
    /// Iteration within the restart (from 1).
    public var iteration: Int
    /// Log-likelihood of the training segments, in nats, before this iteration's update.
    public var logLikelihood: Double
  }

  /// Baum-Welch from `restarts` random starts, each until the log-likelihood gains less than
  /// `tolerance` (relative) or `iterations` are done; the best start is kept. The stream is cut
  /// into segments of `segmentLength` tokens, each starting from π. Restart r draws its
  /// start from a generator seeded `state + r·7919` of `rng` (so restarts are independent of
  /// how many draws the others take).
  public static func train(
    stream: [Int], states: Int, symbols: Int, restarts: Int = 3, iterations: Int = 50, tolerance: Double = 1e-5,
    segmentLength: Int = 10_000, using rng: inout SplitMix64, progress: ((TrainingLog) -> Void)? = nil
  ) throws -> (model: HiddenMarkovModel, logLikelihood: Double) {
    guard states >= 1 && states <= 4096 else { throw BaselineError.invalidArgument("states must be in 1...4096, got \(states)") }
    guard restarts >= 1, iterations >= 1, tolerance >= 0, segmentLength >= 2 else {
      throw BaselineError.invalidArgument("restarts, iterations and the segment length must be positive, the tolerance >= 0")
    }
    guard stream.count >= 2 else { throw BaselineError.tooLittleData("\(stream.count) tokens are too few to train an HMM") }
    let segments = stride(from: 0, to: stream.count, by: segmentLength).map {
      stream[$0..<min(stream.count, $0 + segmentLength)]
    }
    var best: (model: HiddenMarkovModel, logLikelihood: Double)? = nil
    for restart in 0..<restarts {
      var start = SplitMix64(seed: rng.state &+ UInt64(restart) &* 7919)
      var model = HiddenMarkovModel(states: states, symbols: symbols, using: &start)
      var last = -Double.infinity
      for iteration in 1...iterations {
        let (updated, ll) = model.baumWelchStep(segments)
        progress?(TrainingLog(restart: restart + 1, iteration: iteration, logLikelihood: ll))
        model = updated
        let gain = ll - last
        last = ll
        if gain.isFinite && gain <= tolerance * abs(ll) { break }
      }
      let final = segments.reduce(0) { $0 + model.logLikelihood($1) }
      if best == nil || final > best!.logLikelihood { best = (model, final) }
    }
    return best!
  }

  // MARK: - Files

  /// What an HMM checkpoint's `recurrent.config` holds.
  struct StoredConfiguration: Codable {
    var states: Int
    var symbols: Int
    var tokenizer: String
    /// How text is read (`utf8`, `latin1`, `bytes`); absent means UTF-8.
    var encoding: String?
  }

  /// What an HMM checkpoint holds besides the model: the vocabulary it was trained on (with
  /// the tokenizer and encoding).
  public typealias Loaded = (model: HiddenMarkovModel, vocabulary: Vocabulary)

  /// Safetensors in the checkpoint envelope (`CheckpointKind.hiddenMarkovModel`): `initial`
  /// [K], `transition` [K, K], `emission` [K, V]; the vocabulary in the metadata
  /// (`Vocabulary.metadata()`). Files from before the envelope (no version; the tokenizer under
  /// `recurrent.tokenizer`) still load.
  public func save(to path: String, vocabulary: Vocabulary) throws {
    let file = try CheckpointEnvelope.file(
      kind: .hiddenMarkovModel,
      config: StoredConfiguration(
        states: states, symbols: symbols, tokenizer: vocabulary.kind.rawValue,
        encoding: vocabulary.encoding == .utf8 ? nil : vocabulary.encoding.rawValue),
      metadata: try vocabulary.metadata(),
      tensors: [
        ("initial", Tensor(shape: [states], scalars: initial.map { Float($0) })),
        ("transition", Tensor(shape: [states, states], scalars: transition.map { Float($0) })),
        ("emission", Tensor(shape: [states, symbols], scalars: emission.map { Float($0) })),
      ])
    try CheckpointEnvelope.write(file, to: path)
  }

  /// Reads an HMM checkpoint; errors name the file.
  public static func load(from path: String) throws -> Loaded {
    try CheckpointEnvelope.read(path: path, kind: .hiddenMarkovModel, decode)
  }

  /// A model from a decoded file (see `load`).
  public static func decode(_ file: SafeTensors) throws -> Loaded {
    try CheckpointEnvelope.decoding(file, kind: .hiddenMarkovModel, decode)
  }

  static func decode(_ envelope: inout CheckpointEnvelope) throws -> Loaded {
    let config: StoredConfiguration
    if envelope.version == 0 {
      let tokenizer = try envelope.string("recurrent.tokenizer")
      let states = envelope.contains("initial") ? try envelope.require("initial").count : 0
      let count = (try? envelope.decode([String].self, key: Vocabulary.tokensKey))?.count ?? 0
      config = StoredConfiguration(states: states, symbols: count, tokenizer: tokenizer, encoding: nil)
    } else {
      config = try envelope.decode(StoredConfiguration.self)
    }
    guard let kind = TokenizerKind(rawValue: config.tokenizer) else {
      throw CheckpointError.badMetadata(key: "recurrent.config", reason: "unknown tokenizer '\(config.tokenizer)'")
    }
    guard let encoding = TextEncoding(rawValue: config.encoding ?? "utf8") else {
      throw CheckpointError.badMetadata(key: "recurrent.config", reason: "unknown encoding '\(config.encoding ?? "")'")
    }
    let vocabulary = try Vocabulary.stored(in: envelope, kind: kind, encoding: encoding)
    let tokens = vocabulary.tokens
    let K = config.states
    let V = config.symbols
    guard K > 0, K <= 1 << 16, V == tokens.count else {
      throw CheckpointError.badMetadata(key: "recurrent.config", reason: "\(K) states and \(V) symbols for \(tokens.count) tokens")
    }
    try envelope.checkBudget(needed: K.multipliedReportingOverflow(by: K + V + 1).overflow ? nil : K * (K + V + 1))
    let pi = try envelope.require("initial", shape: [K])
    let a = try envelope.require("transition", shape: [K, K])
    let b = try envelope.require("emission", shape: [K, V])
    let model = HiddenMarkovModel(
      initial: pi.scalars.map(Double.init), transition: a.scalars.map(Double.init),
      emission: b.scalars.map(Double.init), states: K, symbols: V)
    return (model, vocabulary)
  }
}
