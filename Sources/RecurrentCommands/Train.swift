import ArgumentParser
import Formats
import Foundation
import Recurrent
import TextCorpus
import Training

/// `recurrent train`'s defaults: those of `TrainingOptions`.
enum TrainDefaults: CommandDefaults {
  static let options = TrainingOptions()
  static var cell: CellKind { options.cell }
  static var layers: Int { options.layers }
  static var hidden: Int { options.hiddenSize }
  static var optimizer: OptimizerKind { options.optimizer.kind }
  static var learningRate: Float { options.optimizer.learningRate }
  static var clip: Float { options.clip ?? 0 }
  static var seed: UInt64 { options.seed }
  /// bf16 products where the CPU has them (1.5x the training rate of the default model, README
  /// "The 10-minute run"), else f32.
  static var precision: Precision { Precision.bfloat16IsSupported ? .bfloat16 : .float32 }
  static let precisionDefault = "bf16 where the CPU has AVX512_BF16, else f32"
}

/// `recurrent train`: train a language model on a text file.
struct Train: ParsableCommand {
  /// The default run's steps: what fits `defaultTimeLimit` on the 2-core AVX-512 machine the
  /// recipe was measured on, in the precision in effect.
  static func defaultSteps(_ precision: Precision) -> Int { precision == .bfloat16 ? 13000 : 9400 }
  static let defaultTimeLimit = 570.0

  static let configuration = CommandConfiguration(
    abstract: "Train a recurrent language model on a text file (default: the bundled tinyshakespeare).",
    discussion: """
      With no options, trains a \(TrainDefaults.layers)-layer \(TrainDefaults.cell.rawValue) (\(TrainDefaults.hidden) \
      units) character model on Data/tinyshakespeare.txt for \(defaultSteps(.bfloat16)) steps (bf16 products, \
      where the CPU has AVX512_BF16; else \(defaultSteps(.float32)) in f32) of \
      \(TrainDefaults.options.batchSize) x \(TrainDefaults.options.sequenceLength) characters with \
      \(TrainDefaults.optimizer.rawValue) \(TrainDefaults.learningRate) and a cosine schedule (at most \
      \(Int(defaultTimeLimit)) seconds), and saves model.safetensors, model.metrics.jsonl and model.loss.svg. \
      Options left out on --resume are taken from the checkpoint.
      """)

