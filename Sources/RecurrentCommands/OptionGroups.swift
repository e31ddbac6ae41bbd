import ArgumentParser
import Foundation
import Recurrent
import TextCorpus
import Training

/// Bounds of the options, each written once.
enum Bounds {
  static let layers = 1...64
  static let hidden = 1...65536
  static let embedding = 1...65536
  static let threads = 1...4096

  /// Refuses a value outside `range`, naming the option.
  static func check<T: Comparable>(_ value: T?, _ range: ClosedRange<T>, _ option: String) throws {
    if let value, !range.contains(value) {
      throw ValidationError("\(option) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
    }
  }

  /// Refuses a value that is not > 0 (or, with `orZero`, >= 0), naming the option.
  static func positive<T: Comparable & Numeric>(_ value: T?, _ option: String, orZero: Bool = false) throws {
    guard let value else { return }
    if orZero ? value < 0 : value <= 0 {
      throw ValidationError("\(option) must be \(orZero ? ">=" : ">") 0, got \(value)")
    }
  }

  /// Refuses a number that is not finite and > 0 (or >= 0).
  static func positive(_ value: Float?, _ option: String, orZero: Bool = false) throws {
    guard let value else { return }
    guard value.isFinite, orZero ? value >= 0 : value > 0 else {
      throw ValidationError("\(option) must be a number \(orZero ? ">=" : ">") 0, got \(value)")
    }
  }
}

/// The defaults of a command's option groups, written once: what a run uses when an option
/// is left out, and what `--help` shows.
protocol CommandDefaults {
  static var cell: CellKind { get }
  static var layers: Int { get }
  static var hidden: Int { get }
  static var optimizer: OptimizerKind { get }
  static var learningRate: Float { get }
  /// Global-norm clipping; 0 is off.
  static var clip: Float { get }
  static var seed: UInt64 { get }
  /// The matrix products' precision when `--precision` is left out.
  static var precision: Precision { get }
  /// How `--help` states that default.
  static var precisionDefault: String { get }
}

extension CommandDefaults {
  static var precision: Precision { .float32 }
  static var precisionDefault: String { "f32" }
}

/// Model shape: `--cell`, `--layers`, `--hidden`, `--dropout`. Values are nil when left out.
struct ModelOptions<Defaults: CommandDefaults>: ParsableArguments {
  @Option(help: "Recurrent cell. [default: \(Defaults.cell.rawValue)]")
  var cell: CellKind?
  @Option(help: "Recurrent layers. [default: \(Defaults.layers)]") var layers: Int?
  @Option(help: "Units per recurrent layer. [default: \(Defaults.hidden)]") var hidden: Int?
  @Option(help: "Dropout probability. [default: 0]") var dropout: Float?
  @Option(name: .customLong("init"), help: "How the recurrent weights are drawn: pytorch or keras (Glorot-uniform input weights, orthogonal recurrent weights, zero biases). [default: pytorch]")
  var initialization: Initialization?
  @Option(help: "LSTM: the forget gate's bias at the start (Keras and char-rnn use 1). [default: as --init draws it]")
  var forgetBias: Float?

  var cellKind: CellKind { cell ?? Defaults.cell }
  var layerCount: Int { layers ?? Defaults.layers }
  var hiddenSize: Int { hidden ?? Defaults.hidden }
  var dropoutProbability: Float { dropout ?? 0 }

  func validate() throws {
    try Bounds.check(layers, Bounds.layers, "--layers")
    try Bounds.check(hidden, Bounds.hidden, "--hidden")
    if let dropout, !(dropout >= 0 && dropout < 1) { throw ValidationError("--dropout must be in [0, 1), got \(dropout)") }
    if let forgetBias, !forgetBias.isFinite { throw ValidationError("--forget-bias must be a finite number, got \(forgetBias)") }
    if forgetBias != nil && !cellKind.isLSTM { throw ValidationError("--forget-bias needs --cell lstm or lstm-peephole") }
  }
}

/// The regularizers of AWD-LSTM and haste: `--weight-drop`, `--locked-dropout`,
/// `--embedding-dropout`, `--zoneout`, `--ar`, `--tar`. Values are nil when left out (train:
/// the recipe's, `TrainingOptions.recipe`, or for a new word-level run `TrainingOptions.wordRecipe`;
/// fit: 0).
struct RegularizationOptions: ParsableArguments {
  static let recipe = TrainingOptions.recipe
  static let words = TrainingOptions.wordRecipe
  @Option(help: "DropConnect on the recurrent weights W_hh, one mask per window (AWD-LSTM). [default: train \(recipe.weightDrop), with --tokenizer word \(words.weightDrop); fit 0]")
  var weightDrop: Float?
  @Option(help: "Variational dropout, one mask per sequence for all its steps, on the embeddings, between layers and before the output (train); on each recurrent layer's output (fit). [default: train \(recipe.lockedDropout), with --tokenizer word \(words.lockedDropout); fit 0]")
  var lockedDropout: Float?
  @Option(help: "Drops whole tokens: rows of the embedding, every occurrence in the window. [default: train \(recipe.embeddingDropout), with --tokenizer word \(words.embeddingDropout); fit 0]")
  var embeddingDropout: Float?
  @Option(help: "Zoneout on h: in training each unit keeps its previous value with this probability; at inference h = p*h_prev + (1-p)*h_new. [default: train \(recipe.zoneout), fit 0]")
  var zoneout: Float?
  @Option(name: .customLong("ar"), help: "Activation regularization: adds AR * mean(o^2) of the last recurrent layer's output (after dropout) to the loss. [default: train \(recipe.activation), fit 0]")
  var activation: Float?
  @Option(name: .customLong("tar"), help: "Temporal activation regularization: adds TAR * mean((h_t - h_{t-1})^2) of the last recurrent layer's output to the loss. [default: train \(recipe.temporalActivation), fit 0]")
  var temporalActivation: Float?

