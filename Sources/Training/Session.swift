import Dispatch
import Distributed
import Foundation
import Recurrent
import TextCorpus

/// Options of a training run. Defaults are the ones `recurrent train` uses.
public struct TrainingOptions: Codable, Sendable, Equatable {
  /// The recurrent cell.
  public var cell: CellKind = .gru
  /// Stacked layers.
  public var layers = 2
  /// Units per layer.
  public var hiddenSize = 256
  /// Embedding width.
  public var embeddingSize = 64
  /// Dropout probability on embeddings, between layers and before the decoder.
  public var dropout: Float = 0
  /// Tie the decoder's weight to the embedding (needs `embeddingSize == hiddenSize`).
  public var tied = false
  /// Rows `B` of each batch.
  public var batchSize = 32
  /// Truncated-BPTT window `T`.
  public var sequenceLength = 64
  /// Stop after this many optimizer steps in the whole run (counting steps before a resume).
  public var steps: Int? = nil
  /// Stop after this many epochs (fractions allowed).
  public var epochs: Double? = nil
  /// Stop after this many seconds of this invocation.
  public var timeLimit: Double? = nil
  /// The optimizer and its hyper-parameters.
  public var optimizer = OptimizerConfiguration(kind: .adam, learningRate: 2e-3)
  /// The learning-rate schedule.
  public var schedule: LearningRateSchedule = .constant
  /// Clip gradients to this global norm; nil for none.
  public var clip: Float? = 5
  /// Seed of initialisation, dropout and samples.
  public var seed: UInt64 = 1
  /// Threads; results are identical for any count.
  public var threads = max(1, System.coreCount)
  /// Validate every N steps (0: only at the end).
  public var evalEvery = 500
  /// Print a sample every N steps (0: never).
  public var sampleEvery = 500
  /// Tokens per sample.
  public var sampleLength = 200
  /// Save a checkpoint every N steps (0: only at the end).
  public var checkpointEvery = 0
  /// What a NaN or infinite loss or gradient does.
  public var onNaN: NaNPolicy = .stop
  /// Each epoch after the first moves the window boundaries by a random 0 ..< T positions (its
  /// first window shorter), so that no two epochs truncate backpropagation at the same places
  /// (AWD-LSTM varies its window lengths for the same reason). nil or false: every epoch is cut
  /// alike (what runs saved before it decode to).
  public var shiftsWindows: Bool? = true
  /// How a new model's recurrent layers are drawn (`--init`); nil: PyTorch's. Only a new run uses it.
  public var initialization: Initialization? = nil
  /// The LSTM forget-gate bias of a new model (`--forget-bias`); nil: as `initialization` draws it.
  public var forgetBias: Float? = nil
  /// LSTM: the state width `P` of a projected LSTM (PyTorch's `proj_size`, `0 < P < hiddenSize`);
  /// nil: no projection.
  public var projectionSize: Int? = nil
  /// Weight drop, locked and embedding dropout, zoneout, AR and TAR: by default the recipe
  /// `TrainingOptions.recipe` (chosen by measurement, README "The default recipe"); nil: all off
  /// (what runs saved before them decode to).
  public var regularization: Regularization? = TrainingOptions.recipe

  /// The regularizers of `recurrent train`'s default run.
  public static let recipe = Regularization(lockedDropout: 0.05, weightDrop: 0.1)
  /// The regularizers of `recurrent train`'s new word-level runs (`--tokenizer word`): words
  /// overfit far sooner than characters (README "Word level").
  public static let wordRecipe = Regularization(embeddingDropout: 0.1, lockedDropout: 0.3, weightDrop: 0.5)

  /// The defaults of `recurrent train`.
  public init() {}

  /// What must match for `--resume` to continue the same run.
  public var fingerprint: String {
    "\(cell.rawValue) layers=\(layers) hidden=\(hiddenSize) embedding=\(embeddingSize) tied=\(tied) "
      + "batch=\(batchSize) seq=\(sequenceLength) seed=\(seed)" + (projectionSize.map { " proj=\($0)" } ?? "")
  }