  @OptionGroup(title: "Data (without --valid-text, the last 10% of --text validates)") var data: TextDataOptions
  @OptionGroup(title: "Model") var modelOptions: ModelOptions<TrainDefaults>
  @OptionGroup(title: "Regularization (AWD-LSTM, haste; by default the recipe: weight drop and locked dropout, and for words embedding dropout)") var regularizationOptions: RegularizationOptions
  @Option(help: "Embedding size. [default: \(TrainDefaults.options.embeddingSize); the hidden size with --tied]")
  var embedding: Int?
  @Flag(help: "Tie the input embedding and the output layer (needs --embedding equal to --hidden, or to --proj-size).") var tied = false
  @Option(help: "LSTM: project each layer's state h to this width P (0 < P < --hidden; PyTorch's proj_size, weight_hr_l{k} [P, H]). [default: none]")
  var projSize: Int?
  @Option(help: "Sequences per batch. [default: \(TrainDefaults.options.batchSize)]") var batch: Int?
  @Option(help: "Steps of backpropagation through time per window. [default: \(TrainDefaults.options.sequenceLength)]")
  var seqLen: Int?
  @Flag(help: "Cut every epoch into the same windows (by default each epoch after the first moves the window boundaries by a random 0..<--seq-len positions).")
  var fixedWindows = false
  @Option(help: "Stop after this many steps in the whole run. [default: \(Train.defaultSteps(.bfloat16)) in bf16, \(Train.defaultSteps(.float32)) in f32, when no --epochs or --time-limit]")
  var steps: Int?
  @Option(help: "Stop after this many epochs.") var epochs: Double?
  @Option(help: "Stop after this many seconds. [default: \(Int(Train.defaultTimeLimit)) when no --steps or --epochs]")
  var timeLimit: Double?
  @OptionGroup(title: "Optimizer") var optimizerOptions: OptimizerOptions<TrainDefaults>
  @Option(help: "Learning-rate schedule: constant, step:EVERY[:GAMMA], exponential:GAMMA, cosine[:PERIOD[:MIN]], warmup:STEPS[:START]. [default: cosine over --steps, else constant]")
  var schedule: String?
  @OptionGroup(title: "Run") var runOptions: RunOptions<TrainDefaults>
  @Option(help: "Checkpoint path (.safetensors); metrics and the loss curve go beside it.") var checkpoint: String = "model.safetensors"
  @Option(help: "Save the checkpoint every N steps (0: at the end only). [default: \(TrainDefaults.options.checkpointEvery)]")
  var checkpointEvery: Int?
  @Flag(help: "Continue the run saved in --checkpoint.") var resume = false
  @Option(help: "Write TensorBoard event files (train loss, learning rate, gradient norm, tokens/s, validation loss and bits per token) into this folder.")
  var tensorboard: String?
  @Option(help: "Fine-tune: start a new run (fresh optimizer, schedule and steps) from this checkpoint's weights; tokens new to its vocabulary get fresh rows.")
  var initFrom: String?
  @Option(help: "Validate every N steps (0: at the end only). [default: \(TrainDefaults.options.evalEvery)]") var evalEvery: Int?
  @Option(help: "Print a sample every N steps (0: never). [default: \(TrainDefaults.options.sampleEvery)]") var sampleEvery: Int?
  @Option(help: "On a NaN or infinite loss or gradient: stop (save nothing) or skip that update. [default: \(TrainDefaults.options.onNaN.rawValue)]")
  var onNan: NaNPolicy?
  @Flag(help: "One JSON object per event on standard output, nothing else.") var json = false
  @Option(help: "Train on a token file from recurrent prepare, memory-mapped (its tokenizer is the model's) instead of a text.")
  var tokens: String?
  @Option(help: "Validate on this token file (prepared with --tokenizer-from the --tokens file). [default: the last 10% of --tokens]")
  var validTokens: String?

  func validate() throws {
    if (modelOptions.initialization != nil || modelOptions.forgetBias != nil) && (resume || initFrom != nil) {
      throw ValidationError("--init and --forget-bias draw a new model; they do not go with --resume or --init-from")
    }
    try Bounds.check(embedding, Bounds.embedding, "--embedding")
    try Bounds.positive(batch, "--batch")
    try Bounds.positive(seqLen, "--seq-len")
    try Bounds.positive(steps, "--steps")
    try Bounds.positive(checkpointEvery, "--checkpoint-every", orZero: true)
    try Bounds.positive(evalEvery, "--eval-every", orZero: true)
    try Bounds.positive(sampleEvery, "--sample-every", orZero: true)
    if let epochs, !(epochs > 0 && epochs.isFinite) { throw ValidationError("--epochs must be > 0") }
    if let timeLimit, !(timeLimit > 0 && timeLimit.isFinite) { throw ValidationError("--time-limit must be > 0") }
    if tied, projSize == nil, let hidden = modelOptions.hidden, let embedding, hidden != embedding {
      throw ValidationError("--tied needs --embedding equal to --hidden (got \(embedding) and \(hidden))")
    }
    if let schedule { _ = try parseSchedule(schedule, steps: steps) }
    if checkpoint.isEmpty { throw ValidationError("--checkpoint must not be empty") }
    if tokens != nil {
      let clashing = [
        ("--text", data.text != nil), ("--valid-text", data.validText != nil), ("--tokenizer", data.tokenizer != nil),
        ("--encoding", data.encoding != nil), ("--tokenizer-from", data.tokenizerFrom != nil),
        ("--vocab-size", data.vocabSize != nil), ("--min-count", data.minCount != nil),
        ("--max-vocab", data.maxVocab != nil), ("--init-from", initFrom != nil),
      ].filter(\.1).map(\.0)
      if let first = clashing.first { throw ValidationError("--tokens holds the ids and their tokenizer; drop \(first)") }
    } else if validTokens != nil {
      throw ValidationError("--valid-tokens goes with --tokens")
    }
    if resume && initFrom != nil {
      throw ValidationError("--init-from starts a new run from a checkpoint's weights, --resume continues a run: give one")
    }
  }