  /// Whether any was given.
  var given: Bool {
    [weightDrop, lockedDropout, embeddingDropout, zoneout, activation, temporalActivation].contains { $0 != nil }
  }

  /// `base` (a resumed run's, or none) with what was given.
  func regularization(base: Regularization?) -> Regularization {
    var r = base ?? Regularization()
    if let weightDrop { r.weightDrop = weightDrop }
    if let lockedDropout { r.lockedDropout = lockedDropout }
    if let embeddingDropout { r.embeddingDropout = embeddingDropout }
    if let zoneout { r.zoneout = zoneout }
    if let activation { r.activation = activation }
    if let temporalActivation { r.temporalActivation = temporalActivation }
    return r
  }

  func validate() throws {
    for (flag, p) in [
      ("--weight-drop", weightDrop), ("--locked-dropout", lockedDropout), ("--embedding-dropout", embeddingDropout),
      ("--zoneout", zoneout),
    ] {
      if let p, !(p >= 0 && p < 1) { throw ValidationError("\(flag) must be in [0, 1), got \(p)") }
    }
    for (flag, f) in [("--ar", activation), ("--tar", temporalActivation)] {
      if let f, !(f >= 0 && f.isFinite) { throw ValidationError("\(flag) must be a finite number >= 0, got \(f)") }
    }
  }
}

/// How the weights move: `--optimizer`, `--lr`, `--weight-decay`, `--clip`.
struct OptimizerOptions<Defaults: CommandDefaults>: ParsableArguments {
  @Option(help: "Optimizer (torch.optim's update rules). [default: \(Defaults.optimizer.rawValue)]")
  var optimizer: OptimizerKind?
  @Option(help: "Learning rate. [default: \(Defaults.learningRate)]") var lr: Float?
  @Option(help: "Weight decay (L2; decoupled for adamw). [default: 0, adamw 0.01]") var weightDecay: Float?
  @Option(help: "Clip gradients to this global norm (0: off). [default: \(Defaults.clip)]") var clip: Float?

  func validate() throws {
    try Bounds.positive(lr, "--lr")
    try Bounds.positive(weightDecay, "--weight-decay", orZero: true)
    try Bounds.positive(clip, "--clip", orZero: true)
  }

  /// The optimizer configuration: `base` (a checkpoint's, or the defaults) with what was given.
  func configuration(base: OptimizerConfiguration? = nil) -> OptimizerConfiguration {
    var c = base ?? OptimizerConfiguration(kind: Defaults.optimizer, learningRate: Defaults.learningRate)
    if let optimizer { c = OptimizerConfiguration(kind: optimizer, learningRate: lr ?? c.learningRate) }
    if let lr { c.learningRate = lr }
    if let weightDecay { c.weightDecay = weightDecay }
    return c
  }

  /// The clipping norm: `base` unless given; nil is off.
  func clipNorm(base: Float?? = nil) -> Float? {
    if let clip { return clip > 0 ? clip : nil }
    if let base { return base }
    return Defaults.clip > 0 ? Defaults.clip : nil
  }
}

/// `--precision`: the matrix products' operand format.
enum PrecisionOption {
  static let help = help(default: "f32")

  /// The help, stating `default` as the default.
  static func help(default: String) -> ArgumentHelp {
    """
    Matrix products in f32, or bf16 (bfloat16 operands, float32 accumulation; weights, optimizer \
    state and checkpoints stay f32). bf16 needs a CPU with AVX512_BF16. [default: \(`default`)]
    """
  }

  /// Refuses bf16 on a CPU without AVX512_BF16, in one line.
  static func check(_ precision: Precision?) throws {
    if precision == .bfloat16 && !Precision.bfloat16IsSupported {
      throw ValidationError("--precision bf16 needs a CPU with AVX512_BF16 (avx512_bf16 in /proc/cpuinfo); this one lacks it")
    }
  }
}

/// How a run runs: `--seed`, `--threads`, `--precision`.
struct RunOptions<Defaults: CommandDefaults>: ParsableArguments {
  @Option(help: "Random seed. [default: \(Defaults.seed)]") var seed: UInt64?
  @Option(help: "Threads; results are identical for any count. [default: all cores]") var threads: Int?
  @Option(help: PrecisionOption.help(default: Defaults.precisionDefault)) var precision: Precision?

