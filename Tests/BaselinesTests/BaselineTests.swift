import Foundation
import Testing
import TestSupport

import Baselines
import Formats
import TextCorpus
import Recurrent

// The classical baselines: Kneser-Ney probabilities computed by hand, normalisation, the ARPA
// round trip, the HMM forward algorithm against enumeration, and Baum-Welch's monotonicity.

@Test func kneserNeyMatchesHandComputedProbabilities() throws {
  // Stream a b a b c, order 2, vocabulary {a, b, c}. Worked by hand (see the comments):
  // bigram counts ab=2, ba=1, bc=1; unigram continuation counts a=2 (after b, and at the stream
  // start), b=1, c=1, total 4. Counts of counts have n3 = 0, so every order takes the fallback
  // discounts D1=0.5, D2=1, D3+=1.5.
  let model = try NGramModel.train(order: 2, tokens: ["a", "b", "c"], stream: [0, 1, 0, 1, 2])
  func p(_ w: Int, _ context: [Int]) -> Double { pow(10, model.log10Probability(of: w, after: context[...])) }
  // γ(root) = (0.5·2 + 1·1)/4 = 0.5; p(a) = (2-1)/4 + 0.5/3, p(b) = p(c) = (1-0.5)/4 + 0.5/3.
  let pa = 0.25 + 0.5 / 3
  let pb = 0.125 + 0.5 / 3
  #expect(abs(p(0, []) - pa) < 1e-6)
  #expect(abs(p(1, []) - pb) < 1e-6)
  #expect(abs(p(2, []) - pb) < 1e-6)
  // Context a: ab=2, total 2, γ(a) = 1·1/2 = 0.5.
  #expect(abs(p(1, [0]) - (0.5 + 0.5 * pb)) < 1e-6)
  #expect(abs(p(0, [0]) - 0.5 * pa) < 1e-6)
  #expect(abs(p(2, [0]) - 0.5 * pb) < 1e-6)
  // Context b: ba=1, bc=1, total 2, γ(b) = 0.5·2/2 = 0.5.
  #expect(abs(p(0, [1]) - (0.25 + 0.5 * pa)) < 1e-6)
  #expect(abs(p(2, [1]) - (0.25 + 0.5 * pb)) < 1e-6)
  #expect(abs(p(1, [1]) - 0.5 * pb) < 1e-6)
  // Context c was never followed: the unigram distribution.
  #expect(abs(p(0, [2]) - pa) < 1e-6)
  // The stream's score: tokens 2..5 predicted from the one before.
  let expected = -[0.5 + 0.5 * pb, 0.25 + 0.5 * pa, 0.5 + 0.5 * pb, 0.25 + 0.5 * pb].reduce(0) { $0 + log($1) }
  let (nats, tokens) = model.score([0, 1, 0, 1, 2])
  #expect(tokens == 4 && abs(nats - expected) < 1e-5)
  // Chen & Goodman's discounts from counts of counts n1=10, n2=5, n3=3, n4=2: Y = 0.5,
  // D1 = 1 - 2·0.5·5/10 = 0.5, D2 = 2 - 3·0.5·3/5 = 1.1, D3+ = 3 - 4·0.5·2/3 = 5/3.
  let d = NGramModel.discounts(n1: 10, n2: 5, n3: 3, n4: 2)
  #expect(abs(d[1] - 0.5) < 1e-12 && abs(d[2] - 1.1) < 1e-12 && abs(d[3] - 5.0 / 3) < 1e-12)
}

/// A stream with enough repetition that every order has counts of counts 1 to 4.
private func sampleStream(_ n: Int, vocabulary V: Int, seed: UInt64) -> [Int] {
  var rng = SplitMix64(seed: seed)
  var s: [Int] = []
  for _ in 0..<n {
    let r = Int(rng.next() % 100)
    // A skewed, partly predictable stream: repeat a recent token half the time.
    s.append(r < 50 && s.count > 3 ? s[s.count - 1 - Int(rng.next() % 3)] : (r * r) % V)
  }
  return s
}