  /// Fine-tuning keeps the architecture of the checkpoint it starts from: an option that says
  /// otherwise is refused, naming both values.
  func checkArchitecture(_ c: LanguageModelConfiguration, vocabulary: Vocabulary, path: String) throws {
    func refuse(_ option: String, _ given: String, _ stored: String) throws -> Never {
      throw ValidationError("\(option) \(given) contradicts --init-from \(path), which has \(stored)")
    }
    if let cell = modelOptions.cell, cell != c.cell { try refuse("--cell", cell.rawValue, c.cell.rawValue) }
    if let layers = modelOptions.layers, layers != c.layers { try refuse("--layers", "\(layers)", "\(c.layers)") }
    if let hidden = modelOptions.hidden, hidden != c.hiddenSize { try refuse("--hidden", "\(hidden)", "\(c.hiddenSize)") }
    if let embedding, embedding != c.embeddingSize { try refuse("--embedding", "\(embedding)", "\(c.embeddingSize)") }
    if let projSize, projSize != c.projectionSize { try refuse("--proj-size", "\(projSize)", "proj_size \(c.projectionSize)") }
    if tied && !c.tied { try refuse("--tied", "", "untied embeddings") }
    if let tokenizer = data.tokenizer, tokenizer != vocabulary.kind {
      try refuse("--tokenizer", tokenizer.rawValue, vocabulary.kind.rawValue)
    }
    if let encoding = data.encoding, encoding != vocabulary.encoding {
      try refuse("--encoding", encoding.rawValue, vocabulary.encoding.rawValue)
    }
  }

  /// The options of this run: the checkpoint's when resuming (at step `step`), overridden by
  /// what was given. Extending a run whose annealing schedule ended at its old total re-fits the
  /// schedule from the current rate down to the minimum at the new total (it never climbs back).
  func options(base: TrainingOptions?, step: Int = 0) throws -> TrainingOptions {
    var o = base ?? TrainingOptions()
    if let cell = modelOptions.cell { o.cell = cell }
    if let layers = modelOptions.layers { o.layers = layers }
    if let hidden = modelOptions.hidden { o.hiddenSize = hidden }
    if let projSize { o.projectionSize = projSize }
    if let embedding { o.embeddingSize = embedding } else if tied, base == nil { o.embeddingSize = o.projectionSize ?? o.hiddenSize }
    if tied { o.tied = true }
    if let dropout = modelOptions.dropout { o.dropout = dropout }
    if regularizationOptions.given { o.regularization = regularizationOptions.regularization(base: o.regularization) }
    if !o.cell.hasRecurrentWeights {
      // Weight drop acts on W_hh, which the min cells have not: the recipe's is left out for
      // them, and asking for it is an error.
      if let p = regularizationOptions.weightDrop, p > 0 {
        throw ValidationError("--weight-drop acts on the recurrent weights W_hh, which \(o.cell.rawValue) has not")
      }
      o.regularization?.weightDrop = 0
    }
    if let batch { o.batchSize = batch }
    if let seqLen { o.sequenceLength = seqLen }
    if fixedWindows { o.shiftsWindows = false }
    if let seed = runOptions.seed { o.seed = seed }
    if let threads = runOptions.threads { o.threads = threads }
    o.optimizer = optimizerOptions.configuration(base: o.optimizer)
    o.clip = optimizerOptions.clipNorm(base: o.clip)
    if let evalEvery { o.evalEvery = evalEvery }
    if let sampleEvery { o.sampleEvery = sampleEvery }
    if let checkpointEvery { o.checkpointEvery = checkpointEvery }
    if let onNan { o.onNaN = onNan }
    if let initialization = modelOptions.initialization { o.initialization = initialization }
    if let forgetBias = modelOptions.forgetBias { o.forgetBias = forgetBias }
    // Stopping rules belong to this invocation. With none given: defaultSteps, and at most
    // 570 seconds so that the run with no options ends within 10 minutes on a slow machine.
    let noStoppingRule = steps == nil && epochs == nil && timeLimit == nil
    o.steps = steps ?? (noStoppingRule ? Self.defaultSteps(runOptions.precisionInEffect) : nil)
    o.epochs = epochs
    o.timeLimit = timeLimit ?? (noStoppingRule ? Self.defaultTimeLimit : nil)
    if let schedule {
      o.schedule = try parseSchedule(schedule, steps: o.steps)
    } else if let base {
      o.schedule = base.schedule.extended(
        base: o.optimizer.learningRate, from: step, oldTotal: base.steps, newTotal: o.steps)
    } else if let total = o.steps {
      o.schedule = .cosine(period: total, minimum: 0)  // anneal to zero over the run
    }
    if let p = o.projectionSize, !(o.cell == .lstm && p > 0 && p < o.hiddenSize) {
      throw ValidationError("--proj-size \(p) needs --cell lstm and 0 < P < --hidden \(o.hiddenSize) (got --cell \(o.cell.rawValue))")
    }
    if o.tied && o.embeddingSize != (o.projectionSize ?? o.hiddenSize) {
      throw ValidationError(
        o.projectionSize == nil
          ? "--tied needs --embedding equal to --hidden (got \(o.embeddingSize) and \(o.hiddenSize))"
          : "--tied needs --embedding equal to --proj-size (got \(o.embeddingSize) and \(o.projectionSize!))")
    }
    return o
  }

