import Formats
import Foundation
import Recurrent

/// An n-gram language model in the backoff form of the ARPA format: every stored n-gram has a
/// log10 probability and, when it is the context of longer ones, a log10 backoff weight.
/// `p(w | h) = p*(h w)` if `h w` is stored, else `backoff(h) · p(w | h minus its oldest token)`
/// (backoff 1 when `h` is not stored), down to the unigrams, which list the whole vocabulary.
///
/// `train` fills it with interpolated modified Kneser-Ney (Chen & Goodman 1998): three discounts
/// per order from counts of counts, continuation counts for the lower orders, the unigrams
/// interpolated with the uniform distribution over the vocabulary. An interpolated model is
/// exactly representable this way (the probability of a stored n-gram is the interpolated
/// one), so ARPA files written here give KenLM and SRILM the same numbers.
///
/// Token streams: a text is one stream of token ids, as the neural models score it; the
/// first token is not predicted, and the token at position i is predicted from the up to N-1
/// tokens before it. Sentence ends are tokens like any other (`<eos>` for words, the newline
/// character for characters); no `<s>` is inserted.
public struct NGramModel: Sendable {
  /// The order N: each token is predicted from at most N-1 before it.
  public let order: Int
  /// Token strings by id (the vocabulary).
  public let tokens: [String]
  /// One level per order: key `(parent node << 22) | word` → node; node 0 of level 0 is the
  /// empty context (root).
  var children: [[UInt64: Int32]]
  var logProbability: [[Float]]  // [level][node], log10
  var logBackoff: [[Float]]  // [level][node], log10, 0 when none
  static let wordBits: UInt64 = 22

  /// Tokens `V`.
  public var vocabularySize: Int { tokens.count }
  /// The id of `<s>`: context only, never predicted and outside `tokens`; its n-grams are
  /// those of an ARPA file that has them (KenLM's, SRILM's), used by `scoreSentences`.
  public var sentenceStart: Int { tokens.count }
  /// Stored n-grams per order (1...N).
  public var counts: [Int] { (1...order).map { logProbability[$0].count } }

  init(order: Int, tokens: [String]) {
    self.order = order
    self.tokens = tokens
    children = Array(repeating: [:], count: order + 1)
    logProbability = Array(repeating: [], count: order + 1)
    logBackoff = Array(repeating: [], count: order + 1)
    logProbability[0] = [0]
    logBackoff[0] = [0]
  }

  @inline(__always) static func key(_ parent: Int32, _ word: Int) -> UInt64 {
    UInt64(UInt32(bitPattern: parent)) << wordBits | UInt64(word)
  }

  /// The node of `gram` (oldest token first), then `word` if given; nil when not stored.
  func node(_ gram: ArraySlice<Int>, then word: Int? = nil) -> Int32? {
    var node: Int32 = 0
    var level = 0
    for w in gram {
      level += 1
      guard let next = children[level][Self.key(node, w)] else { return nil }
      node = next
    }
    if let word { return children[level + 1][Self.key(node, word)] }
    return node
  }

  /// log10 p(word | context), the context's last N-1 tokens used.
  public func log10Probability(of word: Int, after context: ArraySlice<Int>) -> Double {
    var context = context.suffix(order - 1)
    var backoff: Double = 0
    while true {
      if let n = node(context, then: word), !logProbability[context.count + 1][Int(n)].isNaN {
        return backoff + Double(logProbability[context.count + 1][Int(n)])
      }
      if context.isEmpty { return -Double.infinity }  // a word outside the vocabulary
      if let h = node(context) { backoff += Double(logBackoff[context.count][Int(h)]) }
      context = context.dropFirst()
    }
  }

  /// Sentence scoring, as KenLM's `query` and SRILM's `ngram -ppl` do: each sentence (token ids
  /// ending with its end-of-sentence token) predicted from `<s>`, the end included; returns the
  /// natural-log probability summed (negated) and the tokens predicted.
  public func scoreSentences(_ sentences: [[Int]]) -> (nats: Double, tokens: Int) {
    var total: Double = 0
    var count = 0
    for sentence in sentences {
      var context = [sentenceStart]
      for w in sentence {
        total += log10Probability(of: w, after: context[...]) * log(10.0)
        context.append(w)
        if context.count >= order { context.removeFirst(context.count - order + 1) }
        count += 1
      }
    }
    return (-total, count)
  }