  /// How a run with these options trains differently from one with `old` (what a resume with
  /// changed options changes); stopping rules, threads and reporting do not count.
  public func trajectoryChanges(from old: TrainingOptions) -> [String] {
    var changes: [String] = []
    func describe(_ c: OptimizerConfiguration) -> String {
      "\(c.kind.rawValue) lr \(c.learningRate)" + (c.weightDecay != 0 ? " weight decay \(c.weightDecay)" : "")
        + (c.momentum != 0 ? " momentum \(c.momentum)" : "")
    }
    if optimizer != old.optimizer { changes.append("optimizer \(describe(old.optimizer)) -> \(describe(optimizer))") }
    if schedule != old.schedule { changes.append("schedule \(old.schedule.summary) -> \(schedule.summary)") }
    if clip != old.clip {
      changes.append("clip \(old.clip.map { "\($0)" } ?? "off") -> \(clip.map { "\($0)" } ?? "off")")
    }
    if dropout != old.dropout { changes.append("dropout \(old.dropout) -> \(dropout)") }
    let (new, before) = (regularization ?? Regularization(), old.regularization ?? Regularization())
    if new != before { changes.append("regularization \(before.summary) -> \(new.summary)") }
    if (shiftsWindows ?? false) != (old.shiftsWindows ?? false) {
      changes.append("window shifts \(old.shiftsWindows == true ? "on" : "off") -> \(shiftsWindows == true ? "on" : "off")")
    }
    if onNaN != old.onNaN { changes.append("on-nan \(old.onNaN.rawValue) -> \(onNaN.rawValue)") }
    return changes
  }

  var modelConfiguration: (Int) -> LanguageModelConfiguration {
    { vocabularySize in
      var c = LanguageModelConfiguration(
        cell: cell, layers: layers, hiddenSize: hiddenSize, embeddingSize: embeddingSize,
        vocabularySize: vocabularySize, dropout: dropout, tied: tied)
      c.regularization = regularization ?? Regularization()
      c.projectionSize = projectionSize ?? 0
      return c
    }
  }
}

/// What a training run reports, in order, to the closure given to `run`.
public enum TrainingEvent: Sendable, Equatable {
  /// `changes`: on a resume, each way this run's trajectory differs from the saved run's.
  case started(
    parameters: Int, trainTokens: Int, validTokens: Int, vocabularySize: Int, resumedAtStep: Int?, changes: [String])
  /// After every optimizer step.
  case step(
    step: Int, epoch: Double, loss: Float, learningRate: Float, gradientNorm: Float, tokensPerSecond: Double,
    elapsed: Double, eta: Double?)
  /// Validation (batched: contiguous rows with carried state), in nats per token.
  case evaluation(step: Int, trainLoss: Float, validLoss: Double, tokensPerSecond: Double, elapsed: Double)
  case sample(step: Int, text: String)
  case checkpoint(step: Int, path: String)
  case finished(step: Int, reason: String, validLoss: Double?, elapsed: Double)
}

