import TensorCore

public enum OptimizerKind: String, Codable, CaseIterable, Sendable {
  case sgd, rmsprop, adam, adamw
}

/// Hyper-parameters, named and defaulted as in PyTorch's `torch.optim`.
public struct OptimizerConfiguration: Codable, Sendable, Equatable {
  public var kind: OptimizerKind
  public var learningRate: Float
  /// SGD and RMSprop momentum.
  public var momentum: Float = 0
  /// SGD dampening.
  public var dampening: Float = 0
  public var nesterov: Bool = false
  /// Adam/AdamW β₁, β₂.
  public var beta1: Float = 0.9
  public var beta2: Float = 0.999
  public var epsilon: Float = 1e-8
  /// RMSprop smoothing constant.
  public var alpha: Float = 0.99
  public var centered: Bool = false
  /// L2 penalty folded into the gradient (SGD, RMSprop, Adam), or decoupled decay (AdamW).
  public var weightDecay: Float = 0
  /// L1 penalty: adds `l1 · sign(p)` to each gradient (the gradient of `l1 · Σ|p|`).
  public var l1: Float = 0

  public init(kind: OptimizerKind, learningRate: Float) {
    self.kind = kind
    self.learningRate = learningRate
    if kind == .adamw { weightDecay = 0.01 }  // PyTorch's AdamW default
  }
}

/// An optimizer with its own moment estimates, updating any `Parameterized` model in place
/// by PyTorch's update rules.
public struct Optimizer: Sendable {
  public var configuration: OptimizerConfiguration
  /// Updates taken so far.
  public private(set) var stepCount = 0
  /// Per parameter, in `forEachParameter` order: the momentum buffer or first moment, the
  /// second moment, and the running mean of centred RMSprop. Empty before the first update.
  public private(set) var first: [Tensor] = []
  public private(set) var second: [Tensor] = []
  public private(set) var mean: [Tensor] = []

  public init(_ configuration: OptimizerConfiguration) {
    self.configuration = configuration
  }

  /// An optimizer restored from saved state (see `first`, `second`, `mean`).
  public init(
    _ configuration: OptimizerConfiguration, stepCount: Int, first: [Tensor], second: [Tensor], mean: [Tensor]
  ) {
    self.configuration = configuration
    self.stepCount = stepCount
    self.first = first
    self.second = second
    self.mean = mean
  }

  /// One update of every parameter of `model` along `gradient` (same structure).
  /// - Parameter learningRate: overrides `configuration.learningRate` (for schedules).
  public mutating func update<M: Parameterized>(
    _ model: inout M, along gradient: M, learningRate: Float? = nil
  ) {
    let grads = gradient.namedParameters.map(\.tensor)
    if first.isEmpty {
      first = grads.map { Tensor(zeros: $0.shape) }
      second = first
      mean = configuration.centered ? first : []
    }
    precondition(first.count == grads.count, "Optimizer: model has \(grads.count) parameters, state has \(first.count)")
    stepCount += 1
    let c = configuration
    let lr = learningRate ?? c.learningRate
    let correction1 = 1 - _pow(c.beta1, Float(stepCount))
    let correction2 = 1 - _pow(c.beta2, Float(stepCount))
    let firstStep = stepCount == 1
    var index = 0
    model.forEachParameter { name, p in
      let g = grads[index]
      precondition(g.shape == p.shape, "Optimizer: gradient of \(name) is \(g.shape), parameter \(p.shape)")
      let i = index
      index += 1
      var centred = c.centered ? mean[i] : Tensor(zeros: [])
      let count = p.count
      p.withMutablePointer { pp in
        g.withPointer { gp in
          first[i].withMutablePointer { m1 in
            second[i].withMutablePointer { m2 in
              centred.withMutablePointer { mc in
                Self.apply(
                  c, lr: lr, firstStep: firstStep, correction1: correction1, correction2: correction2,
                  count: count, p: pp, g: gp, first: m1, second: m2, mean: mc)
              }
            }
          }
        }
      }
      if c.centered { mean[i] = centred }
    }
  }

