import Foundation
import Recurrent

/// Loss and metric sums over one batch.
struct BatchScore {
  var loss: Double = 0  // sum over counted rows
  var metrics: [Double]  // sums over counted rows, in `compiled.metrics` order
  var rows: Double = 0  // counted rows (samples, or real steps for sequence outputs)

  init(metricCount: Int) { metrics = Array(repeating: 0, count: metricCount) }

  mutating func add(_ other: BatchScore) {
    loss += other.loss
    rows += other.rows
    for i in metrics.indices { metrics[i] += other.metrics[i] }
  }
}

extension Sequential {
  /// Loss per counted row of `[N, K]` outputs (raw logits when the final activation is fused),
  /// its gradient scaled by `1 / gradientRows`, and the metric sums: the shared `Loss.rows`.
  /// `weights[n]` is 1 for a row that counts and 0 for padding.
  func score(
    output: Tensor, target: Tensor, weights: [Float], loss: LossFunction, metrics: [Metric], gradientRows: Double
  ) -> (score: BatchScore, gradient: Tensor) {
    let K = outputUnits
    var score = BatchScore(metricCount: metrics.count)
    var y = [Float](repeating: 0, count: K)
    let (sum, counted, gradient) = Loss.rows(
      loss, output: output.reshaped([output.count / K, K]), targets: .values(target.reshaped([target.count / K, K])),
      weights: weights, gradientScale: Float(1 / max(gradientRows, 1)),
      visit: metrics.isEmpty
        ? nil
        : { n, prediction in
          for k in 0..<K { y[k] = target.scalars[n * K + k] }
          for (i, metric) in metrics.enumerated() {
            score.metrics[i] += Self.metric(metric, prediction: prediction, target: y)
          }
        })
    score.loss = sum
    score.rows = Double(counted)
    return (score, gradient.reshaped(output.shape))
  }

  static func metric(_ metric: Metric, prediction p: UnsafeBufferPointer<Float>, target y: [Float]) -> Double {
    let K = p.count
    switch metric {
    case .accuracy where K > 1:
      let guess = p.indices.max { p[$0] < p[$1] }!
      let truth = y.indices.max { y[$0] < y[$1] }!
      return guess == truth ? 1 : 0
    case .accuracy, .binaryAccuracy:
      var hits = 0
      for k in 0..<K where (p[k] > 0.5) == (y[k] > 0.5) { hits += 1 }
      return Double(hits) / Double(K)
    case .meanAbsoluteError:
      var total: Double = 0
      for k in 0..<K { total += Double(abs(p[k] - y[k])) }
      return total / Double(K)
    }
  }

  /// Rows of `x` at `indices` (first axis).
  static func gather(_ x: Tensor, _ indices: ArraySlice<Int>) -> Tensor {
    let inner = x.count / x.shape[0]
    var out = [Float]()
    out.reserveCapacity(indices.count * inner)
    for i in indices { out.append(contentsOf: x.scalars[(i * inner)..<((i + 1) * inner)]) }
    return Tensor(shape: [indices.count] + x.shape.dropFirst(), scalars: out)
  }

  /// 1 for rows that count: every sample, or the real steps of each sequence.
  func rowWeights(samples B: Int, steps T: Int, lengths: [Int]?) -> [Float] {
    guard outputIsSequence else { return Array(repeating: 1, count: B) }
    var w = [Float](repeating: 1, count: B * T)
    if let lengths {
      for b in 0..<B { for t in lengths[b]..<T { w[b * T + t] = 0 } }
    }
    return w
  }