@Test func everyContextsDistributionSumsToOne() throws {
  let V = 7
  let stream = sampleStream(3000, vocabulary: V, seed: 1)
  let tokens = (0..<V).map { "t\($0)" }
  for order in [1, 3, 4] {
    let model = try NGramModel.train(order: order, tokens: tokens, stream: stream)
    // Every context seen in the stream, and some never seen.
    var contexts: [[Int]] = [[], [6, 6, 6], [5, 0]]
    for i in stride(from: order, to: stream.count, by: 37) { contexts.append(Array(stream[(i - order + 1)..<i])) }
    for context in contexts {
      let total = model.distribution(after: context[...]).reduce(0, +)
      #expect(abs(total - 1) < 1e-5, "order \(order), context \(context): \(total)")
    }
  }
}

@Test func arpaRoundTripKeepsEveryProbability() throws {
  let tokens = ["a", " ", "\n", "<", "é", "<unk>", "<eos>", "b"]
  let stream = sampleStream(2000, vocabulary: tokens.count, seed: 2)
  let model = try NGramModel.train(order: 3, tokens: tokens, stream: stream)
  let path = NSTemporaryDirectory() + "recurrent-\(UUID().uuidString).arpa"
  defer { try? FileManager.default.removeItem(atPath: path) }
  try model.writeARPA(path: path)
  let text = try String(contentsOfFile: path, encoding: .utf8)
  #expect(text.contains("\\data\\") && text.contains("-99\t<s>") && text.contains("</s>") && text.contains("<U+0020>"))
  let loaded = try NGramModel.readARPA(path: path)
  #expect(loaded.tokens == tokens)
  #expect(loaded.counts == model.counts)
  for i in stride(from: 2, to: stream.count, by: 11) {
    for w in 0..<tokens.count {
      let context = stream[(i - 2)..<i]
      #expect(loaded.log10Probability(of: w, after: context) == model.log10Probability(of: w, after: context))
    }
  }
  #expect(loaded.arpa() == text)
  #expect(loaded.score(stream).nats == model.score(stream).nats)
  // Damaged files are refused with a message.
  try "\\data\\\nngram 1=3\n\n\\1-grams:\n-1\ta\n\\end\\\n".write(toFile: path, atomically: true, encoding: .utf8)
  #expect(throws: BaselineError.self) { try NGramModel.readARPA(path: path) }
}

@Test func hmmForwardMatchesEnumerationOfEveryStatePath() {
  let (K, V) = (3, 4)
  var seeded = SplitMix64(seed: 9)
  let hmm = HiddenMarkovModel(states: K, symbols: V, using: &seeded)
  let x = [2, 0, 3, 3, 1]
  var total: Double = 0
  var path = [Int](repeating: 0, count: x.count)
  func walk(_ t: Int) {
    if t == x.count {
      var p = hmm.initial[path[0]] * hmm.emission[path[0] * V + x[0]]
      for s in 1..<x.count { p *= hmm.transition[path[s - 1] * K + path[s]] * hmm.emission[path[s] * V + x[s]] }
      total += p
      return
    }
    for k in 0..<K {
      path[t] = k
      walk(t + 1)
    }
  }
  walk(0)
  #expect(abs(hmm.logLikelihood(x[...]) - log(total)) < 1e-10)
  // The stream score is the likelihood of all tokens after the first given the first.
  let first = log(hmm.initial.indices.reduce(0) { $0 + hmm.initial[$1] * hmm.emission[$1 * V + x[0]] })
  #expect(abs(hmm.score(x, smoothing: 0).nats - (first - log(total))) < 1e-10)
}

@Test func baumWelchNeverDecreasesTheLikelihood() throws {
  let stream = sampleStream(1500, vocabulary: 6, seed: 3)
  var seeded = SplitMix64(seed: 5)
  var model = HiddenMarkovModel(states: 4, symbols: 6, using: &seeded)
  let segments = stride(from: 0, to: stream.count, by: 300).map { stream[$0..<min(stream.count, $0 + 300)] }
  var last = -Double.infinity
  var first = 0.0
  for iteration in 0..<25 {
    let (next, ll) = model.baumWelchStep(segments)
    #expect(ll >= last - 1e-9 * abs(ll), "iteration \(iteration): \(ll) after \(last)")
    if iteration == 0 { first = ll }
    last = ll
    model = next
  }
  #expect(last > first + 1, "EM improved the fit: \(first) -> \(last)")
  // The trainer keeps the best restart and reports its likelihood.
  var trainer = SplitMix64(seed: 1)
  let (trained, ll) = try HiddenMarkovModel.train(stream: stream, states: 4, symbols: 6, restarts: 2, iterations: 10, segmentLength: 300, using: &trainer)
  #expect(abs(ll - segments.reduce(0) { $0 + trained.logLikelihood($1) }) < 1e-6 * abs(ll))
}