  /// Natural-log probability of every token of `stream` after the first, summed, and how many.
  public func score(_ stream: [Int]) -> (nats: Double, tokens: Int) {
    guard stream.count > 1 else { return (0, 0) }
    var total: Double = 0
    for i in 1..<stream.count {
      total += log10Probability(of: stream[i], after: stream[max(0, i - order + 1)..<i]) * log(10.0)
    }
    return (-total, stream.count - 1)
  }

  /// The distribution over the vocabulary after `context` (sums to 1 for a trained model).
  public func distribution(after context: ArraySlice<Int>) -> [Double] {
    (0..<tokens.count).map { _exp10(log10Probability(of: $0, after: context)) }
  }

  /// `count` tokens sampled after `prime`, drawing from `rng`.
  public func generate(
    prime: [Int], count: Int, temperature: Double = 1, using rng: inout some RandomNumberGenerator
  ) -> [Int] {
    var stream = prime
    for _ in 0..<count {
      var p = distribution(after: stream[max(0, stream.count - order + 1)...])
      if temperature != 1 { p = p.map { Foundation.pow($0, 1 / temperature) } }
      let total = p.reduce(0, +)
      var r = Double(rng.next() >> 11) / Double(1 << 53) * total
      var pick = p.count - 1
      for (i, v) in p.enumerated() {
        r -= v
        if r < 0 { pick = i; break }
      }
      stream.append(pick)
    }
    return Array(stream.dropFirst(prime.count))
  }

  // MARK: - Training

  /// Interpolated modified Kneser-Ney of order `order` on `stream` (ids in `0..<tokens.count`).
  public static func train(order: Int, tokens: [String], stream: [Int]) throws -> NGramModel {
    guard order >= 1 && order <= 12 else { throw BaselineError.invalidArgument("order must be in 1...12, got \(order)") }
    guard tokens.count < 1 << 22 else { throw BaselineError.invalidArgument("a vocabulary of \(tokens.count) is larger than 4,194,303") }
    guard stream.count >= order else { throw BaselineError.tooLittleData("\(stream.count) tokens are too few for order \(order)") }
    var model = NGramModel(order: order, tokens: tokens)
    // Counts: raw for the highest order; for lower orders the number of distinct tokens seen
    // before each n-gram (continuation counts), plus one for an n-gram at the very start of the
    // stream (it has no token before it, as toolkits treat n-grams after <s>).
    var count: [[Int32]] = Array(repeating: [], count: order + 1)
    var parent: [[Int32]] = Array(repeating: [], count: order + 1)
    var suffix: [[Int32]] = Array(repeating: [], count: order + 1)  // the gram minus its oldest token
    count[0] = [0]
    parent[0] = [-1]
    suffix[0] = [-1]
    func insert(_ level: Int, _ p: Int32, _ word: Int, suffixNode: Int32) -> Int32 {
      let k = key(p, word)
      if let n = model.children[level][k] { return n }
      let n = Int32(count[level].count)
      model.children[level][k] = n
      count[level].append(0)
      parent[level].append(p)
      suffix[level].append(suffixNode)
      return n
    }
    // Every word has a unigram, node = id (so ARPA files list them in vocabulary order).
    for w in 0..<tokens.count { _ = insert(1, 0, w, suffixNode: 0) }
    // The k-gram ending at i extends the (k-1)-gram ending at i-1; its suffix is the
    // (k-1)-gram ending at i.
    var previous = [Int32](repeating: 0, count: order + 1)
    var current = previous
    for i in 0..<stream.count {
      let longest = min(order, i + 1)
      for k in 1...longest {
        current[k] = insert(k, previous[k - 1], stream[i], suffixNode: k >= 2 ? current[k - 1] : 0)
        if k == order || k == i + 1 { count[k][Int(current[k])] += 1 }
      }
      swap(&previous, &current)
    }
    for k in stride(from: order, through: 2, by: -1) {
      for n in 0..<count[k].count { count[k - 1][Int(suffix[k][n])] += 1 }
    }
    // Discounts per order from counts of counts.
    var discounts: [[Double]] = Array(repeating: [0, 0, 0, 0], count: order + 1)
    for k in 1...order {
      var n = [Double](repeating: 0, count: 5)
      for c in count[k] where c >= 1 && c <= 4 { n[Int(c)] += 1 }
      discounts[k] = Self.discounts(n1: n[1], n2: n[2], n3: n[3], n4: n[4])
    }
    // Per context: total count and how many continuations have count 1, 2, 3+.
    var total: [[Double]] = (0...order).map { Array(repeating: 0, count: count[$0].count) }
    var ones = total
    var twos = total
    var threes = total
    for k in 1...order {
      for n in 0..<count[k].count {
        let c = count[k][n]
        let p = Int(parent[k][n])
        total[k - 1][p] += Double(c)
        if c == 1 { ones[k - 1][p] += 1 } else if c == 2 { twos[k - 1][p] += 1 } else if c >= 3 { threes[k - 1][p] += 1 }
      }
    }
    func gamma(_ level: Int, _ node: Int) -> Double {
      let t = total[level][node]
      guard t > 0 else { return 1 }
      let d = discounts[level + 1]
      return (d[1] * ones[level][node] + d[2] * twos[level][node] + d[3] * threes[level][node]) / t
    }
    // p_k(w | h) = max(c(hw) - D(c), 0) / c(h·) + γ(h) p_{k-1}(w | h'); p_0 = uniform.
    var probability: [[Double]] = Array(repeating: [], count: order + 1)
    probability[0] = [1 / Double(tokens.count)]
    for k in 1...order {
      probability[k] = [Double](repeating: 0, count: count[k].count)
      for n in 0..<count[k].count {
        let p = Int(parent[k][n])
        let c = Double(count[k][n])
        let t = total[k - 1][p]
        let lower = probability[k - 1][k == 1 ? 0 : Int(suffix[k][n])]
        probability[k][n] = (t > 0 ? max(c - Self.discount(discounts[k], c), 0) / t : 0) + gamma(k - 1, p) * lower
      }
    }
    for k in 1...order {
      model.logProbability[k] = probability[k].map { Float(log10($0)) }
      model.logBackoff[k] = (0..<count[k].count).map { n in
        k < order && total[k][n] > 0 ? Float(log10(gamma(k, n))) : 0
      }
    }
    return model
  }