/// A training run of a language model: owns the model, the optimizer, the random generator
/// and the carried hidden state.
public struct TrainingSession: Sendable {
  /// The model being trained.
  public private(set) var model: LanguageModel
  /// The vocabulary of the run.
  public let vocabulary: Vocabulary
  /// The run's options.
  public let options: TrainingOptions
  /// The shared training step: optimizer, clipping and the NaN policy.
  public private(set) var trainer: TrainingStep
  /// The optimizer and its state.
  public var optimizer: Optimizer { trainer.optimizer }
  var rng: SplitMix64
  var carried: RecurrentState?
  /// Optimizer steps taken in the whole run.
  public private(set) var step = 0
  /// Computes each step's gradient in this many row groups, one after the other, adding their
  /// gradients in order (what that many data-parallel ranks compute; with 2, bitwise what 2
  /// ranks get). Must divide the batch. 1: the whole batch at once.
  public var microBatches = 1 {
    didSet { precondition(microBatches >= 1 && options.batchSize % microBatches == 0, "microBatches must divide the batch") }
  }
  /// Optimizer steps taken by this session (since it started or resumed).
  public private(set) var stepsThisRun = 0
  /// Completed epochs.
  public internal(set) var epoch = 0
  /// The next window of the current epoch.
  public internal(set) var window = 0
  /// Tokens trained on in the whole run.
  public internal(set) var tokensSeen = 0
  var elapsedBefore = 0.0
  var lastTrainLoss: Float?
  /// Steps whose update was skipped because the loss or gradient was not finite.
  public var skippedSteps: Int { trainer.skippedSteps }
  /// Global gradient norm (before clipping) of the last step.
  public private(set) var lastGradientNorm: Float = 0
  /// On a resume, how this run's trajectory differs from the saved run's (empty: it continues
  /// exactly).
  public private(set) var changes: [String] = []
  /// The training stream in rows and windows.
  public let train: BatchLayout
  /// The validation stream.
  public let validTokens: TokenIDs
  /// Set when training data-parallel across ranks: this rank's rows and the collectives.
  public let parallel: DataParallel?
  /// Whether this process reports, validates and saves (rank 0, or the only process).
  public var isRoot: Bool { (parallel?.world.rank ?? 0) == 0 }
  /// Seconds this rank spent starting and waiting for gradient reductions (data-parallel).
  public var communicationSeconds: Double { buckets?.seconds ?? 0 }
  let buckets: GradientBuckets?

  /// A fresh run.
  /// - Parameters:
  ///   - options: sizes, optimizer, schedule and stopping rules.
  ///   - vocabulary: the vocabulary `trainTokens` and `validTokens` were encoded with.
  ///   - trainTokens: the training stream, cut into `options.batchSize` contiguous rows.
  ///   - validTokens: the validation stream.
  ///   - initialModel: fine-tuning: start from this model's weights (its vocabulary a
  ///     prefix of `vocabulary`, its architecture the options'), with a fresh optimizer, schedule
  ///     and step count; the rows of new tokens are initialised as a fresh model's.
  ///   - world: train data-parallel across these ranks (each calls this with the same
  ///     arguments); rank 0's initial weights are broadcast. Nil or one rank: one process.
  public init(
    options: TrainingOptions, vocabulary: Vocabulary, trainTokens: [Int], validTokens: [Int],
    initialModel: LanguageModel? = nil, world: (any Collective)? = nil
  ) throws {
    try self.init(
      options: options, vocabulary: vocabulary, train: TokenIDs(trainTokens), valid: TokenIDs(validTokens),
      initialModel: initialModel, world: world)
  }

  /// A fresh run over ids that may be read in place from token files (`recurrent prepare`).
  public init(
    options: TrainingOptions, vocabulary: Vocabulary, train trainTokens: TokenIDs, valid validTokens: TokenIDs,
    initialModel: LanguageModel? = nil, world: (any Collective)? = nil
  ) throws {
    self.options = options
    self.vocabulary = vocabulary
    var rng = SplitMix64(seed: options.seed)
    if let initialModel {
      model = initialModel.transferred(to: options.modelConfiguration(vocabulary.count), using: &rng)
    } else {
      model = LanguageModel(
        options.modelConfiguration(vocabulary.count), initialization: options.initialization ?? .pytorch,
        forgetBias: options.forgetBias, using: &rng)
    }
    self.rng = rng
    trainer = TrainingStep(optimizer: Optimizer(options.optimizer), clipNorm: options.clip, onNaN: options.onNaN)
    train = try BatchLayout(ids: trainTokens, batchSize: options.batchSize, sequenceLength: options.sequenceLength)
    guard validTokens.count >= 2 else { throw CorpusError.tooShort(tokens: validTokens.count, needed: 2) }
    self.validTokens = validTokens
    (parallel, buckets) = try Self.split(world, options: options, vocabulary: vocabulary, train: trainTokens, valid: validTokens)
    parallel?.broadcastParameters(&model)
  }

