import CKernels
import TensorCore

/// Which update rule an `Optimizer` applies (PyTorch's `torch.optim` of the same name).
public enum OptimizerKind: String, Codable, CaseIterable, Sendable {
  case sgd, rmsprop, adam, adamw
}

/// Hyper-parameters, named and defaulted as in PyTorch's `torch.optim`.
public struct OptimizerConfiguration: Codable, Sendable, Equatable {
  /// The update rule.
  public var kind: OptimizerKind
  /// Base learning rate (a schedule scales it per step).
  public var learningRate: Float
  /// SGD and RMSprop momentum.
  public var momentum: Float = 0
  /// SGD dampening.
  public var dampening: Float = 0
  /// SGD: Nesterov momentum.
  public var nesterov: Bool = false
  /// Adam/AdamW β₁, β₂.
  public var beta1: Float = 0.9
  /// Adam/AdamW β₂.
  public var beta2: Float = 0.999
  /// Adam/AdamW and RMSprop ε, added to the denominator.
  public var epsilon: Float = 1e-8
  /// RMSprop smoothing constant.
  public var alpha: Float = 0.99
  /// RMSprop: normalise by the centred second moment.
  public var centered: Bool = false
  /// L2 penalty folded into the gradient (SGD, RMSprop, Adam), or decoupled decay (AdamW).
  public var weightDecay: Float = 0
  /// L1 penalty: adds `l1 · sign(p)` to each gradient (the gradient of `l1 · Σ|p|`).
  public var l1: Float = 0

  /// A configuration with PyTorch's defaults for `kind`.
  public init(kind: OptimizerKind, learningRate: Float) {
    self.kind = kind
    self.learningRate = learningRate
    if kind == .adamw { weightDecay = 0.01 }  // PyTorch's AdamW default
  }

  /// The state slots this configuration keeps, one tensor per parameter each, as
  /// `torch.optim` names them in its state: SGD `momentum_buffer` ("first", only with
  /// momentum); RMSprop `square_avg` ("second"), `momentum_buffer` ("first", with momentum)
  /// and `grad_avg` ("mean", centered); Adam/AdamW `exp_avg` ("first"), `exp_avg_sq` ("second").
  public var slotNames: [OptimizerSlot] {
    switch kind {
    case .sgd: momentum != 0 ? [.first] : []
    case .rmsprop: [.second] + (momentum > 0 ? [.first] : []) + (centered ? [.mean] : [])
    case .adam, .adamw: [.first, .second]
    }
  }
}

/// A named per-parameter state of an optimizer. Raw values are the checkpoint names
/// (`training.optimizer.{slot}.{parameter}`).
public enum OptimizerSlot: String, CaseIterable, Sendable, Hashable {
  case first, second, mean
}

/// Optimizer state that does not fit its configuration or its model.
public enum OptimizerStateError: Error, Equatable, CustomStringConvertible {
  case missingSlot(OptimizerSlot)
  case unexpectedSlot(OptimizerSlot)
  case parameterCount(slot: OptimizerSlot, expected: Int, found: Int)
  case shape(slot: OptimizerSlot, parameter: String, expected: [Int], found: [Int])

  /// The rule and its non-default hyper-parameters, e.g. `adam(lr 0.002)`.
  public var description: String {
    switch self {
    case .missingSlot(let s): "optimizer state lacks the \(s.rawValue) moment its configuration needs"
    case .unexpectedSlot(let s): "optimizer state has a \(s.rawValue) moment its configuration does not use"
    case .parameterCount(let s, let e, let f): "optimizer \(s.rawValue) moment has \(f) tensors, the model has \(e) parameters"
    case .shape(let s, let p, let e, let f): "optimizer \(s.rawValue) moment of \(p) has shape \(f), the parameter \(e)"
    }
  }
}

/// An optimizer with its own moment estimates, updating any `Parameterized` model in place
/// by PyTorch's update rules.
public struct Optimizer: Sendable {
  /// The hyper-parameters.
  public var configuration: OptimizerConfiguration
  /// Updates taken so far.
  public private(set) var stepCount = 0
  /// Per slot, one tensor per parameter in `forEachParameter` order. Empty before the first
  /// update; afterwards exactly `configuration.slotNames`.
  public private(set) var slots: [OptimizerSlot: [Tensor]] = [:]

  /// A fresh optimizer (no state until its first step).
  public init(_ configuration: OptimizerConfiguration) {
    self.configuration = configuration
  }

