import ArgumentParser
import Formats
import Foundation
import Recurrent
import TextCorpus
import Training

/// A benchmark workload; Benchmarks/pytorch_reference.py defines the same ones by name.
struct Workload {
  enum Kind: String { case train, generate, score }
  let name: String
  let kind: Kind
  let cell: CellKind
  let layers, hidden, embedding, batch, sequenceLength: Int
  /// Tokens of the vocabulary: 65 for the character workloads; PTB's 10,000 and WikiText-2's
  /// 33,278 for the word-level ones, where the decoder and softmax dominate.
  var vocabularySize = Workload.characterVocabulary

  static let characterVocabulary = 65

  static let all: [Workload] = {
    let sizes: [(String, Int, Int, Int, Int, Int)] = [
      ("S", 1, 128, 64, 32, 64), ("M", 2, 256, 128, 64, 64), ("L", 2, 512, 256, 64, 128),
    ]
    var list: [Workload] = []
    for (size, layers, hidden, embedding, batch, seq) in sizes {
      list.append(Workload(name: "train-\(size)", kind: .train, cell: .gru, layers: layers, hidden: hidden,
        embedding: embedding, batch: batch, sequenceLength: seq))
    }
    list.append(Workload(name: "train-M-LSTM", kind: .train, cell: .lstm, layers: 2, hidden: 256, embedding: 128, batch: 64, sequenceLength: 64))
    list.append(Workload(name: "train-M-RNN", kind: .train, cell: .rnnTanh, layers: 2, hidden: 256, embedding: 128, batch: 64, sequenceLength: 64))
    for (size, layers, hidden, embedding, _, _) in sizes {
      list.append(Workload(name: "generate-\(size)", kind: .generate, cell: .gru, layers: layers, hidden: hidden,
        embedding: embedding, batch: 1, sequenceLength: 1))
    }
    // Batched generation (continuous batching's step): B streams advance one token together.
    for streams in [8, 64, 256] {
      list.append(Workload(name: "generate-M-b\(streams)", kind: .generate, cell: .gru, layers: 2, hidden: 256,
        embedding: 128, batch: streams, sequenceLength: 1))
    }
    for (size, layers, hidden, embedding, _, _) in sizes {
      list.append(Workload(name: "score-\(size)", kind: .score, cell: .gru, layers: layers, hidden: hidden,
        embedding: embedding, batch: 64, sequenceLength: 256))
    }
    // Word level, PyTorch's word_language_model recipe (batch 20, BPTT 35): 2x200 on PTB's
    // 10,000 words and 2x650 on WikiText-2's 33,278, embeddings as wide as the hidden state.
    for (vocabulary, label, width) in [(10_000, "W10k", 200), (33_278, "W33k", 650)] {
      for (cell, suffix) in [(CellKind.gru, ""), (.lstm, "-LSTM")] {
        list.append(Workload(
          name: "train-\(label)-2x\(width)\(suffix)", kind: .train, cell: cell, layers: 2, hidden: width,
          embedding: width, batch: 20, sequenceLength: 35, vocabularySize: vocabulary))
      }
    }
    return list
  }()

  /// Multiply-adds ×2 per token of a forward pass: input and recurrent products of every
  /// layer and the decoder (pointwise work not counted). Training counts 3× (forward, and a
  /// backward of twice the forward's products).
  var forwardFLOPsPerToken: Double {
    let gh = Double(cell.gateCount * hidden)
    var total = 0.0
    let recurrent = cell.hasRecurrentWeights ? hidden : 0  // the min cells have no W_hh product
    for l in 0..<layers { total += 2 * gh * Double((l == 0 ? embedding : hidden) + recurrent) }
    return total + 2 * Double(hidden * vocabularySize)
  }
}