  /// Chen & Goodman's estimates: Y = n1/(n1+2n2), D1 = 1-2Y n2/n1, D2 = 2-3Y n3/n2,
  /// D3+ = 3-4Y n4/n3; each kept in (0, c] (0.5, 1, 1.5 when the counts cannot give them).
  public static func discounts(n1: Double, n2: Double, n3: Double, n4: Double) -> [Double] {
    guard n1 > 0, n2 > 0, n3 > 0 else { return [0, 0.5, 1, 1.5] }
    let y = n1 / (n1 + 2 * n2)
    var d = [0, 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3]
    for (i, fallback) in [(1, 0.5), (2, 1.0), (3, 1.5)] where !(d[i] > 0 && d[i] <= Double(i)) { d[i] = fallback }
    return d
  }

  static func discount(_ d: [Double], _ c: Double) -> Double {
    c >= 3 ? d[3] : c >= 2 ? d[2] : c >= 1 ? d[1] : 0
  }
}

@inline(__always) func _exp10(_ x: Double) -> Double { Foundation.pow(10, x) }

/// A baseline that cannot be trained, read or used, with a message naming the problem.
/// A baseline that cannot be trained or read, by kind.
public enum BaselineError: Error, CustomStringConvertible, Equatable {
  /// An order, state count or other setting out of range.
  case invalidArgument(String)
  /// Too few tokens for the model asked for.
  case tooLittleData(String)
  /// An ARPA file that is not well formed (the message names the file and line).
  case malformedARPA(String)
  /// A file that cannot be read.
  case file(FileError)

  /// One line for the user.
  public var description: String {
    switch self {
    case .invalidArgument(let m), .tooLittleData(let m), .malformedARPA(let m): m
    case .file(let error): error.description
    }
  }
}