@Test func hmmFilesInTheEnvelopeAndFromBeforeItLoad() throws {
  var rng = SplitMix64(seed: 2)
  let model = HiddenMarkovModel(states: 3, symbols: 4, using: &rng)
  let folder = temporaryFolder("hmm")
  defer { try? FileManager.default.removeItem(atPath: folder) }
  let tokens = ["a", "b", "c", "\n"]
  try model.save(to: folder + "/new.safetensors", vocabulary: Vocabulary(kind: .char, tokens: tokens))
  let new = try HiddenMarkovModel.load(from: folder + "/new.safetensors")
  #expect(new.vocabulary.tokens == tokens && new.vocabulary.kind == .char && new.model.states == 3)
  #expect(new.model.emission == model.emission.map { Double(Float($0)) })
  // A file written before HMM files had a version: no version, no config, the tokenizer apart.
  let old = SafeTensors(
    tensors: [
      ("initial", Tensor(shape: [3], scalars: model.initial.map { Float($0) })),
      ("transition", Tensor(shape: [3, 3], scalars: model.transition.map { Float($0) })),
      ("emission", Tensor(shape: [3, 4], scalars: model.emission.map { Float($0) })),
    ],
    metadata: ["recurrent.format": "recurrent-hmm", "recurrent.vocabulary": #"["a","b","c","\n"]"#, "recurrent.tokenizer": "char"])
  try writeAtomically(old.encoded(), to: folder + "/old.safetensors")
  let loaded = try HiddenMarkovModel.load(from: folder + "/old.safetensors")
  #expect(loaded.model == new.model && loaded.vocabulary == new.vocabulary)
  // Refused, naming the file: emissions of another shape, and an extra tensor.
  var bad = old
  bad.tensors[2].tensor = Tensor(zeros: [3, 5])
  try writeAtomically(bad.encoded(), to: folder + "/bad.safetensors")
  #expect(throws: CheckpointError.inFile(
    path: folder + "/bad.safetensors", .shapeMismatch(tensor: "emission", expected: [3, 4], found: [3, 5]))) {
    try HiddenMarkovModel.load(from: folder + "/bad.safetensors")
  }
  var extra = old
  extra.tensors.append(("bias", Tensor(zeros: [1])))
  try writeAtomically(extra.encoded(), to: folder + "/extra.safetensors")
  #expect(throws: CheckpointError.inFile(path: folder + "/extra.safetensors", .unexpectedTensor("bias"))) {
    try HiddenMarkovModel.load(from: folder + "/extra.safetensors")
  }
}

@Test func hmmSentenceScoresEqualEveryStatePathSummed() {
  var rng = SplitMix64(seed: 13)
  let hmm = HiddenMarkovModel(states: 2, symbols: 3, using: &rng)
  let sentences = [[0, 2], [1, 1, 2], [2]]
  // By enumeration: p(x) = Σ over state paths of π(s0) b(s0, x0) Π a(s_{t-1}, s_t) b(s_t, x_t).
  func probability(_ x: [Int]) -> Double {
    var total = 0.0
    for code in 0..<(1 << x.count) {
      let path = (0..<x.count).map { (code >> $0) & 1 }
      var p = hmm.initial[path[0]] * hmm.emission[path[0] * 3 + x[0]]
      for t in 1..<x.count { p *= hmm.transition[path[t - 1] * 2 + path[t]] * hmm.emission[path[t] * 3 + x[t]] }
      total += p
    }
    return total
  }
  let expected = -sentences.reduce(0) { $0 + log(probability($1)) }
  let (nats, tokens) = hmm.scoreSentences(sentences, smoothing: 0)
  #expect(tokens == 6)
  #expect(abs(nats - expected) < 1e-10 * abs(expected), "\(nats) vs \(expected)")
}