  func run() throws {
    // Launched by mpirun as several ranks (an MPI build): data-parallel over them. Every step
    // before training is collective: if it fails on any rank, the first such rank says why in
    // one line and every rank exits 1 (none waits forever for the others).
    let world = try trainingWorld("train")
    let isRoot = (world?.rank ?? 0) == 0
    var resumed: Checkpoint? = nil
    var initial: Checkpoint? = nil
    var source: Vocabulary? = nil
    try collectively(world) {
      guard isRoot else { return }
      if resume {
        resumed = try Checkpoint.load(from: checkpoint)
        guard resumed?.progress != nil else {
          throw CommandError("\(checkpoint) holds no training state to resume (it was not written by recurrent train)")
        }
      } else {
        try ensureWritable(checkpoint)
      }
      initial = try initFrom.map { try Checkpoint.load(from: $0) }
      if data.tokenizerFrom != nil && (resume || initFrom != nil) {
        throw ValidationError("--tokenizer-from is for a new model; \(resume ? "--resume" : "--init-from") keeps its checkpoint's tokenizer")
      }
      source = try data.sourceVocabulary()
    }
    // Rank 0 read the checkpoints and the tokenizer (the other hosts need not have them).
    if let world {
      resumed = try world.share(resumed)
      initial = try world.share(initial)
      source = try world.share(source)
    }
    var options = try collectively(world) { try self.options(base: resumed?.progress?.options, step: resumed?.progress?.step ?? 0) }
    /// A new word-level run takes the word recipe (with what was given on top of it).
    func wordRecipe(_ kind: TokenizerKind) {
      guard resumed == nil, kind == .word else { return }
      var r = regularizationOptions.regularization(base: TrainingOptions.wordRecipe)
      if !options.cell.hasRecurrentWeights { r.weightDrop = 0 }  // min cells: no W_hh (asking is refused)
      options.regularization = r
    }
    if let world, runOptions.threads == nil {
      options.threads = max(1, System.coreCount / launchedLocalSize(default: world.size))
    }
    var session: TrainingSession
    if let tokens {
      // Token files are mapped, not read: every rank maps its own copy (or a shared one).
      let (trainIDs, validIDs, fileVocabulary) = try collectively(world) { try mappedTokens(tokens) }
      wordRecipe(fileVocabulary.kind)
      session = try collectively(world) { () throws -> TrainingSession in
        if let resumed, resumed.vocabulary.kind != fileVocabulary.kind || resumed.vocabulary.tokens != fileVocabulary.tokens {
          throw CommandError("--tokens \(tokens) has another tokenizer than the checkpoint \(checkpoint)")
        }
        guard trainIDs.count / options.batchSize >= 2 else {
          throw CommandError(
            "\(tokens): \(trainIDs.count) training tokens are too few for --batch \(options.batchSize) (need at least \(2 * options.batchSize))")
        }
        return try resumed.map {
          try TrainingSession(resuming: $0, options: options, train: trainIDs, valid: validIDs, world: world)
        }
          ?? TrainingSession(options: options, vocabulary: fileVocabulary, train: trainIDs, valid: validIDs, world: world)
      }
    } else {
      let (trainText, validText) = try collectively(world) { () throws -> (String, String) in
        if let initial, let initFrom {
          let c = initial.model.configuration
          try checkArchitecture(c, vocabulary: initial.vocabulary, path: initFrom)
          (options.cell, options.layers, options.hiddenSize, options.embeddingSize, options.tied) =
            (c.cell, c.layers, c.hiddenSize, c.embeddingSize, c.tied)
          options.projectionSize = c.projectionSize > 0 ? c.projectionSize : nil
        }
        if let tokenizer = data.tokenizer, let resumed, tokenizer != resumed.vocabulary.kind {
          throw ValidationError("--tokenizer \(tokenizer.rawValue) differs from the checkpoint's \(resumed.vocabulary.kind.rawValue)")
        }
        if let encoding = data.encoding, let resumed, encoding != resumed.vocabulary.encoding {
          throw ValidationError("--encoding \(encoding.rawValue) differs from the checkpoint's \(resumed.vocabulary.encoding.rawValue)")
        }
        let encoding = resumed?.vocabulary.encoding ?? initial?.vocabulary.encoding ?? source?.encoding ?? data.textEncoding
        let fullText = try readText(path: data.textPath, encoding: encoding)
        if let validPath = data.validText { return (fullText, try readText(path: validPath, encoding: encoding)) }
        let kind = resumed?.vocabulary.kind ?? initial?.vocabulary.kind ?? source?.kind ?? data.tokenizerKind
        return splitForValidation(fullText, kind: kind)
      }
      // Rank 0 builds the vocabulary (for BPE, learns the merges); the others receive it.
      var built: Vocabulary? = nil
      try collectively(world) {
        guard isRoot else { return }
        let kind = resumed?.vocabulary.kind ?? initial?.vocabulary.kind ?? source?.kind ?? data.tokenizerKind
        built =
          resumed?.vocabulary
          ?? initial?.vocabulary.extended(
            with: [trainText, validText], minimumCount: data.minCount ?? 1, maximumSize: data.maxVocab)
          ?? source
          ?? data.vocabulary(train: trainText, valid: validText, kind: kind)
      }
      if let world { built = try world.share(built) }
      guard let vocabulary = built else { throw CommandError("rank \(world?.rank ?? 0) received no vocabulary") }
      wordRecipe(vocabulary.kind)
      session = try collectively(world) { () throws -> TrainingSession in
        let trainTokens: [Int]
        let validTokens: [Int]
        do {
          trainTokens = try vocabulary.encode(trainText)
          validTokens = try vocabulary.encode(validText)
        } catch let error as CorpusError {
          throw CommandError("\(data.textPath): \(error)")
        }
        guard trainTokens.count / options.batchSize >= 2 else {
          throw CommandError(
            "\(data.textPath): \(trainTokens.count) training tokens are too few for --batch \(options.batchSize) (need at least \(2 * options.batchSize))")
        }
        guard validTokens.count >= 2 else {
          throw CommandError("validation text has \(validTokens.count) tokens; it needs at least 2")
        }
        return try resumed.map {
          try TrainingSession(
            resuming: $0, options: options, trainTokens: trainTokens, validTokens: validTokens, world: world)
        }
          ?? TrainingSession(
            options: options, vocabulary: vocabulary, trainTokens: trainTokens, validTokens: validTokens,
            initialModel: initial?.model, world: world)
      }
    }
    session.precision = runOptions.precisionInEffect
    // Only rank 0 writes files and prints.
    let board = try isRoot ? tensorboard.map { try TensorBoardWriter(directory: $0) } : nil  // before any file of ours
    let metrics = try isRoot ? MetricsLog(checkpointPath: checkpoint, resuming: resume) : nil
    let reporter = Reporter(json: json, terminal: standardOutputIsTerminal && !json && world == nil)
    reporter.startedFields = [("precision", .string(session.precision == .bfloat16 ? "bf16" : "f32"))]
    if isRoot, !json, runOptions.precision == nil, session.precision == .bfloat16 {
      reporter.note("matrix products in bf16 (this CPU has AVX512_BF16; --precision f32 for float32 products)", json: [:])
    }
    if let world, isRoot {
      reporter.note(
        "data-parallel on \(world.size) ranks: \(options.batchSize / world.size) of the \(options.batchSize) rows and \(options.threads) threads each",
        json: ["event": .string("parallel"), "ranks": .int(world.size), "rows_per_rank": .int(options.batchSize / world.size), "threads": .int(options.threads)])
    }
    // SIGINT (Ctrl-C) or SIGTERM ends the run after the current step: it validates, saves the
    // checkpoint and exits normally, so `--resume` can continue from there. Data-parallel, a
    // signal to any rank stops every rank after the same step.
    let interrupt = InterruptFlag()
    // Under mpirun, SIGUSR1 to mpirun (which forwards it to every rank) stops the run the same
    // way; mpirun itself answers SIGINT and SIGTERM by killing the ranks.
    let watchers = ([SIGINT, SIGTERM] + (world == nil ? [] : [SIGUSR1])).map { number -> DispatchSourceSignal in
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
      source.setEventHandler {
        interrupt.raise(number)
        if let world { watchdog(rank: world.rank, signal: number, unless: { interrupt.isSettled }) }
      }
      source.resume()
      return source
    }
    defer { watchers.forEach { $0.cancel() } }
    do {
      try session.run(checkpointPath: checkpoint, shouldStop: { interrupt.isRaised }) { event in
        // Past the last collective: the final save (rank 0) or the end (the others).
        if interrupt.isRaised, case .checkpoint = event { interrupt.settle() }
        if case .finished = event { interrupt.settle() }
        guard isRoot else { return }
        metrics?.record(event)
        board?.record(event)
        reporter.report(event)
      }
    } catch let error as TrainingError {
      reporter.finishLine()
      throw CommandError(error.description)
    }
    if let world {
      let steps = max(1, session.stepsThisRun)
      let perStep = session.communicationSeconds / Double(steps)
      let worst = world.range(Int(perStep * 1e6)).maximum
      if isRoot {
        reporter.note(
          String(format: "allreduce: %.2f ms per step on rank 0, %.2f ms on the slowest rank", perStep * 1e3, Double(worst) / 1e3),
          json: ["event": .string("allreduce"), "seconds_per_step": .number(perStep), "slowest_rank_seconds_per_step": .number(Double(worst) / 1e6), "steps": .int(steps)])
      }
    }
    if isRoot { try metrics?.drawCurve() }
    world?.finalize()
  }
}