  var randomSeed: UInt64 { seed ?? Defaults.seed }
  /// `--precision`, or the command's default.
  var precisionInEffect: Precision { precision ?? Defaults.precision }
  var compute: Compute { Compute(threads: threads ?? System.coreCount, precision: precisionInEffect) }

  func validate() throws {
    try Bounds.check(threads, Bounds.threads, "--threads")
    try PrecisionOption.check(precision)
  }
}

/// `--threads` and `--precision`, for commands without randomness or model options.
struct ThreadOptions: ParsableArguments {
  @Option(help: "Threads; results are identical for any count. [default: all cores]") var threads: Int?
  @Option(help: PrecisionOption.help) var precision: Precision?
  var compute: Compute { Compute(threads: threads ?? System.coreCount, precision: precision ?? .float32) }
  func validate() throws {
    try Bounds.check(threads, Bounds.threads, "--threads")
    try PrecisionOption.check(precision)
  }
}

/// The text a model is trained on and how it becomes tokens: `--text`, `--valid-text`,
/// `--tokenizer`, `--vocab-size`, `--tokenizer-from`, `--encoding`, `--min-count`, `--max-vocab`.
struct TextDataOptions: ParsableArguments {
  @Option(help: "Training text (UTF-8). [default: the bundled tinyshakespeare]") var text: String?
  @Option(help: "Validation text; its characters join the vocabulary.") var validText: String?
  @Option(help: "Tokenizer: char, word or bpe (byte-level BPE learned from the training text). [default: char]")
  var tokenizer: TokenizerKind?
  @Option(help: "BPE: tokens in all, the 256 byte tokens included. [default: \(Self.defaultVocabularySize)]")
  var vocabSize: Int?
  @Option(help: "Take the tokenizer (vocabulary, BPE merges, encoding) of this checkpoint: a language model or an HMM.")
  var tokenizerFrom: String?
  @Option(help: "How the files' bytes become text: utf8 (validated), latin1 (a byte is a character), bytes (256 byte tokens). [default: utf8]")
  var encoding: TextEncoding?
  @Option(help: "Word tokenizer: keep words seen at least this often. [default: 1]") var minCount: Int?
  @Option(help: "Word tokenizer: at most this many tokens, <unk> and <eos> included. [default: all]") var maxVocab: Int?

  static let defaultVocabularySize = 1024

  var textPath: String { text ?? bundledCorpusPath() }
  var tokenizerKind: TokenizerKind { tokenizer ?? .char }
  var textEncoding: TextEncoding { encoding ?? .utf8 }

  func validate() throws {
    try Bounds.positive(minCount, "--min-count")
    try Bounds.positive(maxVocab, "--max-vocab")
    if let vocabSize {
      guard tokenizer == .bpe else { throw ValidationError("--vocab-size is for --tokenizer bpe") }
      guard vocabSize >= 256 && vocabSize <= 1 << 20 else {
        throw ValidationError("--vocab-size must be in 256...1048576 (it counts the 256 byte tokens), got \(vocabSize)")
      }
    }
    if tokenizerFrom != nil {
      let clashing = [
        ("--tokenizer", tokenizer != nil), ("--encoding", encoding != nil), ("--min-count", minCount != nil),
        ("--max-vocab", maxVocab != nil),
      ].filter(\.1).map(\.0)
      if let first = clashing.first {
        throw ValidationError("--tokenizer-from takes the checkpoint's tokenizer and encoding; drop \(first)")
      }
    }
  }

  /// The vocabulary of a fresh model, the one way every command builds it: the sorted
  /// characters of the training and validation text (the 256 byte tokens with `--encoding
  /// bytes`), words of the training text by count, or BPE merges learned from the training text.
  func vocabulary(train: String, valid: String?, kind: TokenizerKind) -> Vocabulary {
    switch kind {
    case .char: Vocabulary.characters(of: [train] + (valid.map { [$0] } ?? []), encoding: textEncoding)
    case .word: Vocabulary.words(of: train, minimumCount: minCount ?? 1, maximumSize: maxVocab, encoding: textEncoding)
    case .bpe:
      Vocabulary(
        bytePairs: .train(on: textEncoding.bytes(of: train), vocabularySize: vocabSize ?? Self.defaultVocabularySize),
        encoding: textEncoding)
    }
  }

  /// The vocabulary of `--tokenizer-from`, if given.
  func sourceVocabulary() throws -> Vocabulary? { try tokenizerFrom.map(tokenizerVocabulary) }

  /// A text file read with `--encoding`.
  func read(_ path: String) throws -> String { try readText(path: path, encoding: textEncoding) }
}