  /// The data-parallel split for `world` (nil for one process), after checking that the ranks
  /// agree on the options that shape the trajectory and on the data.
  static func split(
    _ world: (any Collective)?, options: TrainingOptions, vocabulary: Vocabulary, train: TokenIDs, valid: TokenIDs,
    step: Int = 0
  ) throws -> (DataParallel?, GradientBuckets?) {
    guard let world, world.size > 1 else { return (nil, nil) }
    let parallel = try DataParallel(world: world, options: options)
    func agree(_ what: String, _ hash: UInt64) throws {
      let folded = Int(truncatingIfNeeded: hash)
      let (low, high) = world.range(folded)
      if low != high { throw DataParallelError.ranksDisagree(what) }
    }
    var hash = stableHashSeed
    let trajectory = [
      options.fingerprint, "\(options.optimizer)", options.schedule.summary, "\(options.clip ?? 0)",
      "\(options.dropout)", (options.regularization ?? Regularization()).summary, options.onNaN.rawValue, "\(options.steps ?? -1)", "\(options.epochs ?? -1)",
      "\(options.evalEvery)", "\(options.sampleEvery)", "\(options.checkpointEvery)", "\(step)",
    ].joined(separator: "|")
    stableHash(trajectory.utf8, into: &hash)
    try agree("the options (\(options.fingerprint), optimizer, schedule, clip, dropout, regularization, stopping and checkpoint steps, resume step)", hash)
    hash = stableHashSeed
    stableHash(vocabulary.tokens.joined(separator: "\u{0}").utf8, into: &hash)
    for stream in [train, valid] {
      stableHash([stream.count], into: &hash)
      stableHash(stream, into: &hash)
    }
    try agree("the data (vocabulary, training or validation tokens)", hash)
    return (parallel, GradientBuckets(world: world))
  }

  /// Continues the run saved in `checkpoint`. Shapes, batch layout and seed must match.
  /// With `world`, every rank resumes the same checkpoint (any number of ranks that divides
  /// the batch: the data position and the carried state are global).
  public init(
    resuming checkpoint: Checkpoint, options: TrainingOptions, trainTokens: [Int], validTokens: [Int],
    world: (any Collective)? = nil
  ) throws {
    try self.init(
      resuming: checkpoint, options: options, train: TokenIDs(trainTokens), valid: TokenIDs(validTokens), world: world)
  }

  /// Continues a run over ids that may be read in place from token files.
  public init(
    resuming checkpoint: Checkpoint, options: TrainingOptions, train trainTokens: TokenIDs, valid validTokens: TokenIDs,
    world: (any Collective)? = nil
  ) throws {
    guard let progress = checkpoint.progress, let optimizer = checkpoint.optimizer else {
      throw TrainingError.notResumable("the checkpoint holds no training state")
    }
    guard progress.fingerprint == options.fingerprint else {
      throw TrainingError.notResumable("it was trained with \(progress.fingerprint), this run asks for \(options.fingerprint)")
    }
    changes = progress.options.map { options.trajectoryChanges(from: $0) } ?? []
    self.options = options
    vocabulary = checkpoint.vocabulary
    model = checkpoint.model
    model = Self.withRegularization(model, options)
    // The moments must be the ones this run's optimizer keeps (another kind, or momentum or
    // centering switched, would read state that means something else).
    let resumed: Optimizer
    do {
      resumed = try Optimizer(
        options.optimizer, stepCount: optimizer.stepCount, slots: optimizer.slots,
        parameters: checkpoint.model.namedParameters.map { (name: $0.name, shape: $0.tensor.shape) })
    } catch {
      throw TrainingError.notResumable(
        "the checkpoint's optimizer state is for \(optimizer.configuration.kind.rawValue) (\(error)); this run asks for \(options.optimizer.kind.rawValue)")
    }
    trainer = TrainingStep(optimizer: resumed, clipNorm: options.clip, onNaN: options.onNaN)
    rng = SplitMix64(seed: 0)
    rng.state = progress.rngState
    carried = checkpoint.carriedState
    step = progress.step
    epoch = progress.epoch
    window = progress.window
    tokensSeen = progress.tokensSeen
    elapsedBefore = progress.elapsedSeconds
    lastTrainLoss = progress.lastTrainLoss
    train = try BatchLayout(ids: trainTokens, batchSize: options.batchSize, sequenceLength: options.sequenceLength)
    guard validTokens.count >= 2 else { throw CorpusError.tooShort(tokens: validTokens.count, needed: 2) }
    self.validTokens = validTokens
    (parallel, buckets) = try Self.split(
      world, options: options, vocabulary: vocabulary, train: trainTokens, valid: validTokens, step: progress.step)
    if let parallel {
      parallel.broadcastParameters(&model)
      carried = carried.map(parallel.slice)
    }
  }