/// The training and validation ids of `--tokens` (and `--valid-tokens`, else the last 10% of
/// `--tokens`), mapped, and their vocabulary.
extension Train {
  func mappedTokens(_ path: String) throws -> (TokenIDs, TokenIDs, Vocabulary) {
    let (_, vocabulary, ids) = try TokenFile.open(path)
    guard let validPath = validTokens else {
      let split = ids.count - ids.count / 10
      return (ids.ids(0..<split), ids.ids(split..<ids.count), vocabulary)
    }
    let (_, validVocabulary, valid) = try TokenFile.open(validPath)
    guard validVocabulary.kind == vocabulary.kind && validVocabulary.tokens == vocabulary.tokens else {
      throw CommandError("--valid-tokens \(validPath) has another tokenizer than --tokens \(path); prepare it with --tokenizer-from \(path)")
    }
    guard valid.count >= 2 else { throw CommandError("--valid-tokens \(validPath) has \(valid.count) tokens; it needs at least 2") }
    return (ids, valid, vocabulary)
  }
}

/// Set from a signal handler's queue, read by the training loop.
final class InterruptFlag: @unchecked Sendable {
  private let lock = NSLock()
  private var signalNumber: Int32? = nil
  private var settled = false
  func raise(_ number: Int32) { lock.withLock { signalNumber = number } }
  var isRaised: Bool { lock.withLock { signalNumber != nil } }
  /// Marks the run past its last collective (a stop can no longer hang on the other ranks).
  func settle() { lock.withLock { settled = true } }
  var isSettled: Bool { lock.withLock { settled } }
}