  /// Trains on `x` → `y` (Keras `fit`). Shuffles each epoch and draws dropout masks from
  /// `rng`; the last
  /// `validationSplit` of the samples (taken before shuffling, as Keras) or `validationData`
  /// are evaluated after each epoch.
  /// - Throws: `ModelError` for data that does not fit the model or a model not compiled;
  ///   `TrainingError.diverged` when a loss or gradient becomes NaN or infinite and the
  ///   compiled `onNaN` policy is `.stop` (no update is made with it).
  @discardableResult
  public mutating func fit(
    _ x: Tensor, _ y: Tensor, lengths: [Int]? = nil, epochs: Int = 1, batchSize: Int = 32,
    validationSplit: Double = 0, validationData: (x: Tensor, y: Tensor, lengths: [Int]?)? = nil,
    shuffle: Bool = true, using rng: inout some RandomNumberGenerator, compute: Compute = .allCores,
    progress: ((FitProgress) -> Void)? = nil
  ) throws -> History {
    guard var setup = compiled else { throw ModelError.notCompiled("call compile(loss:optimizer:metrics:) before fit") }
    try checkLossFitsOutput(setup.loss)
    guard epochs >= 0 else { throw ModelError.invalidArgument("epochs must not be negative, got \(epochs)") }
    guard batchSize > 0 else { throw ModelError.invalidArgument("batchSize must be positive, got \(batchSize)") }
    guard validationSplit >= 0 && validationSplit < 1 else {
      throw ModelError.invalidArgument("validationSplit must be in [0, 1), got \(validationSplit)")
    }
    let allLengths = try validate(x, lengths: lengths)
    let N = x.shape[0]
    let T = x.shape[1]
    guard y.shape.first == N else { throw ModelError.invalidData("x has \(N) samples but y has \(y.shape.first ?? 0)") }
    let targets = try prepareTargets(y, samples: N, steps: T, loss: setup.loss)
    let trainCount = validationData == nil ? N - Int(Double(N) * validationSplit) : N
    guard trainCount > 0 else { throw ModelError.invalidArgument("validationSplit \(validationSplit) leaves no training samples") }
    var validation: (x: Tensor, y: Tensor, lengths: [Int]?)? = nil
    if let v = validationData {
      validation = v
    } else if trainCount < N {
      let rest = Array(trainCount..<N)[...]
      validation = (Self.gather(x, rest), Self.gather(y, rest), allLengths.map { Array($0[trainCount...]) })
    }
    var order = Array(0..<trainCount)
    var history = History()
    let batches = (trainCount + batchSize - 1) / batchSize
    for epoch in 1...max(1, epochs) where epochs > 0 {
      let started = Date()
      if shuffle { order.shuffle(using: &rng) }
      var total = BatchScore(metricCount: setup.metrics.count)
      for batch in 0..<batches {
        let indices = order[(batch * batchSize)..<min(trainCount, (batch + 1) * batchSize)]
        let xb = Self.gather(x, indices)
        let yb = Self.gather(targets, indices)
        let lb = allLengths.map { all in indices.map { all[$0] } }
        let score = try step(xb, yb, lengths: lb, setup: &setup, using: &rng, compute: compute, where: "epoch \(epoch), batch \(batch + 1)")
        total.add(score)
        progress?(.batch(epoch: epoch, batch: batch + 1, batches: batches, loss: score.loss / max(score.rows, 1)))
      }
      var log = EpochLog(
        epoch: epoch, loss: total.loss / max(total.rows, 1),
        metrics: Dictionary(uniqueKeysWithValues: zip(setup.metrics.map(\.rawValue), total.metrics.map { $0 / max(total.rows, 1) })),
        validationLoss: nil, validationMetrics: [:], seconds: 0)
      compiled = setup
      if let v = validation {
        let result = try evaluate(v.x, v.y, lengths: v.lengths, batchSize: batchSize, compute: compute, what: "validation")
        log.validationLoss = result["loss"]
        log.validationMetrics = result.filter { $0.key != "loss" }
      }
      log.seconds = Date().timeIntervalSince(started)
      history.epochs.append(log)
      progress?(.epoch(log))
    }
    compiled = setup
    return history
  }