  /// The update of one parameter tensor, elementwise, as `torch.optim` (single-tensor path).
  private static func apply(
    _ c: OptimizerConfiguration, lr: Float, firstStep: Bool, correction1: Float, correction2: Float,
    count: Int, p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, first: UnsafeMutablePointer<Float>,
    second: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>
  ) {
    let root2 = correction2.squareRoot()
    let stepSize = lr / correction1
    let decay = 1 - lr * c.weightDecay
    for j in 0..<count {
      var grad = g[j]
      let value = p[j]
      if c.l1 != 0 { grad += c.l1 * (value > 0 ? 1 : (value < 0 ? -1 : 0)) }
      if c.weightDecay != 0 && c.kind != .adamw { grad += c.weightDecay * value }
      switch c.kind {
      case .sgd:
        if c.momentum != 0 {
          let buffer = firstStep ? grad : c.momentum * first[j] + (1 - c.dampening) * grad
          first[j] = buffer
          grad = c.nesterov ? grad + c.momentum * buffer : buffer
        }
        p[j] = value - lr * grad
      case .rmsprop:
        let square = c.alpha * second[j] + (1 - c.alpha) * grad * grad
        second[j] = square
        var average: Float
        if c.centered {
          let m = mean[j] + (1 - c.alpha) * (grad - mean[j])
          mean[j] = m
          average = (square - m * m).squareRoot() + c.epsilon
        } else {
          average = square.squareRoot() + c.epsilon
        }
        if c.momentum > 0 {
          let buffer = c.momentum * first[j] + grad / average
          first[j] = buffer
          p[j] = value - lr * buffer
        } else {
          p[j] = value - lr * grad / average
        }
      case .adam, .adamw:
        let v = c.kind == .adamw ? value * decay : value
        let m1 = c.beta1 * first[j] + (1 - c.beta1) * grad
        let m2 = c.beta2 * second[j] + (1 - c.beta2) * grad * grad
        first[j] = m1
        second[j] = m2
        p[j] = v - stepSize * m1 / (m2.squareRoot() / root2 + c.epsilon)
      }
    }
  }
}

/// Learning rate as a function of the number of scheduler steps taken, in closed form
/// (PyTorch's `StepLR`, `ExponentialLR`, `CosineAnnealingLR`, `LinearLR`).
public enum LearningRateSchedule: Codable, Sendable, Equatable {
  case constant
  /// × gamma every `every` steps.
  case step(every: Int, gamma: Float)
  /// × gamma each step.
  case exponential(gamma: Float)
  /// Half a cosine from the base rate down to `minimum` over `period` steps.
  case cosine(period: Int, minimum: Float)
  /// Linear from `startFactor` × base up to base over `steps` steps, then constant.
  case linearWarmup(steps: Int, startFactor: Float)

  public func learningRate(base: Float, step: Int) -> Float {
    switch self {
    case .constant:
      return base
    case .step(let every, let gamma):
      return base * _pow(gamma, Float(step / max(every, 1)))
    case .exponential(let gamma):
      return base * _pow(gamma, Float(step))
    case .cosine(let period, let minimum):
      let phase = Float.pi * Float(step) / Float(max(period, 1))
      return minimum + (base - minimum) * (1 + _cos(phase)) / 2
    case .linearWarmup(let steps, let startFactor):
      let progress = Float(min(step, max(steps, 1))) / Float(max(steps, 1))
      return base * (startFactor + (1 - startFactor) * progress)
    }
  }
}

/// Gradient clipping over all parameters of a gradient, as `torch.nn.utils`.
public enum GradientClipping {
  /// L2 norm over all gradient entries.
  public static func globalNorm<M: Parameterized>(_ gradient: M) -> Float {
    var total: Double = 0
    for (_, t) in gradient.namedParameters {
      for v in t.scalars { total += Double(v) * Double(v) }
    }
    return Float(total.squareRoot())
  }

  /// Scales every gradient by `maxNorm / (norm + 1e-6)` when that is below 1
  /// (`clip_grad_norm_`). Returns the norm before clipping.
  @discardableResult
  public static func clipByGlobalNorm<M: Parameterized>(_ gradient: inout M, maxNorm: Float) -> Float {
    let norm = globalNorm(gradient)
    let coefficient = min(1, maxNorm / (norm + 1e-6))
    if coefficient < 1 {
      gradient.forEachParameter { _, t in
        for j in 0..<t.count { t.scalars[j] *= coefficient }
      }
    }
    return norm
  }

  /// Clamps every gradient entry to `[-limit, limit]` (`clip_grad_value_`).
  public static func clipByValue<M: Parameterized>(_ gradient: inout M, limit: Float) {
    gradient.forEachParameter { _, t in
      for j in 0..<t.count { t.scalars[j] = min(max(t.scalars[j], -limit), limit) }
    }
  }
}