/// Fails early, before any training, if the checkpoint's folder cannot take the file.
func ensureWritable(_ path: String, option: String = "--checkpoint") throws {
  let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
  var isDirectory: ObjCBool = false
  guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
    throw CommandError("\(option) \(path): folder \(folder) does not exist")
  }
  guard FileManager.default.isWritableFile(atPath: folder) else {
    throw CommandError("\(option) \(path): folder \(folder) is not writable")
  }
  if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
    throw CommandError("\(option) \(path) is a directory")
  }
  var status = stat()
  if lstat(path, &status) == 0 && (status.st_mode & S_IFMT) != S_IFREG {
    throw CommandError("\(option) \(path) is not a regular file")
  }
}

/// Prints training events: JSON lines, a live terminal line, or plain periodic lines.
final class Reporter {
  let json: Bool
  let terminal: Bool
  var lastDraw = 0.0
  var lineOpen = false
  /// Fields the `started` event's JSON line carries beyond the library's (the precision).
  var startedFields: [(String, JSONValue)] = []

  init(json: Bool, terminal: Bool) {
    self.json = json
    self.terminal = terminal
  }

  /// A line of its own: `text`, or `fields` as JSON with `--json`.
  func note(_ text: String, json fields: [String: JSONValue]) {
    finishLine()
    emit(json ? jsonLine(fields) : text + "\n")
  }