  /// An optimizer restored from saved state, checked against its configuration and against
  /// the parameter shapes of the model it will update (names and shapes in visiting order).
  public init(
    _ configuration: OptimizerConfiguration, stepCount: Int, slots: [OptimizerSlot: [Tensor]],
    parameters: [(name: String, shape: [Int])]
  ) throws(OptimizerStateError) {
    let needed = configuration.slotNames
    if stepCount == 0 {
      // Before the first update an optimizer holds no moments.
      if let slot = OptimizerSlot.allCases.first(where: { slots[$0] != nil }) { throw .unexpectedSlot(slot) }
    } else {
      for slot in needed where slots[slot] == nil { throw .missingSlot(slot) }
      for slot in OptimizerSlot.allCases where slots[slot] != nil && !needed.contains(slot) {
        throw .unexpectedSlot(slot)
      }
    }
    for (slot, values) in slots {
      guard values.count == parameters.count else {
        throw .parameterCount(slot: slot, expected: parameters.count, found: values.count)
      }
      for (v, p) in zip(values, parameters) where v.shape != p.shape {
        throw .shape(slot: slot, parameter: p.name, expected: p.shape, found: v.shape)
      }
    }
    self.configuration = configuration
    self.stepCount = stepCount
    self.slots = slots
  }

  /// The momentum buffer or first moment per parameter (empty when not kept).
  public var first: [Tensor] { slots[.first] ?? [] }
  /// The second moment per parameter (empty when not kept).
  public var second: [Tensor] { slots[.second] ?? [] }
  /// The running mean of centred RMSprop (empty when not kept).
  public var mean: [Tensor] { slots[.mean] ?? [] }

  /// One update of every parameter of `model` along `gradient` (same structure).
  /// - Parameters:
  ///   - model: the parameters, updated in place.
  ///   - gradient: the gradient of every parameter, in the same structure.
  ///   - learningRate: overrides `configuration.learningRate` (for schedules).
  ///   - compute: threads for the elementwise update of large tensors (Adam and AdamW); the
  ///     result is the same bits for any count.
  public mutating func update<M: Parameterized>(
    _ model: inout M, along gradient: M, learningRate: Float? = nil, compute: Compute = .singleThread
  ) {
    let grads = gradient.namedParameters.map(\.tensor)
    if slots.isEmpty {
      for slot in configuration.slotNames { slots[slot] = grads.map { Tensor(zeros: $0.shape) } }
    }
    for (slot, values) in slots {
      precondition(values.count == grads.count, "Optimizer: model has \(grads.count) parameters, \(slot) has \(values.count)")
    }
    stepCount += 1
    let rule = UpdateRule(configuration, learningRate: learningRate ?? configuration.learningRate, step: stepCount)
    var first = slots.removeValue(forKey: .first)  // moved out, so edits do not copy
    var second = slots.removeValue(forKey: .second)
    var mean = slots.removeValue(forKey: .mean)
    var index = 0
    model.forEachParameter { name, p in
      let g = grads[index]
      precondition(g.shape == p.shape, "Optimizer: gradient of \(name) is \(g.shape), parameter \(p.shape)")
      let i = index
      index += 1
      let count = p.count
      p.withMutablePointer { pp in
        g.withPointer { gp in
          withSlot(&first, i) { m1 in
            withSlot(&second, i) { m2 in
              withSlot(&mean, i) { mc in
                rule.apply(count: count, p: pp, g: gp, first: m1, second: m2, mean: mc, compute: compute)
              }
            }
          }
        }
      }
    }
    if let first { slots[.first] = first }
    if let second { slots[.second] = second }
    if let mean { slots[.mean] = mean }
  }
}

/// Calls `body` with a pointer into tensor `i` of `slot`, or nil when the slot is not kept.
private func withSlot(
  _ slot: inout [Tensor]?, _ i: Int, _ body: (UnsafeMutablePointer<Float>?) -> Void
) {
  guard slot != nil else { return body(nil) }
  slot![i].withMutablePointer { body($0) }
}

/// One step's update of one parameter tensor, elementwise, as `torch.optim` (single-tensor
/// path): the penalties shared by every kind, then the kind's own rule.
private struct UpdateRule {
  let c: OptimizerConfiguration
  let lr: Float
  let firstStep: Bool
  let stepSize: Float  // Adam: lr / (1 - β₁ᵗ)
  let root2: Float  // Adam: √(1 - β₂ᵗ)
  let decay: Float  // AdamW: 1 - lr·λ

  init(_ c: OptimizerConfiguration, learningRate lr: Float, step: Int) {
    self.c = c
    self.lr = lr
    firstStep = step == 1
    stepSize = lr / (1 - _pow(c.beta1, Float(step)))
    root2 = (1 - _pow(c.beta2, Float(step))).squareRoot()
    decay = 1 - lr * c.weightDecay
  }