  /// One update on a batch whose targets are prepared, through the shared `TrainingStep`.
  mutating func step(
    _ xb: Tensor, _ yb: Tensor, lengths lb: [Int]?, setup: inout CompiledSetup, using rng: inout some RandomNumberGenerator,
    compute: Compute, where place: String
  ) throws -> BatchScore {
    let weights = rowWeights(samples: xb.shape[0], steps: xb.shape[1], lengths: lb)
    let counted = Double(weights.reduce(0, +))
    let frozen = parts.indices.compactMap { i -> (Int, SequentialPart)? in
      if case .embedding(_, _, false) = parts[i] { return (i, parts[i]) }
      return nil
    }
    var score = BatchScore(metricCount: setup.metrics.count)
    let (loss, metrics) = (setup.loss, setup.metrics)
    _ = try setup.trainer.run(&self, place: place, compute: compute) { model, gradient, ready in
      let (out, saved) = model.run(
        xb, lengths: lb, training: true, raw: model.fusesFinalActivation, using: &rng, compute: compute)
      let (batchScore, dOut) = model.score(
        output: out, target: yb, weights: weights, loss: loss, metrics: metrics, gradientRows: counted)
      score = batchScore
      model.backward(saved, outputGradient: dOut, lengths: lb, into: &gradient, compute: compute, parametersReady: ready)
      return Float(score.loss / max(score.rows, 1))
    }
    for (i, part) in frozen { parts[i] = part }  // a frozen embedding keeps its weights
    return score
  }

  /// One update on one batch (Keras `train_on_batch`): the batch's loss and metrics before the
  /// update. Dropout masks are drawn from `rng`.
  @discardableResult
  public mutating func trainOnBatch(
    _ x: Tensor, _ y: Tensor, lengths: [Int]? = nil, using rng: inout some RandomNumberGenerator,
    compute: Compute = .allCores
  ) throws -> [String: Double] {
    guard var setup = compiled else { throw ModelError.notCompiled("call compile(loss:optimizer:metrics:) before trainOnBatch") }
    try checkLossFitsOutput(setup.loss)
    let effective = try validate(x, lengths: lengths)
    guard y.shape.first == x.shape[0] else { throw ModelError.invalidData("x has \(x.shape[0]) samples but y has \(y.shape.first ?? 0)") }
    let targets = try prepareTargets(y, samples: x.shape[0], steps: x.shape[1], loss: setup.loss)
    let score = try step(x, targets, lengths: effective, setup: &setup, using: &rng, compute: compute, where: "this batch")
    compiled = setup
    var result = ["loss": score.loss / max(score.rows, 1)]
    for (metric, sum) in zip(setup.metrics, score.metrics) { result[metric.rawValue] = sum / max(score.rows, 1) }
    return result
  }

  /// Loss and metrics on `x` → `y` (Keras `evaluate`): `["loss": …, "binary_accuracy": …]`.
  public func evaluate(
    _ x: Tensor, _ y: Tensor, lengths: [Int]? = nil, batchSize: Int = 32, compute: Compute = .allCores
  ) throws -> [String: Double] {
    try evaluate(x, y, lengths: lengths, batchSize: batchSize, compute: compute, what: "")
  }

  func evaluate(
    _ x: Tensor, _ y: Tensor, lengths: [Int]?, batchSize: Int, compute: Compute, what: String
  ) throws -> [String: Double] {
    guard let setup = compiled else { throw ModelError.notCompiled("call compile(loss:optimizer:metrics:) before evaluate") }
    try checkLossFitsOutput(setup.loss)
    guard batchSize > 0 else { throw ModelError.invalidArgument("batchSize must be positive, got \(batchSize)") }
    let prefix = what.isEmpty ? "" : what + " "
    let allLengths = try validate(x, lengths: lengths, what: prefix + "x")
    let N = x.shape[0]
    let T = x.shape[1]
    guard y.shape.first == N else { throw ModelError.invalidData("\(prefix)x has \(N) samples but y has \(y.shape.first ?? 0)") }
    let targets = try prepareTargets(y, samples: N, steps: T, loss: setup.loss, what: prefix + "y")
    var total = BatchScore(metricCount: setup.metrics.count)
    var rng = SplitMix64(seed: 0)
    for start in stride(from: 0, to: N, by: batchSize) {
      let indices = Array(start..<min(N, start + batchSize))[...]
      let lb = allLengths.map { all in indices.map { all[$0] } }
      let (out, _) = run(Self.gather(x, indices), lengths: lb, training: false, raw: fusesFinalActivation, using: &rng, compute: compute)
      let weights = rowWeights(samples: indices.count, steps: T, lengths: lb)
      total.add(score(
        output: out, target: Self.gather(targets, indices), weights: weights, loss: setup.loss,
        metrics: setup.metrics, gradientRows: 1).score)
    }
    var result = ["loss": total.loss / max(total.rows, 1)]
    for (metric, sum) in zip(setup.metrics, total.metrics) { result[metric.rawValue] = sum / max(total.rows, 1) }
    return result
  }

