import TensorCore

/// What a training step does when its loss or gradient is NaN or infinite.
public enum NaNPolicy: String, Codable, CaseIterable, Sendable {
  /// Stop with `TrainingError.diverged`; the model is not updated (and nothing is saved).
  case stop
  /// Skip that step's update and go on.
  case skip
}

/// A training run that cannot go on or cannot be continued.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
  case notResumable(String)
  /// The loss or the gradient was not finite at `place` ("step 12", "epoch 2, batch 3").
  case diverged(at: String)
  /// One line for the user.
  public var description: String {
    switch self {
    case .notResumable(let why): "cannot resume: \(why)"
    case .diverged(let place):
      "the loss or a gradient became NaN or infinite at \(place); stopped without updating or saving (--on-nan skip skips such steps)"
    }
  }
}

/// What one training step did.
public struct StepReport: Sendable, Equatable {
  /// The batch's mean loss, before the update.
  public var loss: Float
  /// Global L2 norm of the gradient before clipping.
  public var gradientNorm: Float
  /// False when the loss or gradient was not finite and the update was skipped.
  public var updated: Bool
}

/// Told during backward that the gradients of the parameters at these indices (in
/// `forEachParameter` order) are final, with those gradients (values: copies on write).
public typealias ParametersReady = (_ indices: Range<Int>, _ gradients: [Tensor]) -> Void

/// Seams of a training step for work between the gradient and the update, e.g. averaging
/// gradients across processes: start reducing each layer's gradients in `parametersReady`
/// while backward goes on, and write the results into the gradient in `beforeUpdate`.
public struct StepHooks<Model: Parameterized> {
  /// Called during backward as soon as a layer's gradients are final (from the output layer
  /// towards the input), so communication can overlap the rest of backward.
  public var parametersReady: ParametersReady?
  /// Called on the whole gradient after backward and before the finiteness check, clipping
  /// and update.
  public var beforeUpdate: ((inout Model) -> Void)?

  /// Hooks; either may be nil.
  public init(parametersReady: ParametersReady? = nil, beforeUpdate: ((inout Model) -> Void)? = nil) {
    self.parametersReady = parametersReady
    self.beforeUpdate = beforeUpdate
  }
}

/// The one training step every loop calls (language models, `Sequential.fit` and
/// `trainOnBatch`, the long-memory tasks): forward, loss and backward (given by the caller),
/// then the finiteness check of loss *and* gradient norm, global-norm clipping and the
/// optimizer update. A non-finite loss or gradient never reaches the weights: with
/// `onNaN == .stop` the step throws `TrainingError.diverged`, with `.skip` it returns a
/// report with `updated == false`.
public struct TrainingStep: Sendable {
  /// The optimizer whose state the steps advance.
  public var optimizer: Optimizer
  /// Gradients are scaled to this global norm when above it (`clip_grad_norm_`); nil for none.
  public var clipNorm: Float?
  /// What a non-finite loss or gradient does.
  public var onNaN: NaNPolicy
  /// Steps whose update was skipped.
  public private(set) var skippedSteps = 0

  /// A step with `optimizer`, clipping at `clipNorm` (nil: none) and the NaN policy `onNaN`.
  public init(optimizer: Optimizer, clipNorm: Float? = nil, onNaN: NaNPolicy = .stop) {
    self.optimizer = optimizer
    self.clipNorm = clipNorm
    self.onNaN = onNaN
  }

  /// One step on `model`.
  /// - Parameters:
  ///   - model: the parameters, updated in place unless the step is skipped or throws.
  ///   - learningRate: this step's rate (a schedule's), or nil for the optimizer's.
  ///   - place: names the step in a `diverged` error.
  ///   - compute: threads for the optimizer's update (the result does not depend on the count).
  ///   - hooks: called when parameters' gradients are ready and before the update.
  ///   - lossAndGradient: runs the model it is given forward, the loss and backward, adding
  ///     every parameter gradient into the zero gradient it is given (and calling `parametersReady` as
  ///     parameters become final); returns the mean loss.
  @discardableResult
  public mutating func run<M: Parameterized>(
    _ model: inout M, learningRate: Float? = nil, place: @autoclosure () -> String, compute: Compute = .singleThread,
    hooks: StepHooks<M> = StepHooks(),
    lossAndGradient: (_ model: M, _ gradient: inout M, _ parametersReady: ParametersReady?) throws -> Float
  ) throws -> StepReport {
    var gradient = model.zeroGradient
    let loss = try lossAndGradient(model, &gradient, hooks.parametersReady)
    hooks.beforeUpdate?(&gradient)
    let norm =
      clipNorm.map { GradientClipping.clipByGlobalNorm(&gradient, maxNorm: $0) } ?? GradientClipping.globalNorm(gradient)
    guard loss.isFinite && norm.isFinite else {
      skippedSteps += 1
      if onNaN == .stop { throw TrainingError.diverged(at: place()) }
      return StepReport(loss: loss, gradientNorm: norm, updated: false)
    }
    optimizer.update(&model, along: gradient, learningRate: learningRate, compute: compute)
    return StepReport(loss: loss, gradientNorm: norm, updated: true)
  }
}