  /// `model` with this run's dropout and regularizers (a resumed run may change them).
  static func withRegularization(_ model: LanguageModel, _ options: TrainingOptions) -> LanguageModel {
    let regularization = options.regularization ?? Regularization()
    guard model.configuration.dropout != options.dropout || model.configuration.regularization != regularization
    else { return model }
    var configuration = model.configuration
    configuration.dropout = options.dropout
    configuration.regularization = regularization
    var rng = SplitMix64(seed: 0)
    var copy = LanguageModel(configuration, using: &rng)
    copy.encoder = model.encoder
    copy.rnn.weights = model.rnn.weights
    copy.decoder = model.decoder
    return copy
  }

  /// The matrix products' precision (`--precision`). Not part of the options or checkpoints:
  /// weights stay float32 and a run may resume in either precision.
  public var precision: Precision = .float32

  var compute: Compute { Compute(threads: options.threads, precision: precision) }

  /// Fractional epochs done.
  public var epochProgress: Double { Double(epoch) + Double(window) / Double(train.windowCount(shift: shift)) }

  /// How many positions this epoch's window boundaries move (`TrainingOptions.shiftsWindows`):
  /// 0 in the first epoch, then drawn from the seed and the epoch, so a resumed run (or every
  /// rank) cuts the same windows.
  var shift: Int {
    guard epoch > 0, options.shiftsWindows == true else { return 0 }
    var rng = SplitMix64(seed: options.seed &+ 0x9E37_79B9_7F4A_7C15 &* UInt64(epoch))
    return Int(rng.next() % UInt64(options.sequenceLength))
  }

  /// Learning rate for the next step.
  public var learningRate: Float { options.schedule.learningRate(base: options.optimizer.learningRate, step: step) }