  /// The gradient with the L1 penalty and (but for AdamW) the L2 penalty folded in.
  @inline(__always) func penalised(_ g: Float, _ value: Float) -> Float {
    var grad = g
    if c.l1 != 0 { grad += c.l1 * (value > 0 ? 1 : (value < 0 ? -1 : 0)) }
    if c.weightDecay != 0 && c.kind != .adamw { grad += c.weightDecay * value }
    return grad
  }

  func apply(
    count: Int, p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, first: UnsafeMutablePointer<Float>?,
    second: UnsafeMutablePointer<Float>?, mean: UnsafeMutablePointer<Float>?, compute: Compute
  ) {
    switch c.kind {
    case .sgd:
      for j in 0..<count {
        var grad = penalised(g[j], p[j])
        if let first {
          let buffer = firstStep ? grad : c.momentum * first[j] + (1 - c.dampening) * grad
          first[j] = buffer
          grad = c.nesterov ? grad + c.momentum * buffer : buffer
        }
        p[j] = p[j] - lr * grad
      }
    case .rmsprop:
      let second = second!
      for j in 0..<count {
        let value = p[j]
        let grad = penalised(g[j], value)
        let square = c.alpha * second[j] + (1 - c.alpha) * grad * grad
        second[j] = square
        var average: Float
        if let mean {
          let m = mean[j] + (1 - c.alpha) * (grad - mean[j])
          mean[j] = m
          average = (square - m * m).squareRoot() + c.epsilon
        } else {
          average = square.squareRoot() + c.epsilon
        }
        if let first {
          let buffer = c.momentum * first[j] + grad / average
          first[j] = buffer
          p[j] = value - lr * buffer
        } else {
          p[j] = value - lr * grad / average
        }
      }
    case .adam, .adamw:
      // The C kernel runs exactly this rule, vectorised and split over threads:
      //   grad = g (+ l1·sign(p)) (+ λ·p unless AdamW); v = AdamW ? p·(1 - lr·λ) : p
      //   m₁ = β₁m₁ + (1-β₁)grad; m₂ = β₂m₂ + (1-β₂)grad²; p = v - stepSize·m₁ / (√m₂/root2 + ε)
      var args = rc_adam_args(
        p: p, first: first!, second: second!, g: g, beta1: c.beta1, beta2: c.beta2, step_size: stepSize,
        root2: root2, epsilon: c.epsilon, l1: c.l1, l2: c.kind == .adamw ? 0 : c.weightDecay, decay: decay,
        decoupled: c.kind == .adamw ? 1 : 0)
      rc_adam_update(Int32(compute.threads), RC_KERNEL_AUTO, &args, count)
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
  /// Half a cosine from `rate` at step `start` down to `minimum` at `start + period`, then
  /// held there: an annealing schedule re-fitted when a run is extended (`base` is not used).
  case cosineFrom(start: Int, rate: Float, period: Int, minimum: Float)

  /// The step at which an annealing schedule reaches its minimum, or nil for the others.
  public var annealingEnd: Int? {
    switch self {
    case .cosine(let period, _): period
    case .cosineFrom(let start, _, let period, _): start + period
    default: nil
    }
  }

  /// This schedule from `step` on, for a run whose total becomes `total` steps: an annealing
  /// schedule that ended at the old total is re-fitted to go from its current rate down to its
  /// minimum at `total` (never back up); any other schedule is kept.
  public func extended(base: Float, from step: Int, oldTotal: Int?, newTotal: Int?) -> LearningRateSchedule {
    guard let end = annealingEnd, end == oldTotal, let newTotal, newTotal != end, newTotal > step else { return self }
    let minimum: Float =
      switch self {
      case .cosine(_, let m), .cosineFrom(_, _, _, let m): m
      default: 0
      }
    return .cosineFrom(start: step, rate: learningRate(base: base, step: step), period: newTotal - step, minimum: minimum)
  }

  /// A short description for messages: "cosine over 2000 steps to 0".
  public var summary: String {
    switch self {
    case .constant: "constant"
    case .step(let every, let gamma): "×\(gamma) every \(every) steps"
    case .exponential(let gamma): "×\(gamma) each step"
    case .cosine(let period, let minimum): "cosine over \(period) steps to \(minimum)"
    case .linearWarmup(let steps, let startFactor): "linear warm-up from ×\(startFactor) over \(steps) steps"
    case .cosineFrom(let start, let rate, let period, let minimum):
      "cosine from \(rate) at step \(start) to \(minimum) at step \(start + period)"
    }
  }

  /// The learning rate at `step` (0-based) for a base rate `base`.
  public func learningRate(base: Float, step: Int) -> Float {
    switch self {
    case .cosineFrom(let start, let rate, let period, let minimum):
      let progress = Float(min(max(step - start, 0), max(period, 1))) / Float(max(period, 1))
      return minimum + (rate - minimum) * (1 + _cos(Float.pi * progress)) / 2
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
