import Testing
import TestSupport

import Recurrent
import TensorCore

/// Tests/Reference/make_fixtures.py: optimizers, schedules, clipping, losses and the
/// Linear/Embedding layers, all computed by PyTorch in float64.
struct TrainingFixture: Decodable {
  struct OptimizerCase: Decodable {
    let name, kind: String
    let lr: Float
    let momentum, dampening, weight_decay, l1, alpha, beta1, beta2: Float?
    let nesterov, centered: Bool?
    let schedule: ScheduleCase?
    let p0: [Float]
    let grads: [[Float]]
    let trajectory: [[Float]]
  }
  struct ScheduleCase: Decodable {
    let kind: String
    let step_size, t_max, steps: Int?
    let gamma, eta_min, start_factor, base_lr: Float?
    let lrs: [Float]?
  }
  struct Clipping: Decodable {
    let grads: [[Float]]
    let max_norm, total_norm, clip_value: Float
    let clipped_by_norm, clipped_by_value: [[Float]]
  }
  struct Losses: Decodable {
    let logits: [Float]
    let targets: [Int]
    let ignore_index: Int
    let cross_entropy: Float
    let cross_entropy_grad, mse_prediction, mse_target: [Float]
    let mse: Float
    let mse_grad, bce_logits, bce_targets: [Float]
    let bce: Float
    let bce_grad: [Float]
  }
  struct Layers: Decodable {
    struct Result: Decodable { let y, grad_x, grad_weight, grad_bias: [Float] }
    let x, weight, bias, grad_y: [Float]
    let activations: [String: Result]
    let embedding: [Float]
    let ids: [Int]
    let grad_embedded, embedded, grad_embedding: [Float]
  }
  let optimizers: [OptimizerCase]
  let schedules: [ScheduleCase]
  let clipping: Clipping
  let losses: Losses
  let layers: Layers
}

/// A single parameter vector, to drive the optimizers.
struct Vector: Parameterized {
  var value: Tensor
  mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows {
    try body("value", &value)
  }
}

/// Two tensors, to check that clipping works across parameters.
struct Pair: Parameterized {
  var a: Tensor
  var b: Tensor
  mutating func forEachParameter(_ body: (String, inout Tensor) throws -> Void) rethrows {
    try body("a", &a)
    try body("b", &b)
  }
}

private let training = try? loadFixture("training", as: TrainingFixture.self, in: .module)

private func schedule(_ s: TrainingFixture.ScheduleCase) -> LearningRateSchedule {
  switch s.kind {
  case "step": .step(every: s.step_size!, gamma: s.gamma!)
  case "exponential": .exponential(gamma: s.gamma!)
  case "cosine": .cosine(period: s.t_max!, minimum: s.eta_min!)
  case "linear-warmup": .linearWarmup(steps: s.steps!, startFactor: s.start_factor!)
  default: .constant
  }
}