  /// One optimizer step on the next window (the shared `TrainingStep`); returns its mean
  /// loss in nats per token. A non-finite loss or gradient norm leaves the weights unchanged:
  /// with `onNaN == .stop` this throws `TrainingError.diverged`, with `.skip` it counts the
  /// step in `skippedSteps`.
  /// - Parameter hooks: seams for work on the gradient (e.g. averaging across processes).
  @discardableResult
  public mutating func trainStep(hooks: StepHooks<LanguageModel> = StepHooks()) throws -> Float {
    if window >= train.windowCount(shift: shift) {
      window = 0
      epoch += 1
      carried = nil  // each epoch starts from a zero state
    }
    let (allInputs, allTargets, length) = train.window(window, shift: shift)
    let inputs = parallel?.slice(allInputs, length: length) ?? allInputs
    let targets = parallel?.slice(allTargets, length: length) ?? allTargets
    var state: RecurrentState? = nil
    let (carried, B, compute) = (self.carried, parallel?.localRows ?? options.batchSize, self.compute)
    let start = self.rng
    var rng = start
    let (rate, place) = (learningRate, "step \(step + 1)")
    let (buckets, rows) = (self.buckets, parallel?.rows)
    // One process with micro-batches computes what ranks holding those rows would, one after
    // the other, and adds their gradients in that order.
    let groups = parallel == nil ? microBatches : 1
    let share = buckets != nil || groups > 1 ? allTargets.count : nil
    let report = try trainer.run(
      &model, learningRate: rate, place: place, compute: compute, hooks: hooks
    ) { model, gradient, ready in
      var total: Float = 0
      var states: [RecurrentState] = []
      for group in 0..<groups {
        let b = B / groups
        var drawn = start  // every group (and rank) draws its masks from the same keys
        let (ids, wanted, initial) =
          groups == 1
          ? (inputs, targets, carried)
          : (
            DataParallel.columns(inputs, length: length, batch: B, first: group * b, count: b),
            DataParallel.columns(targets, length: length, batch: B, first: group * b, count: b),
            carried.map { DataParallel.rows($0, first: group * b, count: b) }
          )
        let (logits, newState, trace) = model.forward(
          ids: ids, sequenceLength: length, batchSize: b, state: initial, training: true,
          rows: groups == 1 ? rows : BatchRows(first: group * b, total: B), using: &drawn, compute: compute)
        rng = drawn
        states.append(newState)
        // Data-parallel (or in micro-batches), each part's loss and gradient are its share of
        // the whole batch's mean, so the shares simply add up.
        let (loss, dLogits) = Loss.softmaxCrossEntropy(logits: logits, targets: wanted, meanOver: share, compute: compute)
        total = group == 0 ? loss : total + loss
        if let buckets {
          // Data-parallel: each bucket's reduction starts as backward finishes it; the step then
          // clips and updates the sum of the ranks' shares, the same on every rank.
          model.backward(trace, logitsGradient: dLogits, into: &gradient, compute: compute) { indices, tensors in
            ready?(indices, tensors)
            buckets.ready(indices, tensors)
          }
          total = buckets.finish(into: &gradient, loss: loss)
        } else if group == 0 {
          model.backward(
            trace, logitsGradient: dLogits, into: &gradient, compute: compute, parametersReady: groups == 1 ? ready : nil)
        } else {
          var part = model.zeroGradient
          model.backward(trace, logitsGradient: dLogits, into: &part, compute: compute)
          gradient.add(part)
        }
      }
      state = groups == 1 ? states[0] : DataParallel.joined(states)
      return total
    }
    self.rng = rng
    self.carried = state  // detached: the next window's backward stops here
    window += 1
    step += 1
    stepsThisRun += 1
    tokensSeen += allTargets.count
    lastGradientNorm = report.gradientNorm
    lastTrainLoss = report.loss.isFinite ? report.loss : nil  // a checkpoint stores only numbers JSON has
    return report.loss
  }

  /// Validation loss: batched over contiguous rows (fast; each row starts from a zero state).
  public func evaluate() -> EvaluationResult {
    let rows = max(1, min(options.batchSize, validTokens.count / (options.sequenceLength + 1)))
    return (try? Evaluation.batched(
      model, ids: validTokens, batchSize: rows, sequenceLength: options.sequenceLength, compute: compute))
      ?? Evaluation.stream(model, ids: validTokens, compute: compute)
  }

  /// A sample of `length` tokens primed with the first validation token.
  public func sample(length: Int, seed: UInt64) -> String {
    var sampling = SamplingOptions()
    sampling.seed = seed
    let prime = [validTokens[0]]
    let ids = Array(TokenGenerator(model: model, prime: prime, count: length, options: sampling))
    return vocabulary.decode(prime + ids)
  }

  /// The run as a checkpoint, resumable. Data-parallel, this is a collective (every rank calls
  /// it): the carried state is gathered from the ranks' rows.
  public func checkpoint(elapsed: Double = 0) -> Checkpoint {
    let carried = parallel.flatMap { parallel in self.carried.map(parallel.gather) } ?? self.carried
    let progress = TrainingProgress(
      step: step, epoch: epoch, window: window, tokensSeen: tokensSeen, elapsedSeconds: elapsedBefore + elapsed,
      rngState: rng.state, optimizer: trainer.optimizer.configuration, schedule: options.schedule,
      fingerprint: options.fingerprint, lastTrainLoss: lastTrainLoss, options: options)
    return Checkpoint(
      model: model, vocabulary: vocabulary, progress: progress, optimizer: trainer.optimizer, carriedState: carried)
  }