  /// The model's outputs (after the final activation) for `x` (Keras `predict`): `[N, K]`, or
  /// `[N, T, K]` for sequence outputs.
  public func predict(
    _ x: Tensor, lengths: [Int]? = nil, batchSize: Int = 32, compute: Compute = .allCores
  ) throws -> Tensor {
    guard batchSize > 0 else { throw ModelError.invalidArgument("batchSize must be positive, got \(batchSize)") }
    let allLengths = try validate(x, lengths: lengths)
    let N = x.shape[0]
    var scalars: [Float] = []
    var rng = SplitMix64(seed: 0)
    var shape: [Int] = []
    for start in stride(from: 0, to: N, by: batchSize) {
      let indices = Array(start..<min(N, start + batchSize))[...]
      let lb = allLengths.map { all in indices.map { all[$0] } }
      let (out, _) = run(Self.gather(x, indices), lengths: lb, training: false, raw: false, using: &rng, compute: compute)
      scalars.append(contentsOf: out.scalars)
      shape = Array(out.shape.dropFirst())
    }
    return Tensor(shape: [N] + shape, scalars: scalars)
  }
}

extension Sequential {
  /// The compiled loss on `x` → `y` and its gradient with respect to every parameter (same
  /// structure as the model), without dropout layers: for hand-written training loops and
  /// checks. With regularizers, the loss includes AR and TAR, and the masks of weight drop,
  /// zoneout, locked and embedding dropout are drawn from a fixed seed (the same every call).
  /// `parametersReady` is told each layer's final gradients during backward, from the output.
  public func lossAndGradient(
    _ x: Tensor, _ y: Tensor, lengths: [Int]? = nil, compute: Compute = .singleThread,
    parametersReady: ParametersReady? = nil
  ) throws -> (loss: Double, gradient: Sequential) {
    guard let setup = compiled else { throw ModelError.notCompiled("call compile(loss:optimizer:metrics:) first") }
    try checkLossFitsOutput(setup.loss)
    let effective = try validate(x, lengths: lengths)
    guard y.shape.first == x.shape[0] else { throw ModelError.invalidData("x has \(x.shape[0]) samples but y has \(y.shape.first ?? 0)") }
    let targets = try prepareTargets(y, samples: x.shape[0], steps: x.shape[1], loss: setup.loss)
    var rng = SplitMix64(seed: 0)
    var forward = self
    for i in forward.parts.indices {
      if case .dropout = forward.parts[i] { forward.parts[i] = .dropout(Dropout(probability: 0)) }
    }
    let (out, saved) = forward.run(x, lengths: effective, training: true, raw: fusesFinalActivation, using: &rng, compute: compute)
    let weights = rowWeights(samples: x.shape[0], steps: x.shape[1], lengths: effective)
    let counted = Double(weights.reduce(0, +))
    let (score, dOut) = self.score(
      output: out, target: targets, weights: weights, loss: setup.loss, metrics: [], gradientRows: counted)
    var gradient = zeroGradient
    forward.backward(
      saved, outputGradient: dOut, lengths: effective, into: &gradient, compute: compute,
      parametersReady: parametersReady)
    return (score.loss / max(score.rows, 1) + Double(forward.activityPenalty(saved, lengths: effective)), gradient)
  }
}