  func finishLine() {
    if lineOpen {
      emit("\n")
      lineOpen = false
    }
  }

  func report(_ event: TrainingEvent) {
    if json {
      if case .step(let step, _, _, _, _, _, _, _) = event, step % 10 != 0 { return }
      if case .started = event, case .object(let fields) = event.jsonValue {
        emit(JSONValue.object(fields + startedFields).text + "\n")
        return
      }
      emit(event.json + "\n")
      return
    }
    switch event {
    case .started(let parameters, let trainTokens, let validTokens, let vocabularySize, let resumed, let changes):
      emit(
        "training \(parameters) parameters on \(trainTokens) tokens (validation \(validTokens), vocabulary \(vocabularySize))"
          + (resumed.map { ", resuming at step \($0)" } ?? "") + "\n")
      if !changes.isEmpty { emit("resuming with changes: " + changes.joined(separator: "; ") + "\n") }
    case .step(let step, let epoch, let loss, _, _, let rate, let elapsed, let eta):
      let line = String(
        format: "step %d  epoch %.2f  loss %.4f  %.0f tok/s  %@ elapsed%@", step, epoch, loss, rate,
        clock(elapsed), eta.map { "  ETA " + clock($0) } ?? "")
      if terminal {
        if elapsed - lastDraw >= 0.2 {
          emit("\r" + line + "\u{1B}[K")
          lineOpen = true
          lastDraw = elapsed
        }
      } else if step % 100 == 0 {
        emit(line + "\n")
      }
    case .evaluation(let step, _, let valid, _, let elapsed):
      finishLine()
      emit(
        String(
          format: "eval step %d: validation %.4f nats/token, %.4f bits/token, perplexity %.3f (%@)\n", step, valid,
          valid / log(2), exp(valid), clock(elapsed)))
    case .sample(let step, let text):
      finishLine()
      emit("sample at step \(step):\n\(text)\n---\n")
    case .checkpoint(let step, let path):
      finishLine()
      emit("saved \(path) at step \(step)\n")
    case .finished(let step, let reason, _, let elapsed):
      finishLine()
      emit("finished at step \(step) after \(clock(elapsed)): \(reason)\n")
    }
  }

  func clock(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return String(format: "%d:%02d", s / 60, s % 60)
  }
}