@Test func optimizersFollowPyTorchUpdateRules() throws {
  let fixture = try #require(training)
  #expect(fixture.optimizers.count == 11)
  for c in fixture.optimizers {
    var config = OptimizerConfiguration(kind: try #require(OptimizerKind(rawValue: c.kind)), learningRate: c.lr)
    config.momentum = c.momentum ?? 0
    config.dampening = c.dampening ?? 0
    config.nesterov = c.nesterov ?? false
    config.weightDecay = c.weight_decay ?? 0
    config.l1 = c.l1 ?? 0
    config.alpha = c.alpha ?? 0.99
    config.centered = c.centered ?? false
    config.beta1 = c.beta1 ?? 0.9
    config.beta2 = c.beta2 ?? 0.999
    var optimizer = Optimizer(config)
    var model = Vector(value: Tensor(shape: [5], scalars: c.p0))
    for (step, g) in c.grads.enumerated() {
      let rate = c.schedule.map { schedule($0).learningRate(base: c.lr, step: step) }
      optimizer.update(&model, along: Vector(value: Tensor(shape: [5], scalars: g)), learningRate: rate)
      expectClose(model.value.scalars, c.trajectory[step], rtol: 1e-5, atol: 1e-6, "\(c.name) step \(step + 1)")
    }
  }
}

@Test func schedulesMatchPyTorch() throws {
  let fixture = try #require(training)
  #expect(fixture.schedules.count == 4)
  for s in fixture.schedules {
    let lrs = (0..<12).map { schedule(s).learningRate(base: s.base_lr!, step: $0) }
    expectClose(lrs, s.lrs!, rtol: 1e-5, atol: 1e-7, s.kind)
  }
}

@Test func gradientClippingMatchesPyTorch() throws {
  let c = try #require(training).clipping
  let original = Pair(a: Tensor(shape: [3, 4], scalars: c.grads[0]), b: Tensor(shape: [5], scalars: c.grads[1]))
  var byNorm = original
  let norm = GradientClipping.clipByGlobalNorm(&byNorm, maxNorm: c.max_norm)
  #expect(abs(norm - c.total_norm) < 1e-5 * c.total_norm)
  expectClose(byNorm.a.scalars + byNorm.b.scalars, c.clipped_by_norm[0] + c.clipped_by_norm[1], rtol: 1e-5, atol: 1e-7, "by norm")
  var byValue = original
  GradientClipping.clipByValue(&byValue, limit: c.clip_value)
  expectClose(byValue.a.scalars + byValue.b.scalars, c.clipped_by_value[0] + c.clipped_by_value[1], rtol: 0, atol: 0, "by value")
}

@Test func lossesMatchPyTorch() throws {
  let l = try #require(training).losses
  let targets = l.targets.map { $0 == l.ignore_index ? -100 : $0 }
  let (ce, ceGrad) = Loss.softmaxCrossEntropy(
    logits: Tensor(shape: [6, 5], scalars: l.logits), targets: targets, ignoreIndex: -100)
  #expect(ce.isFinite)
  expectClose([ce], [l.cross_entropy], rtol: 1e-5, atol: 1e-6, "cross-entropy")
  expectClose(ceGrad.scalars, l.cross_entropy_grad, rtol: 1e-5, atol: 1e-7, "cross-entropy gradient")
  let (mse, mseGrad) = Loss.meanSquaredError(
    Tensor(shape: [4, 3], scalars: l.mse_prediction), Tensor(shape: [4, 3], scalars: l.mse_target))
  expectClose([mse], [l.mse], rtol: 1e-5, atol: 1e-6, "mse")
  expectClose(mseGrad.scalars, l.mse_grad, rtol: 1e-5, atol: 1e-7, "mse gradient")
  let (bce, bceGrad) = Loss.binaryCrossEntropyWithLogits(
    Tensor(shape: [7], scalars: l.bce_logits), Tensor(shape: [7], scalars: l.bce_targets))
  expectClose([bce], [l.bce], rtol: 1e-5, atol: 1e-6, "bce")
  expectClose(bceGrad.scalars, l.bce_grad, rtol: 1e-5, atol: 1e-7, "bce gradient")
}

@Test(arguments: Activation.allCases)
func linearMatchesPyTorch(activation: Activation) throws {
  let f = try #require(training).layers
  let expected = try #require(f.activations[activation.rawValue])
  var rng = SplitMix64(seed: 1)
  var linear = Linear(inputSize: 7, outputSize: 5, activation: activation, using: &rng)
  assignParameters(&linear, ["weight": f.weight, "bias": f.bias])
  let (y, trace) = linear.forward(Tensor(shape: [4, 7], scalars: f.x))
  expectClose(y.scalars, expected.y, rtol: 1e-5, atol: 1e-6, "\(activation) y")
  var gradient = linear.zeroGradient
  let dx = linear.backward(trace, outputGradient: Tensor(shape: [4, 5], scalars: f.grad_y), into: &gradient)
  expectClose(dx.scalars, expected.grad_x, rtol: 1e-4, atol: 1e-5, "\(activation) dx")
  expectClose(gradient.weight.scalars, expected.grad_weight, rtol: 1e-4, atol: 1e-5, "\(activation) dW")
  expectClose(gradient.bias!.scalars, expected.grad_bias, rtol: 1e-4, atol: 1e-5, "\(activation) db")
}

@Test func embeddingMatchesPyTorch() throws {
  let f = try #require(training).layers
  var rng = SplitMix64(seed: 1)
  var embedding = Embedding(vocabularySize: 6, embeddingSize: 3, using: &rng)
  assignParameters(&embedding, ["weight": f.embedding])
  let y = embedding(f.ids, shape: [2, 3])
  #expect(y.shape == [2, 3, 3])
  expectClose(y.scalars, f.embedded, rtol: 0, atol: 0, "embedded")
  var gradient = embedding.zeroGradient
  embedding.backward(ids: f.ids, outputGradient: Tensor(shape: [2, 3, 3], scalars: f.grad_embedded), into: &gradient)
  expectClose(gradient.weight.scalars, f.grad_embedding, rtol: 1e-5, atol: 1e-6, "grad embedding")
}