  /// Trains until `steps`, `epochs` or `timeLimit` (whichever first) or until `shouldStop`
  /// returns true; validates, samples and saves as the options say, reporting each event.
  /// Saves a final checkpoint to `checkpointPath` if given.
  public mutating func run(
    checkpointPath: String?, hooks: StepHooks<LanguageModel> = StepHooks(), shouldStop: () -> Bool = { false },
    events: (TrainingEvent) -> Void
  ) throws {
    let start = DispatchTime.now().uptimeNanoseconds
    func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
    events(
      .started(
        parameters: model.parameterCount, trainTokens: train.tokens.count, validTokens: validTokens.count,
        vocabularySize: vocabulary.count, resumedAtStep: step > 0 ? step : nil, changes: changes))
    let startTokens = tokensSeen
    let startStep = step
    var reason = ""
    var lastEvaluated: Int? = nil
    while true {
      if let steps = options.steps, step >= steps { reason = "reached \(steps) steps"; break }
      if let epochs = options.epochs, epochProgress >= epochs { reason = "reached \(epochs) epochs"; break }
      // The clock and signals are per process: data-parallel ranks stop together when any would.
      if let limit = options.timeLimit, elapsed() >= limit { reason = "reached the time limit of \(limit) s" }
      if reason.isEmpty && shouldStop() { reason = "interrupted" }
      if let world = parallel?.world {
        if world.any(!reason.isEmpty) {
          if reason.isEmpty { reason = "another rank stopped (a signal or the time limit)" }
          break
        }
      } else if !reason.isEmpty {
        break
      }
      let loss = try trainStep(hooks: hooks)
      let seconds = elapsed()
      let rate = Double(tokensSeen - startTokens) / max(seconds, 1e-9)
      events(
        .step(
          step: step, epoch: epochProgress, loss: loss, learningRate: learningRate, gradientNorm: lastGradientNorm,
          tokensPerSecond: rate, elapsed: seconds, eta: eta(elapsed: seconds, stepsDone: step - startStep)))
      // Data-parallel, only rank 0 validates, samples and writes (the others wait for it in
      // the next step's collectives); saving gathers the carried state from every rank.
      if options.evalEvery > 0 && step % options.evalEvery == 0 {
        if isRoot {
          events(.evaluation(step: step, trainLoss: loss, validLoss: evaluate().natsPerToken, tokensPerSecond: rate, elapsed: elapsed()))
        }
        lastEvaluated = step
      }
      if options.sampleEvery > 0 && step % options.sampleEvery == 0 && isRoot {
        events(.sample(step: step, text: sample(length: options.sampleLength, seed: options.seed &+ UInt64(step))))
      }
      if options.checkpointEvery > 0 && step % options.checkpointEvery == 0, let checkpointPath {
        let saved = checkpoint(elapsed: elapsed())
        if isRoot {
          try saved.save(to: checkpointPath)
          events(.checkpoint(step: step, path: checkpointPath))
        }
      }
    }
    // Save first, then validate: a run stopped by a signal is saved as soon as its step ends
    // (mpirun, for one, kills ranks shortly after it forwards a SIGTERM).
    var seconds = elapsed()
    if let checkpointPath {
      let saved = checkpoint(elapsed: seconds)
      if isRoot {
        try saved.save(to: checkpointPath)
        events(.checkpoint(step: step, path: checkpointPath))
      }
    }
    let valid = isRoot ? evaluate().natsPerToken : nil
    seconds = elapsed()
    if lastEvaluated != step, let valid {
      events(.evaluation(
        step: step, trainLoss: lastTrainLoss ?? .nan, validLoss: valid,
        tokensPerSecond: Double(tokensSeen - startTokens) / max(seconds, 1e-9), elapsed: seconds))
    }
    events(.finished(step: step, reason: reason, validLoss: valid, elapsed: seconds))
  }

  func eta(elapsed: Double, stepsDone: Int) -> Double? {
    var remaining: [Double] = []
    if let limit = options.timeLimit { remaining.append(max(0, limit - elapsed)) }
    let perStep = elapsed / Double(max(stepsDone, 1))
    if let steps = options.steps { remaining.append(Double(max(0, steps - step)) * perStep) }
    if let epochs = options.epochs {
      let left = (epochs - epochProgress) * Double(train.windowCount(shift: shift))
      remaining.append(max(0, left) * perStep)
    }
    return remaining.min()
  }
}