/// `recurrent bench`: training throughput, generation latency and scoring throughput.
struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Measure training throughput, generation latency (batch 1) and scoring throughput.",
    discussion: """
      Workloads: \(Workload.all.map(\.name).joined(separator: ", ")). Training is forward + backward +
      gradient clipping + Adam on a character model (vocabulary 65), or for train-W* a word model \
      (vocabulary 10,000 or 33,278, batch 20, 35 steps). Giving --cell, --layers, --hidden,
      --embedding, --batch or --seq-len measures one custom training workload instead.
      Benchmarks/compare_pytorch.py runs these and PyTorch's equivalents side by side.
      """)

  @Option(name: .customLong("workload"), help: "A workload to run (repeatable). [default: all]") var workloads: [String] = []
  @Option(help: "Custom training workload: cell.") var cell: CellKind?
  @Option(help: "Custom training workload: layers.") var layers: Int?
  @Option(help: "Custom training workload: hidden size.") var hidden: Int?
  @Option(help: "Custom training workload: embedding size.") var embedding: Int?
  @Option(help: "Custom training workload: batch.") var batch: Int?
  @Option(help: "Custom training workload: sequence length.") var seqLen: Int?
  @OptionGroup var threadOptions: ThreadOptions
  @Option(help: "Minimum seconds measured per throughput workload.") var seconds: Double = 3
  @Option(help: "Generation steps timed (the median is reported).") var generateSteps: Int = 500
  @Flag(help: "One JSON object per workload.") var json = false

  var isCustom: Bool { cell != nil || layers != nil || hidden != nil || embedding != nil || batch != nil || seqLen != nil }

  func validate() throws {
    try Bounds.check(layers, Bounds.layers, "--layers")
    try Bounds.check(hidden, Bounds.hidden, "--hidden")
    try Bounds.check(embedding, Bounds.embedding, "--embedding")
    try Bounds.positive(batch, "--batch")
    try Bounds.positive(seqLen, "--seq-len")
    guard seconds > 0 && seconds.isFinite else { throw ValidationError("--seconds must be > 0") }
    guard generateSteps >= 1 else { throw ValidationError("--generate-steps must be >= 1") }
    for name in workloads where !Workload.all.contains(where: { $0.name == name }) {
      throw ValidationError("--workload \(name) is unknown; known: \(Workload.all.map(\.name).joined(separator: ", "))")
    }
    if isCustom && !workloads.isEmpty { throw ValidationError("--workload and custom sizes (--cell, --hidden, ...) exclude each other") }
  }

  func run() throws {
    let compute = threadOptions.compute
    let selected: [Workload]
    if isCustom {
      selected = [Workload(
        name: "train-custom", kind: .train, cell: cell ?? .gru, layers: layers ?? 2, hidden: hidden ?? 256,
        embedding: embedding ?? 128, batch: batch ?? 64, sequenceLength: seqLen ?? 64)]
    } else {
      selected = workloads.isEmpty ? Workload.all : Workload.all.filter { workloads.contains($0.name) }
    }
    for w in selected {
      var result = try measure(w, compute: compute)
      result.precision = compute.precision
      if json {
        print(result.json)
      } else {
        print(result.text)
      }
    }
  }

  struct Result {
    let workload: Workload
    let threads: Int
    var precision = Precision.float32
    var tokensPerSecond: Double? = nil
    var msPerToken: Double? = nil
    let maxRSSKilobytes: Int

    var gflops: Double? {
      tokensPerSecond.map { $0 * workload.forwardFLOPsPerToken * (workload.kind == .train ? 3 : 1) / 1e9 }
    }
    var json: String {
      JSONValue.object([
        ("workload", .string(workload.name)), ("implementation", "recurrent"), ("threads", .int(threads)),
        ("precision", .string(precision.rawValue)),
        ("tokens_per_second", .optional(tokensPerSecond)), ("gflops", .optional(gflops)),
        ("ms_per_token", .optional(msPerToken)), ("max_rss_kb", .int(maxRSSKilobytes)),
      ]).text
    }
    var text: String {
      switch workload.kind {
      case .generate where workload.batch > 1:
        return String(
          format: "%-16@ %8.4f ms/step (median), %10.0f tokens/s over %d streams", workload.name, msPerToken ?? 0,
          tokensPerSecond ?? 0, workload.batch)
      case .generate:
        return String(format: "%-14@ %8.4f ms/token (median)", workload.name, msPerToken ?? 0)
      default:
        return String(format: "%-14@ %10.0f tokens/s  %6.1f GFLOP/s", workload.name, tokensPerSecond ?? 0, gflops ?? 0)
      }
    }
  }

  func measure(_ w: Workload, compute: Compute) throws -> Result {
    var rng = SplitMix64(seed: 1)
    let configuration = LanguageModelConfiguration(
      cell: w.cell, layers: w.layers, hiddenSize: w.hidden, embeddingSize: w.embedding,
      vocabularySize: w.vocabularySize)
    func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }
    switch w.kind {
    case .train:
      var options = TrainingOptions()
      options.cell = w.cell
      options.layers = w.layers
      options.hiddenSize = w.hidden
      options.embeddingSize = w.embedding
      options.batchSize = w.batch
      options.sequenceLength = w.sequenceLength
      options.threads = compute.threads
      let vocabulary = Vocabulary(kind: .word, tokens: (0..<w.vocabularySize).map { "w\($0)" })
      let tokens = (0..<(w.batch * (w.sequenceLength * 64 + 1))).map { _ in Int(rng.next() % UInt64(w.vocabularySize)) }
      var session = try TrainingSession(options: options, vocabulary: vocabulary, trainTokens: tokens, validTokens: [0, 1])
      session.precision = compute.precision
      for _ in 0..<2 { try session.trainStep() }
      let start = now()
      var steps = 0
      while now() - start < seconds || steps < 3 {
        try session.trainStep()
        steps += 1
      }
      let rate = Double(steps * w.batch * w.sequenceLength) / (now() - start)
      return Result(workload: w, threads: compute.threads, tokensPerSecond: rate, maxRSSKilobytes: maxRSS())
    case .generate:
      let model = LanguageModel(configuration, using: &rng)
      if w.batch > 1 {
        // B rows per step, each fed its own previous argmax (the scheduler's step without HTTP).
        let stepper = LanguageModelStepper(model, capacity: w.batch, compute: compute)
        var tokens = (0..<w.batch).map { $0 % w.vocabularySize }
        var times: [Double] = []
        let V = w.vocabularySize
        for i in 0..<(generateSteps / 4 + 10) {
          let t0 = now()
          let logits = stepper.step(tokens: tokens)
          for r in 0..<w.batch {
            var best = 0
            for j in 1..<V where logits[r * V + j] > logits[r * V + best] { best = j }
            tokens[r] = best
          }
          if i >= 10 { times.append(now() - t0) }
        }
        times.sort()
        let median = times[times.count / 2]
        return Result(
          workload: w, threads: compute.threads, tokensPerSecond: Double(w.batch) / median, msPerToken: median * 1e3,
          maxRSSKilobytes: maxRSS())
      }
      let stepper = LanguageModelStepper(model, compute: compute)
      var token = 0
      var times: [Double] = []
      for i in 0..<(generateSteps + 20) {
        let t0 = now()
        let logits = stepper.step(token)
        var best = 0
        for j in 1..<logits.count where logits[j] > logits[best] { best = j }
        token = best
        if i >= 20 { times.append(now() - t0) }  // the first steps warm caches up
      }
      times.sort()
      return Result(workload: w, threads: compute.threads, msPerToken: times[times.count / 2] * 1e3, maxRSSKilobytes: maxRSS())
    case .score:
      let model = LanguageModel(configuration, using: &rng)
      let ids = (0..<(w.batch * w.sequenceLength)).map { _ in Int(rng.next() % UInt64(w.vocabularySize)) }
      _ = model.logits(ids: ids, sequenceLength: w.sequenceLength, batchSize: w.batch, compute: compute)
      let start = now()
      var passes = 0
      while now() - start < seconds || passes < 2 {
        let (logits, _) = model.logits(ids: ids, sequenceLength: w.sequenceLength, batchSize: w.batch, compute: compute)
        _ = Loss.softmaxCrossEntropy(logits: logits, targets: ids, compute: compute)
        passes += 1
      }
      let rate = Double(passes * w.batch * w.sequenceLength) / (now() - start)
      return Result(workload: w, threads: compute.threads, tokensPerSecond: rate, maxRSSKilobytes: maxRSS())
    }
  }
}

/// Peak resident memory of this process, in kilobytes.
func maxRSS() -> Int {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return usage.ru_maxrss
}
